"""The tictac backstop on the simulation's network (real node code, virtual time): values
damaged and objects lost with their log entries behind one replica's store are invisible
to the log exchange, and found and repaired by a rebuild and an exchange of trees; with
nothing different an exchange stops at the branches."""

from __future__ import annotations

import asyncio
import random

import pytest

from dynamo.kv import object as objects
from dynamo.storage.contract import CF_LOG, CF_OBJECTS, StoreAPI, u64
from dynamo.tools.simulation.harness import BUCKET, SimCluster, SimSettings, on_virtual_time
from dynamo.tools.simulation.network import NetConfig
from http_api.types import Content, PutOptions
from ring.position import storage_key

pytestmark = pytest.mark.sim
SETTINGS = SimSettings(nodes=3, net=NetConfig(delay_s=(0.0005, 0.002)))
KEYS = 300


def digests(db: StoreAPI) -> dict[bytes, bytes]:
    return {k: objects.digest(raw) for k, raw in db.scan()}


def test_damage_no_log_shows_is_found_and_repaired_by_the_backstop() -> None:
    async def main() -> None:
        sim = SimCluster(3, SETTINGS)
        await sim.start_all()
        c = Content(value=b"v" * 50, content_type="text/plain", last_modified_us=1)
        for i in range(KEYS):
            await sim.nodes["n1"].store(BUCKET, b"k%d" % i, c, None, PutOptions(w=3))
        await asyncio.sleep(10)  # the log exchange has pulled every write: nothing is new
        victim, peer = sim.nodes["n2"], sim.nodes["n3"]
        tic = victim.ownership.tictac
        while tic.tree is None or peer.ownership.tictac.tree is None:
            await asyncio.sleep(0.5)
        assert await tic.exchange("n3") == 0  # all alike: the branches agree
        assert tic.differing_exchanges == 0
        good = digests(victim.db)
        assert len(good) == KEYS
        rng = random.Random(3)
        chosen = rng.sample(sorted(good), 40)
        flipped, lost = chosen[:20], chosen[20:]
        for objkey in flipped:  # a byte of the value changed behind the store's back
            stored = bytearray(victim.db.get_in(CF_OBJECTS, objkey) or b"")
            stored[-15] ^= 0x40
            victim.db._apply([(CF_OBJECTS, objkey, bytes(stored))])
        for objkey in lost:  # the object and its log entry gone (a bug, a bad restore)
            seq = objects.stored_seq(victim.db.get_in(CF_OBJECTS, objkey) or b"")
            victim.db._apply([(CF_OBJECTS, objkey, None), (CF_LOG, u64(seq), None)])
        await asyncio.sleep(20)  # the log exchange runs meanwhile: it sees nothing
        assert sum(1 for k in lost if victim.db.get_in(CF_OBJECTS, k) is None) == len(lost)
        assert victim.db.corrupt_total == 0  # nothing read them
        await tic.build(1e9)  # the periodic rebuild, checking every seal
        assert victim.db.corrupt_total == len(flipped)
        for _ in range(10):
            await tic.exchange(rng.choice(["n1", "n3"]))
            if digests(victim.db) == good:
                break
        assert digests(victim.db) == good
        assert tic.repaired == len(chosen)
        assert tic.tree is not None
        kept = bytes(tic.tree.leaves)  # kept up to date through the repairs
        await tic.build(1e9)
        assert bytes(tic.tree.leaves) == kept  # equal to a tree built afresh
        assert await tic.exchange("n1") == 0
        sim.stop_all()

    on_virtual_time(main)


def test_a_key_only_one_side_holds_is_pulled_by_the_side_that_lacks_it() -> None:
    async def main() -> None:
        sim = SimCluster(5, SETTINGS)
        await sim.start_all()
        c = Content(value=b"x", content_type="text/plain", last_modified_us=1)
        await sim.nodes["n1"].store(BUCKET, b"only", c, None, PutOptions(w=3))
        _, objkey = storage_key(BUCKET, b"only")
        holders = [n for n in sim.ids if sim.nodes[n].db.get_raw(objkey) is not None]
        a, b = holders[0], holders[1]
        while sim.nodes[a].ownership.tictac.tree is None:
            await asyncio.sleep(0.5)
        seq = objects.stored_seq(sim.nodes[b].db.get_in(CF_OBJECTS, objkey) or b"")
        sim.nodes[b].db._apply([(CF_OBJECTS, objkey, None), (CF_LOG, u64(seq), None)])
        await sim.nodes[b].ownership.tictac.build(1e9)
        assert await sim.nodes[a].ownership.tictac.exchange(b) == 0  # a holds it: pulls nothing
        assert await sim.nodes[b].ownership.tictac.exchange(a) == 1
        assert sim.nodes[b].db.get_raw(objkey) is not None
        sim.stop_all()

    on_virtual_time(main)


def test_a_leaf_the_tree_was_not_told_of_is_healed_by_the_next_exchange() -> None:
    async def main() -> None:
        sim = SimCluster(3, SETTINGS)
        await sim.start_all()
        c = Content(value=b"x", content_type="text/plain", last_modified_us=1)
        for i in range(50):
            await sim.nodes["n1"].store(BUCKET, b"h%d" % i, c, None, PutOptions(w=3))
        tic = sim.nodes["n2"].ownership.tictac
        while tic.tree is None:
            await asyncio.sleep(0.5)
        objkey = next(k for k, _ in sim.nodes["n2"].db.scan())
        tic.tree.toggle(int.from_bytes(objkey[:8], "big"), 12345)  # a change it missed
        await tic.exchange("n1")
        assert tic.healed_leaves == 1
        assert tic.repaired == 0
        before = tic.differing_exchanges
        assert await tic.exchange("n1") == 0
        assert tic.differing_exchanges == before  # the next exchange stopped at the branches
        sim.stop_all()

    on_virtual_time(main)
