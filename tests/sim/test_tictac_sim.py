"""The tictac backstop on the simulation's network (real node code, virtual time): values
damaged and objects lost with their log entries behind one replica's store are invisible
to the log exchange, and found and repaired by a rebuild and an exchange of trees; with
nothing different an exchange stops at the branches."""

from __future__ import annotations

import asyncio
import random

import pytest

from dynamo.kv import object as objects
from dynamo.net import methods
from dynamo.storage.contract import CF_LOG, CF_OBJECTS, StoreAPI, u64
from dynamo.tools.simulation.harness import BUCKET, SimCluster, SimSettings, on_virtual_time
from dynamo.tools.simulation.network import NetConfig
from http_api.types import Content, PutOptions
from ring.position import storage_key, storage_key_bkey

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


def test_a_bucket_of_another_n_val_is_compared_and_repaired_too() -> None:
    """Keys of a bucket at n_val 2 (ranges shared in part, boundaries cutting segments)
    live in their own tree; damage to one replica is found and repaired, and with nothing
    different the cut segments' parts are read from the store once, not every exchange."""

    async def main() -> None:
        sim = SimCluster(11, SimSettings(nodes=4, net=NetConfig(delay_s=(0.0005, 0.002))))
        await sim.start_all()
        await sim.nodes["n1"].set_bucket_props(b"pairs", {"n_val": 2})
        while any(n.cluster.bucket_props(b"pairs").n_val != 2 for n in sim.nodes.values()):
            await asyncio.sleep(0.5)
        c = Content(value=b"p" * 40, content_type="text/plain", last_modified_us=1)
        for i in range(200):
            await sim.nodes["n1"].store(b"pairs", b"p%d" % i, c, None, PutOptions(w=2))
        victim = sim.nodes["n2"]
        await caught_up(sim, "n2")
        tic = victim.ownership.tictac
        await tic.build(1e9)  # trees of keys stored before the props reached every node
        for n in sim.ids:
            await sim.nodes[n].ownership.tictac.build(1e9)
        assert tic.trees is not None
        assert 2 in tic.trees
        mine = [k for k, _ in victim.db.scan() if storage_key_bkey(k)[0] == b"pairs"]
        theirs = {n: sim.nodes[n].ownership.tictac for n in sim.ids if n != "n2"}
        peer = next(n for n in theirs if tic._shared(n, 2))
        assert await tic.exchange(peer) == 0
        read = tic.parts_read
        assert read > 0  # the ranges n_val 2 shares cut segments
        assert await tic.exchange(peer) == 0
        assert tic.parts_read == read  # kept by the tree: a quiet exchange reads no key
        held = [k for k in mine if peer in _holders(sim, k)]
        lost = held[:10]
        for objkey in lost:
            seq = objects.stored_seq(victim.db.get_in(CF_OBJECTS, objkey) or b"")
            victim.db._apply([(CF_OBJECTS, objkey, None), (CF_LOG, u64(seq), None)])
        await tic.build(1e9)
        for _ in range(5):
            await tic.exchange(peer)
        assert all(victim.db.get_raw(k) is not None for k in lost)
        assert tic.repaired == len(lost)
        sim.stop_all()

    on_virtual_time(main)


async def caught_up(sim: SimCluster, node: str) -> None:
    """Until ``node``'s log exchange has applied every other node's log to its head: a
    copy lost afterwards is one no log will show it again."""
    aae = sim.nodes[node].ownership.aae

    def done() -> bool:
        return all(
            (p := aae.peers.get(n)) is not None and p.watermark >= sim.nodes[n].db.seq
            for n in sim.ids
            if n != node
        )

    while not done():
        await asyncio.sleep(0.5)


def _holders(sim: SimCluster, objkey: bytes) -> list[str]:
    return [n for n in sim.ids if sim.nodes[n].db.get_raw(objkey) is not None]


def test_a_damaged_object_found_by_a_read_is_repaired_without_a_rebuild() -> None:
    """A read that finds a damaged value removes it without knowing its hash; the tree's
    leaf is worked out again before the next exchange, which then pulls the copy."""

    async def main() -> None:
        sim = SimCluster(5, SETTINGS)
        await sim.start_all()
        c = Content(value=b"r" * 50, content_type="text/plain", last_modified_us=1)
        for i in range(30):
            await sim.nodes["n1"].store(BUCKET, b"r%d" % i, c, None, PutOptions(w=3))
        victim = sim.nodes["n2"]
        await caught_up(sim, "n2")
        tic = victim.ownership.tictac
        while tic.tree is None:
            await asyncio.sleep(0.5)
        objkey = next(k for k, _ in victim.db.scan())
        good = digests(victim.db)[objkey]
        stored = bytearray(victim.db.get_in(CF_OBJECTS, objkey) or b"")
        stored[-15] ^= 0x40
        victim.db._apply([(CF_OBJECTS, objkey, bytes(stored))])
        assert victim.db.get(objkey) is None  # the read finds it damaged and removes it
        assert victim.db.corrupt_total == 1
        builds = tic.builds
        assert await tic.exchange("n1") == 1
        assert tic.builds == builds
        assert tic.healed_leaves == 1
        assert digests(victim.db)[objkey] == good
        sim.stop_all()

    on_virtual_time(main)


def test_a_peer_that_keeps_one_tree_is_not_asked_about_another_n_val() -> None:
    """During a rolling upgrade a peer from before trees per n_val answers every step
    with its default n_val's tree; an exchange for another n_val stops at its reply
    instead of fetching keys of the wrong buckets."""

    async def main() -> None:
        sim = SimCluster(13, SimSettings(nodes=4, net=NetConfig(delay_s=(0.0005, 0.002))))
        await sim.start_all()
        await sim.nodes["n1"].set_bucket_props(b"pairs", {"n_val": 2})
        while any(n.cluster.bucket_props(b"pairs").n_val != 2 for n in sim.nodes.values()):
            await asyncio.sleep(0.5)
        c = Content(value=b"q", content_type="text/plain", last_modified_us=1)
        for i in range(50):
            await sim.nodes["n1"].store(b"pairs", b"q%d" % i, c, None, PutOptions(w=2))
            await sim.nodes["n1"].store(BUCKET, b"d%d" % i, c, None, PutOptions(w=3))
        tic = sim.nodes["n2"].ownership.tictac
        for n in sim.ids:
            await sim.nodes[n].ownership.tictac.build(1e9)
        peer = next(n for n in sim.ids if n != "n2" and tic._shared(n, 2))
        old = sim.nodes[peer].ownership.tictac
        new_handle = old.handle

        def old_handle(body: object, peer: str = "") -> object:
            body = {k: v for k, v in body.items() if k != "n"} if isinstance(body, dict) else body
            reply = new_handle(body, peer)
            return {k: v for k, v in reply.items() if k != "n"}

        sim.nodes[peer].rpc.register(methods.TICTAC, old_handle)
        assert tic.trees is not None
        tic.trees[2].toggle(int.from_bytes(b"\x01" * 8, "big"), 777)  # differ from the peer
        fetched = tic.keys_fetched
        assert await tic.exchange(peer) == 0
        assert tic.keys_fetched == fetched
        sim.stop_all()

    on_virtual_time(main)
