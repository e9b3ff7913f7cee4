"""The coordinator on the simulation's network (real node code, virtual time): who
coordinates, sloppy quorum, read repair, and the quorum errors with their numbers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from dynamo.tools.simulation.harness import BUCKET, SimCluster, SimSettings, on_virtual_time
from dynamo.tools.simulation.network import NetConfig
from http_api.errors import Unavailable
from http_api.types import Content, GetOptions, PutOptions
from ring.position import storage_key

pytestmark = pytest.mark.sim
T = TypeVar("T")
LOSSLESS = SimSettings(nodes=4, net=NetConfig(delay_s=(0.0005, 0.002)))
CONTENT = Content(value=b"v", content_type="text/plain", last_modified_us=1)


def in_cluster(body: Callable[[SimCluster], Awaitable[T]]) -> T:
    async def main() -> T:
        sim = SimCluster(7, LOSSLESS)
        for n in sim.ids:
            await sim.start(n)
        while any(len(node.cluster.ring) < 4 for node in sim.nodes.values()):
            await asyncio.sleep(0.1)
        try:
            return await body(sim)
        finally:
            for n in list(sim.nodes):
                sim.crash(n, power_loss=False)

    return on_virtual_time(main)


def roles(sim: SimCluster, key: bytes) -> tuple[list[str], str]:
    pos, _ = storage_key(BUCKET, key)
    ring = sim.nodes["n1"].cluster.ring
    primaries = list(ring.primaries(pos, 3))
    return primaries, next(n for n in sim.ids if n not in primaries)


def test_a_write_received_by_a_non_primary_is_forwarded_and_coordinated_by_a_primary() -> None:
    async def body(sim: SimCluster) -> None:
        primaries, other = roles(sim, b"k")
        await sim.nodes[other].store(BUCKET, b"k", CONTENT, None, PutOptions(w=3))
        assert sim.nodes[other].counters.coord_redirs_total == 1
        assert sum(sim.nodes[p].counters.puts.total for p in primaries) == 1
        for p in primaries:
            assert sim.nodes[p].db.get(storage_key(BUCKET, b"k")[1]) is not None
        assert sim.nodes[other].db.get(storage_key(BUCKET, b"k")[1]) is None

    in_cluster(body)


def test_a_primary_that_fails_mid_write_is_replaced_by_the_fallback_with_a_hint() -> None:
    async def body(sim: SimCluster) -> None:
        primaries, fallback = roles(sim, b"k")
        coordinator, down = primaries[0], primaries[2]
        sim.crash(down, power_loss=False)  # not yet suspected: the write tries it first
        await sim.nodes[coordinator].store(BUCKET, b"k", CONTENT, None, PutOptions(w=3))
        assert sim.nodes[fallback].db.hint_counts() == {down: 1}

    in_cluster(body)


def test_a_read_repairs_a_replica_that_missed_the_write() -> None:
    async def body(sim: SimCluster) -> None:
        primaries, _ = roles(sim, b"k")
        _, skey = storage_key(BUCKET, b"k")
        lagging = primaries[1]
        await sim.nodes[primaries[0]].store(BUCKET, b"k", CONTENT, None, PutOptions(w=3))
        got = sim.nodes[lagging].db.get(skey)
        assert got is not None
        assert sim.nodes[lagging].db.drop(skey, got[1])  # as if it had never received it
        res = await sim.nodes[primaries[0]].fetch(BUCKET, b"k", GetOptions(r=3))
        assert res.found
        deadline = sim.loop.time() + 5
        while sim.nodes[lagging].db.get(skey) is None:
            assert sim.loop.time() < deadline, "read repair never reached the replica"
            await asyncio.sleep(0.05)
        assert sim.nodes[primaries[0]].counters.read_repairs.total >= 1

    in_cluster(body)


def test_quorums_the_live_primaries_cannot_make_are_refused_at_once_with_their_numbers() -> None:
    async def body(sim: SimCluster) -> list[str]:
        primaries, _ = roles(sim, b"k")
        for p in primaries[1:]:
            sim.crash(p, power_loss=False)
        node = sim.nodes[primaries[0]]
        while any(node.cluster.is_up(p) for p in primaries[1:]):
            await asyncio.sleep(0.1)
        errors = []
        for aw in (
            node.store(BUCKET, b"k", CONTENT, None, PutOptions(pw=2)),
            node.fetch(BUCKET, b"k", GetOptions(pr=2)),
        ):
            with pytest.raises(Unavailable) as e:
                await aw
            errors.append(str(e.value).split(";")[0])
        return errors

    assert in_cluster(body) == ["PW-value unsatisfied: 1/2", "PR-value unsatisfied: 1/2"]
