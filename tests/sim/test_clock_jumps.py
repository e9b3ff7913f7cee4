"""Wall clocks that jump an hour forward and back, on the simulation (real node code,
virtual time). Reaping asks for proof that every primary holds a tombstone, not only
for time to pass: a clock an hour ahead reaps nothing early, a key deleted while one
primary was down never comes back, nothing acknowledged is lost. And what
``last_write_wins`` does under skew, as the README says: the later timestamp wins,
whichever write came last."""

from __future__ import annotations

import asyncio
import random
from functools import partial
from typing import TypeVar

import pytest

from dynamo.kv import object as objects
from dynamo.tools.simulation.harness import BUCKET, SimCluster, SimSettings, on_virtual_time
from dynamo.tools.simulation.network import NetConfig
from dynamo.tools.simulation.outage import retry
from http_api.types import Content, DeleteOptions, GetOptions, PutOptions
from ring.position import storage_key

pytestmark = pytest.mark.sim
T = TypeVar("T")
HOUR = 3600.0
SETTINGS = SimSettings(
    nodes=4,
    net=NetConfig(delay_s=(0.0005, 0.005)),
    node=(("tombstone_grace_s", 5.0),),
)


async def started() -> SimCluster:
    sim = SimCluster(21, SETTINGS)
    await sim.start_all()
    return sim


@pytest.mark.parametrize("seed", range(4))
def test_an_hour_ahead_reaps_nothing_early_and_deleted_keys_stay_deleted(seed: int) -> None:
    async def main() -> None:
        rng = random.Random(seed)
        sim = await started()
        ring = sim.nodes["n1"].cluster.ring
        a, b, down = rng.sample(sim.ids, 3)
        keys = [
            k
            for k in (b"k%d" % i for i in range(300))
            if {a, b, down} == set(ring.primaries(storage_key(BUCKET, k)[0], 3))
        ][:4]
        assert keys
        objkeys = [storage_key(BUCKET, k)[1] for k in keys]
        old = Content(value=b"old", content_type="text/plain", last_modified_us=1)
        for k in keys:
            await retry(sim, partial(sim.nodes[a].store, BUCKET, k, old, None, PutOptions(w=3)))
        sim.crash(down, power_loss=False)
        while sim.nodes[a].cluster.is_up(down) or sim.nodes[b].cluster.is_up(down):
            await asyncio.sleep(0.2)
        sim.jump(a, HOUR)  # an hour ahead: the grace period is long over on its clock
        sim.jump(b, -HOUR * rng.choice((0, 1)))  # and b's maybe an hour behind
        opts = DeleteOptions(w=2)
        for k in keys:  # b coordinates: the tombstones are stamped with its clock
            await retry(sim, partial(sim.nodes[b].delete, BUCKET, k, None, opts))

        def reaped_on(n: str, objkey: bytes) -> bool:
            return (
                sim.nodes[n].db.get_raw(objkey) is None
                and sim.nodes[n].db.marker(objkey) is not None
            )

        for _ in range(300):  # 30 s: six grace periods; the down primary lacks the tombstone
            await asyncio.sleep(0.1)
            assert not any(reaped_on(n, ok) for n in (a, b) for ok in objkeys)
        sim.jump(b, 0.0)  # b steps back to true time (a stays an hour ahead)
        await sim.start(down)  # with its old value of every key
        deadline = sim.loop.time() + 120
        while not all(reaped_on(n, ok) for n in (a, b, down) for ok in objkeys):
            assert sim.loop.time() < deadline, "the tombstones were never reaped"
            for ok in objkeys:  # reaped somewhere only once every primary holds the delete
                if any(reaped_on(n, ok) for n in (a, b, down)):
                    for n in (a, b, down):
                        got = sim.nodes[n].db.get(ok)
                        assert got is None or objects.is_tombstone(got[0]), (n, ok)
            await asyncio.sleep(0.1)
        sim.jump(a, -HOUR)  # a steps back two hours: markers and hints must not mind
        await asyncio.sleep(15)  # anti-entropy: anything brought back would spread
        for k in keys:
            read = await retry(sim, partial(sim.nodes[a].fetch, BUCKET, k, GetOptions(r="all")))
            assert not read.found, k
        for n in sim.ids:
            for ok in objkeys:
                held = sim.nodes[n].db.get(ok)
                assert held is None or objects.is_tombstone(held[0]), (n, ok)
        sim.stop_all()

    on_virtual_time(main)


def test_last_write_wins_keeps_the_later_timestamp_not_the_later_write() -> None:
    async def main() -> None:
        sim = await started()
        await retry(sim, lambda: sim.nodes["n1"].set_bucket_props(BUCKET, {"allow_mult": False}))
        await asyncio.sleep(3)  # the props reach every node through gossip
        sim.jump("n1", HOUR)  # n1's clock an hour ahead
        first = Content(value=b"first, from the fast clock", content_type="text/plain")
        second = Content(value=b"second, a minute later", content_type="text/plain")
        await retry(
            sim, lambda: sim.nodes["n1"].store(BUCKET, b"lww", first, None, PutOptions(w=3))
        )
        await asyncio.sleep(60)
        await retry(
            sim, lambda: sim.nodes["n2"].store(BUCKET, b"lww", second, None, PutOptions(w=3))
        )
        got = await retry(sim, lambda: sim.nodes["n3"].fetch(BUCKET, b"lww", GetOptions(r="all")))
        assert [s.content.value for s in got.live] == [first.value]  # the skew decided
        sim.stop_all()

    on_virtual_time(main)
