"""Long outages and deleted keys: no resurrection by time, reads honour reaped markers.

A seeded scenario on the whole-cluster simulation (``harness.SimCluster``), beside
the cart workload. Four nodes, n_val 3; node ``X`` is down while keys it replicates
are written, so the one other node ``S`` takes hints for it; then ``S`` goes down
for a long outage, ``X`` comes back, the keys are deleted, and every primary reaps
them (leaving markers). Then, by the seed's parity:

- ``marker-read``: ``X`` goes down again and ``S`` comes back with its hints still
  alive; a read with ``r=all`` meets two primaries that hold only markers and
  ``S``'s old hint. It must answer "not found" (the markers' history covers the
  old values), and nothing may come back afterwards.
- ``long-outage``: ``S`` stays down past the markers' lifetime, then comes back.
  Its hints are older than ``hint_ttl_s``, which is below the markers' lifetime:
  they must be dropped, not delivered, and nothing may come back.

The check: every deleted key reads as not found at ``r=all``, and no node holds
a live value of one. Timings, nodes, keys and the network's faults vary by seed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from dynamo.kv import object as objects
from dynamo.tools.simulation.harness import BUCKET, SimCluster, SimSettings, on_virtual_time
from dynamo.tools.simulation.loop import Deadlock, Livelock
from dynamo.tools.simulation.network import NetConfig
from http_api.errors import ServiceError
from http_api.types import Content, DeleteOptions, GetOptions, PutOptions
from ring.position import storage_key

GRACE_S = 5.0
MARKER_TTL_S = 40.0
HINT_TTL_S = 30.0
VARIANTS = ("marker-read", "long-outage")
T = TypeVar("T")


def settings_for(seed: int) -> SimSettings:
    rng = random.Random(seed ^ 0x0A7A6E)
    return SimSettings(
        nodes=4,
        net=NetConfig(delay_s=(0.0005, rng.uniform(0.002, 0.02)), loss=rng.choice([0, 0.01])),
        node=(
            ("tombstone_grace_s", GRACE_S),
            ("reaped_marker_ttl_s", MARKER_TTL_S),
            ("hint_ttl_s", HINT_TTL_S),
        ),
    )


@dataclass
class OutageOutcome:
    seed: int
    variant: str
    problems: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    virtual_s: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.problems

    def report(self) -> str:
        head = f"outage seed {self.seed} ({self.variant}): {'PASS' if self.passed else 'FAIL'}"
        lines = [f"{head} virtual={self.virtual_s:.1f}s"]
        if not self.passed:
            lines += [f"  step: {s}" for s in self.steps]
            lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)


async def _until(sim: SimCluster, what: str, ok: Callable[[], bool], within_s: float) -> None:
    deadline = sim.loop.time() + within_s
    while not ok():
        if sim.loop.time() > deadline:
            raise TimeoutError(f"waited {within_s:.0f}s for {what}")
        await asyncio.sleep(0.1)


def _sees_down(sim: SimCluster, node: str, down: bool) -> Callable[[], bool]:
    return lambda: all(sim.nodes[n].cluster.is_up(node) is not down for n in sim.up() if n != node)


async def _scenario(seed: int, out: OutageOutcome, bug: str | None) -> None:
    rng = random.Random(seed)
    sim = SimCluster(seed, settings_for(seed), bug=bug)
    for n in sim.ids:
        await sim.start(n)
    await _until(
        sim, "the ring", lambda: all(len(x.cluster.ring) == 4 for x in sim.nodes.values()), 30
    )
    ring = sim.nodes[sim.ids[0]].cluster.ring
    x, s = rng.sample(sim.ids, 2)  # X is a primary of the keys, S the one other node
    others = [n for n in sim.ids if n not in (x, s)]
    keys = [
        k
        for k in (f"k{i}".encode() for i in range(256))
        if set(ring.primaries(storage_key(BUCKET, k)[0], 3)) == {x, *others}
    ][: rng.randint(2, 5)]
    positions = {k: storage_key(BUCKET, k) for k in keys}
    out.steps.append(f"X={x} S={s} keys={[k.decode() for k in keys]}")

    sim.crash(x, power_loss=False)
    await _until(sim, f"{x} seen down", _sees_down(sim, x, True), 60)
    for k in keys:  # a client retries a write refused (a reply lost, say), as here
        content = Content(value=b"old", content_type="text/plain", last_modified_us=1)
        node = sim.nodes[rng.choice(others)]
        await retry(sim, partial(node.store, BUCKET, k, content, None, PutOptions(w=2)))
    held = sim.nodes[s].db.hint_counts().get(x, 0)
    out.steps.append(f"t={sim.loop.time():.1f} wrote with {x} down: {s} holds {held} hints")
    await asyncio.sleep(rng.uniform(0.1, 2.0))
    sim.crash(s, power_loss=rng.random() < 0.2)
    await sim.start(x)
    await _until(sim, f"{s} seen down, {x} up", _sees_down(sim, s, True), 60)
    await _until(sim, f"{x} seen up", _sees_down(sim, x, False), 60)

    for k in keys:
        node = sim.nodes[rng.choice(others)]
        await retry(sim, partial(node.delete, BUCKET, k, None, DeleteOptions(r="all", w="all")))
    primaries = [x, *others]

    def reaped() -> bool:
        return all(
            sim.nodes[p].db.get_raw(objkey) is None and sim.nodes[p].db.marker(objkey) is not None
            for p in primaries
            for _, objkey in positions.values()
        )

    await _until(sim, "every primary to reap the deleted keys", reaped, 120)
    out.steps.append(f"t={sim.loop.time():.1f} reaped everywhere")

    if out.variant == "marker-read":
        sim.crash(x, power_loss=False)
        await sim.start(s)
        await _until(sim, f"{x} seen down", _sees_down(sim, x, True), 60)
        await _until(sim, f"{s} seen up", _sees_down(sim, s, False), 60)
        for k in keys:
            node = sim.nodes[rng.choice(others)]
            got = await retry(sim, partial(node.fetch, BUCKET, k, GetOptions(r="all")))
            if got.found:
                out.problems.append(f"{k!r} read back after it was deleted and reaped: {got}")
        await sim.start(x)
    else:
        await asyncio.sleep(MARKER_TTL_S + rng.uniform(2.0, 10.0))
        await _until(
            sim,
            "the markers to expire",
            lambda: all(
                sim.nodes[p].db.marker(objkey) is None
                for p in primaries
                for _, objkey in positions.values()
            ),
            60,
        )
        out.steps.append(f"t={sim.loop.time():.1f} markers expired; {s} comes back")
        await sim.start(s)
    await _until(sim, f"{s}'s hints handled", lambda: not sim.nodes[s].db.hint_counts(), 60)
    await asyncio.sleep(10.0)  # anti-entropy rounds: anything brought back would spread
    _check(sim, keys, positions, out)
    for k in keys:
        got = await retry(sim, partial(sim.nodes[others[0]].fetch, BUCKET, k, GetOptions(r="all")))
        if got.found:
            out.problems.append(f"{k!r} is back after the outage: {got}")
    out.virtual_s = sim.loop.time()
    for n in list(sim.nodes):
        sim.crash(n, power_loss=False)


def _check(
    sim: SimCluster,
    keys: list[bytes],
    positions: dict[bytes, tuple[int, bytes]],
    out: OutageOutcome,
) -> None:
    for k in keys:
        objkey = positions[k][1]
        for n, node in sim.nodes.items():
            got = node.db.get(objkey)
            if got is not None and not objects.is_tombstone(got[0]):
                out.problems.append(f"{n} holds a live value of deleted key {k!r}")


async def retry(sim: SimCluster, call: Callable[[], Awaitable[T]], within_s: float = 30.0) -> T:
    """``call()`` until it is not refused (a quorum not yet reachable), within ``within_s``."""
    deadline = sim.loop.time() + within_s
    while True:
        try:
            return await call()
        except ServiceError:
            if sim.loop.time() > deadline:
                raise
            await asyncio.sleep(0.5)


def run_outage(seed: int, bug: str | None = None) -> OutageOutcome:
    """One seeded long-outage run; a run that hangs or times out fails with the reason."""
    out = OutageOutcome(seed, VARIANTS[seed % 2])
    try:
        on_virtual_time(lambda: _scenario(seed, out, bug))
    except (Deadlock, Livelock, TimeoutError, ServiceError) as e:
        out.problems.append(f"{type(e).__name__}: {e}")
    return out
