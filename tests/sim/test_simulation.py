"""The whole-cluster simulation: seeds pass, runs repeat exactly, injected bugs are caught."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import warnings
from typing import Any

import pytest

from dynamo.tools.simulation.harness import (
    BUCKET,
    EPOCH,
    Fault,
    SimCluster,
    SimSettings,
    _scenario,
    on_virtual_time,
    run,
    shrink,
)
from dynamo.tools.simulation.network import NetConfig
from http_api.errors import Unavailable
from http_api.types import Content, GetOptions, PutOptions

pytestmark = pytest.mark.sim

SEEDS = int(os.environ.get("DYNAMO_SIM_SEEDS", "100"))
# Seeds run in chunks, one test each, so that no test's outcome depends on how fast
# the machine is today: a chunk takes ~2.5 s on a normal day, ~10 s on a slow one,
# far inside the per-test timeout, and a slow day costs time, not a failure.
CHUNK = 10


@pytest.mark.parametrize(
    "first", range(0, SEEDS, CHUNK), ids=lambda f: f"seeds{f}-{min(f + CHUNK, SEEDS) - 1}"
)
def test_seeds_pass(first: int) -> None:
    failures = []
    for seed in range(first, min(first + CHUNK, SEEDS)):
        outcome = run(seed)
        if not outcome.passed:
            failures.append(outcome.report())
    assert not failures, "\n".join(failures[:3])


DATATYPE_SEEDS = int(os.environ.get("DYNAMO_SIM_DATATYPE_SEEDS", "20"))


@pytest.mark.parametrize("workload", ["counters", "sets"])
@pytest.mark.parametrize("first", range(0, DATATYPE_SEEDS, CHUNK), ids=lambda f: f"seeds{f}")
def test_datatype_seeds_pass(workload: str, first: int) -> None:
    """Counter increments and set adds and removes under the same faults: no acknowledged
    operation lost, no removed element back, replicas converged."""
    failures = []
    for seed in range(first, min(first + CHUNK, DATATYPE_SEEDS)):
        outcome = run(seed, SimSettings(workload=workload))
        if not outcome.passed:
            failures.append(outcome.report())
        assert outcome.history.acknowledged > 0
    assert not failures, "\n".join(failures[:3])


def test_a_seed_replays_exactly() -> None:
    a, b = run(11), run(11)
    assert a.schedule == b.schedule
    assert a.history.acked == b.history.acked
    assert a.history.ops == b.history.ops
    assert a.virtual_s == b.virtual_s


@pytest.mark.parametrize("bug", ["ack-before-write", "drop-context-on-forward"])
def test_injected_bugs_are_caught(bug: str) -> None:
    caught = [seed for seed in range(5) if not run(seed, bug=bug).passed]
    assert caught, f"{bug} went unnoticed in seeds 0-4"


def test_a_failure_shrinks_to_a_smaller_schedule_that_still_fails() -> None:
    settings = SimSettings()
    extra = [Fault(2.0, "pause", "n2", 1.0), Fault(5.0, "isolate", "n3", 1.0)]
    outcome = run(3, settings, schedule=extra, bug="drop-context-on-forward")
    assert not outcome.passed
    small = shrink(outcome, settings, "drop-context-on-forward")
    assert len(small) < len(extra)  # the bug needs no fault at all
    assert not run(3, settings, schedule=small, bug="drop-context-on-forward").passed


def test_a_node_restarted_alone_knows_its_ring_and_acknowledges_no_write_by_itself() -> None:
    """Seed 8449 of the 10,000-seed run: a node back from a power loss served as a
    cluster of one until its first gossip round, acknowledged a ``w=2`` write it
    alone held, and a wipe then lost it. Now the ring is restored from disk and
    the peers count as down until they are heard from."""
    others = {"n2:1", "n3:1", "n4:1"}

    async def scenario() -> None:
        sim = SimCluster(5, SimSettings())
        for n in sim.ids:
            await sim.start(n)
        while any(len(node.cluster.ring) < 4 for node in sim.nodes.values()):
            assert sim.loop.time() < 30, "the cluster did not form"
            await asyncio.sleep(0.1)
        sim.crash("n1", power_loss=True)
        sim.net.groups = [{"n1:1"}, others]
        await sim.start("n1")
        node = sim.nodes["n1"]
        assert len(node.cluster.ring) == 4
        assert node.cluster.down() == {"n2", "n3", "n4"}
        content = Content(value=b"[]", content_type="application/json")
        with pytest.raises(Unavailable, match="W-value unsatisfied"):
            await node.store(BUCKET, b"k", content, None, PutOptions(w=2, dw=2))
        sim.net.groups = []
        deadline = sim.loop.time() + 30
        while True:
            try:
                await node.store(BUCKET, b"k", content, None, PutOptions(w=2, dw=2))
                break
            except Unavailable:
                assert sim.loop.time() < deadline, "the healed node never took the write"
                await asyncio.sleep(0.1)

    on_virtual_time(scenario)


def _interrupt() -> None:
    raise KeyboardInterrupt  # the one exception a loop callback lets escape the loop


@pytest.mark.parametrize("at_s", [0.5, 3.0, 12.0])
def test_a_run_aborted_midway_leaves_nothing_behind_for_the_next_test(at_s: float) -> None:
    """A test's timeout can stop a run anywhere. On a slow day that hit the 200-seed
    test, and the next test then failed on a ``Node.fetch`` coroutine the aborted
    run had left un-awaited. Here the run is stopped at ``at_s`` virtual seconds by
    an exception that escapes the loop, with requests, gossip and anti-entropy in
    flight; nothing of it may surface afterwards."""

    async def aborted() -> Any:
        asyncio.get_running_loop().call_later(at_s, _interrupt)
        return await _scenario(5, SimSettings(), None, None)

    unraisable: list[Any] = []
    previous_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(KeyboardInterrupt):
                on_virtual_time(aborted)
            gc.collect()
    finally:
        sys.unraisablehook = previous_hook
    assert not unraisable, [f"{u.exc_value}: {u.object}" for u in unraisable[:3]]
    assert not caught, [str(w.message) for w in caught[:3]]


@pytest.mark.parametrize("first", [0, 10])
def test_when_stats_show_three_ring_members_a_live_replica_is_never_counted_out(
    first: int,
) -> None:
    """Issue 18, item 6 (seen once on real processes): 3 nodes "agreed on 3 ring members",
    a ``w=all`` PUT succeeded, n3 was killed, and 0.5 s later n1 refused ``w=2``, ``r=2``
    and ``pw=3`` with "1/2". ``/stats`` ``ring_members`` listed every known member,
    joining ones included, while n1's ring still lacked n2 (joining in n1's copy of
    the gossip state); seeds 3, 5 and 17 did this. Now it lists the ring itself, and a
    node that turns valid tells its peers at once."""

    async def scenario(seed: int) -> list[str]:
        lossless = NetConfig(delay_s=(0.0005, 0.01))  # as loopback: nothing lost
        sim = SimCluster(seed, SimSettings(nodes=3, net=lossless))
        for n in sim.ids:
            await sim.start(n)
        while not all(len(sim.nodes[n].stats()["ring_members"]) == 3 for n in sim.ids):
            assert sim.loop.time() < 30, "the cluster did not form"
            await asyncio.sleep(0.1)
        rings = {n: len(sim.nodes[n].cluster.ring) for n in sim.ids}
        assert rings == {"n1": 3, "n2": 3, "n3": 3}
        n1 = sim.nodes["n1"]
        content = Content(value=b"v", content_type="text/plain", last_modified_us=0)
        await n1.store(BUCKET, b"before", content, None, PutOptions(w="all"))
        sim.crash("n3", power_loss=False)
        await asyncio.sleep(0.5)  # virtual time: the report's 0.5 s, deterministic per seed
        refused = []
        for name, aw in (
            ("w=2", n1.store(BUCKET, b"k", content, None, PutOptions(w=2))),
            ("r=2", n1.fetch(BUCKET, b"k", GetOptions(r=2))),
        ):
            try:
                await aw
            except Unavailable as e:
                refused.append(f"{name}: {e}")
        for n in list(sim.nodes):
            sim.crash(n, power_loss=False)
        return refused

    for seed in range(first, first + 10):
        assert on_virtual_time(lambda seed=seed: scenario(seed)) == [], f"seed {seed}"  # type: ignore[misc]


def test_the_coordinator_stamps_last_modified_on_its_own_clock() -> None:
    """Time comes only through ``Env``: the coordinating node's clock dates a write,
    whatever the front end that received it put there."""

    async def scenario() -> tuple[int, float]:
        sim = SimCluster(1, SimSettings(nodes=3, net=NetConfig(delay_s=(0.001, 0.002))))
        for n in sim.ids:
            await sim.start(n)
        while any(len(node.cluster.ring) < 3 for node in sim.nodes.values()):
            await asyncio.sleep(0.1)
        await asyncio.sleep(5.0)  # virtual time: let the clock move past the start
        content = Content(value=b"v", content_type="text/plain", last_modified_us=1)
        await sim.nodes["n2"].store(BUCKET, b"k", content, None, PutOptions(w=3))
        got = await sim.nodes["n3"].fetch(BUCKET, b"k", GetOptions(r=3))
        stamped = got.siblings[0].content.last_modified_us
        now = sim.nodes["n3"].env.wallclock()
        for n in list(sim.nodes):
            sim.crash(n, power_loss=False)
        return stamped, now

    stamped, now = on_virtual_time(scenario)
    assert stamped != 1
    assert EPOCH * 1e6 < stamped <= now * 1e6


def test_seeds_pass_with_half_the_cluster_on_the_first_release_protocol() -> None:
    """A rolling upgrade half done: n1 and n3 speak v1 (as the first release), n2 and n4
    v2, so every kind of call crosses versions under the usual faults."""
    settings = SimSettings(first_release=("n1", "n3"))
    failures = []
    for seed in range(CHUNK):
        outcome = run(seed, settings)
        if not outcome.passed:
            failures.append(outcome.report())
        assert outcome.history.acknowledged > outcome.history.ops // 4, outcome.report()
    assert not failures, "\n".join(failures[:3])

    async def versions() -> dict[str, dict[str, int]]:
        sim = SimCluster(4, settings)
        for n in sim.ids:
            await sim.start(n)
        return {n: node.rpc.peer_versions() for n, node in sim.nodes.items()}

    seen = on_virtual_time(versions)
    assert seen["n1"] == {"n2": 1, "n3": 1, "n4": 1}
    assert seen["n2"] == {"n1": 1, "n3": 1, "n4": 2}
