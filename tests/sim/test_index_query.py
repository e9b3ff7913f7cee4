"""Coverage queries on the simulation's network (real node code, virtual time): a plan
asks fewer nodes than the cluster has, a node that fails mid-query has its ranges asked
of another replica, hints are never answered, and a continuation resumes strictly after
its last result while writes go on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from dynamo.tools.simulation.harness import BUCKET, SimCluster, SimSettings, on_virtual_time
from dynamo.tools.simulation.network import NetConfig
from http_api import indexes
from http_api.types import Content, PutOptions

pytestmark = pytest.mark.sim
T = TypeVar("T")
SETTINGS = SimSettings(nodes=5, net=NetConfig(delay_s=(0.0005, 0.002)))
KEYS = 120


def content(i: int) -> Content:
    fields = (("n_int", str(i % 10)), ("tag_bin", "odd" if i % 2 else "even"))
    return Content(value=b"v", content_type="text/plain", indexes=fields, last_modified_us=1)


def in_cluster(body: Callable[[SimCluster], Awaitable[T]]) -> T:
    async def main() -> T:
        sim = SimCluster(11, SETTINGS)
        await sim.start_all()
        for i in range(KEYS):
            await sim.nodes["n1"].store(BUCKET, b"k%03d" % i, content(i), None, PutOptions(w=3))
        try:
            return await body(sim)
        finally:
            sim.stop_all()

    return on_virtual_time(main)


def want(term: int) -> list[bytes]:
    return [b"k%03d" % i for i in range(KEYS) if i % 10 == term]


def test_a_query_covers_every_key_once_asking_fewer_nodes_than_the_cluster_has() -> None:
    async def body(sim: SimCluster) -> None:
        node = sim.nodes["n2"]
        assert len(node.index.plan(BUCKET)) < 5
        page = await node.index_query(BUCKET, indexes.query("n_int", "3"))
        assert page.unique_keys() == want(3)
        page = await node.index_query(BUCKET, indexes.query("$bucket", "b"))
        assert len(page.results) == KEYS
        listed = [k async for chunk in node.list_keys(BUCKET, None) for k in chunk]
        assert sorted(listed) == sorted(b"k%03d" % i for i in range(KEYS))

    in_cluster(body)


def test_a_node_that_fails_mid_query_has_its_ranges_asked_of_another_replica() -> None:
    async def body(sim: SimCluster) -> None:
        node = sim.nodes["n1"]
        victim = next(p.node for p in node.index.plan(BUCKET) if p.node != "n1")
        sim.crash(victim, power_loss=False)  # not yet suspected: planned, then fails
        for _ in range(20):
            page = await node.index_query(BUCKET, indexes.query("n_int", "0", "9"))
            assert sorted(page.unique_keys()) == sorted(b"k%03d" % i for i in range(KEYS))
            if node.index.replans:
                break
        assert node.index.replans >= 1

    in_cluster(body)


def test_keys_held_only_as_hints_are_not_answered_twice_or_from_the_hint() -> None:
    async def body(sim: SimCluster) -> None:
        down = "n4"
        sim.crash(down, power_loss=False)
        while sim.nodes["n1"].cluster.is_up(down):
            await asyncio.sleep(0.2)
        for i in range(KEYS, KEYS + 30):  # some land on fallbacks as hints for n4
            await sim.nodes["n1"].store(BUCKET, b"k%03d" % i, content(i), None, PutOptions(w=2))
        assert any(n.db.hint_counts().get(down) for n in sim.nodes.values())
        page = await sim.nodes["n2"].index_query(BUCKET, indexes.query("tag_bin", "odd"))
        odd = [b"k%03d" % i for i in range(KEYS + 30) if i % 2]
        assert [k for _, k in page.results] == odd

    in_cluster(body)


def test_a_continuation_resumes_strictly_after_its_last_result_whatever_was_written() -> None:
    async def body(sim: SimCluster) -> None:
        node = sim.nodes["n3"]
        q = indexes.query("n_int", "0", "9", max_results=25, return_terms=True)
        seen: list[tuple[str, bytes]] = []
        page = await node.index_query(BUCKET, q)
        while True:
            seen += page.results
            assert len(page.results) <= 25
            if page.continuation is None:
                break
            last = page.results[-1]
            # writes before and after the page boundary, between the pages
            for key, term in ((b"a-new", "0"), (b"z-new", "9")):
                c = Content(value=b"v", indexes=(("n_int", term),), last_modified_us=1)
                await node.store(BUCKET, key, c, None, PutOptions(w=3))
            q = indexes.query(
                "n_int", "0", "9", max_results=25, return_terms=True, continuation=page.continuation
            )
            page = await node.index_query(BUCKET, q)
            assert all((int(t), k) > (int(last[0]), last[1]) for t, k in page.results)
        assert seen == sorted(seen, key=lambda r: (int(r[0]), r[1]))
        assert len(seen) == len(set(seen))
        old = {(str(i % 10), b"k%03d" % i) for i in range(KEYS)}
        assert old <= set(seen)  # nothing that existed throughout was skipped

    in_cluster(body)
