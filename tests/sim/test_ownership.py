"""Ownership on the simulation's network: a leave hands every key to its new
primaries, and hints held for a node that left go to the key's current primaries."""

from __future__ import annotations

import asyncio

import pytest

from dynamo.tools.simulation.harness import BUCKET, SimCluster, SimSettings, on_virtual_time
from dynamo.tools.simulation.network import NetConfig
from gossip.membership import LEFT
from http_api.types import Content, PutOptions
from ring.position import storage_key

pytestmark = pytest.mark.sim
SETTINGS = SimSettings(nodes=5, net=NetConfig(delay_s=(0.0005, 0.002)))
KEYS = [f"k{i}".encode() for i in range(40)]


async def formed(sim: SimCluster, members: int) -> None:
    while any(len(node.cluster.ring) != members for node in sim.nodes.values()):
        assert sim.loop.time() < 120, "the ring did not settle"
        await asyncio.sleep(0.1)


def test_a_leave_hands_every_key_to_the_primaries_of_the_ring_without_the_node() -> None:
    async def main() -> list[str]:
        sim = SimCluster(3, SETTINGS)
        for n in sim.ids:
            await sim.start(n)
        await formed(sim, 5)
        content = Content(value=b"v", content_type="text/plain", last_modified_us=1)
        for k in KEYS:
            await sim.nodes["n1"].store(BUCKET, k, content, None, PutOptions(w=3))
        ring = sim.nodes["n1"].cluster.ring
        held = sum(1 for k in KEYS if "n5" in ring.primaries(storage_key(BUCKET, k)[0], 3))
        await sim.nodes["n5"].leave()
        while sim.nodes["n5"].cluster.status != LEFT:
            assert sim.loop.time() < 300, "the leave did not finish"
            await asyncio.sleep(0.2)
        transfer = sim.nodes["n5"].ownership.transfer
        assert transfer is not None
        assert transfer.progress.phase == "done"
        assert transfer.progress.sent >= held > 0  # the leave itself handed them over
        sim.crash("n5", power_loss=False)
        await formed(sim, 4)
        ring = sim.nodes["n1"].cluster.ring
        missing = []
        for k in KEYS:
            pos, skey = storage_key(BUCKET, k)
            for p in ring.primaries(pos, 3):
                if sim.nodes[p].db.get(skey) is None:
                    missing.append(f"{k!r} on {p}")
        for n in list(sim.nodes):
            sim.crash(n, power_loss=False)
        return missing

    assert on_virtual_time(main) == []
