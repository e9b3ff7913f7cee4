"""Maintenance on the memory store: reaping and cleanup act only on anti-entropy's proof."""

from __future__ import annotations

import random

from dynamo.kv import dvvset
from dynamo.kv import object as objects
from dynamo.node.maintenance import Maintenance
from dynamo.storage.memory import MemStore
from gossip.antientropy import AntiEntropy
from http_api.types import Content
from ring.position import storage_key, storage_key_position
from ring.ring import Ring

EVERYTHING = {3: [(-1, 2**64 - 1)]}
GRACE_S = 60.0
TTL_S = 600.0
NOW = 1_800_000_000.0


def tomb(at_s: float) -> objects.Obj:
    c = Content(value=b"", deleted=True, last_modified_us=int(at_s * 1e6))
    return dvvset.update(dvvset.new(c), None, "n1/1")


def setup(nodes: int = 3) -> tuple[MemStore, AntiEntropy, Maintenance, Ring]:
    store = MemStore("n1", rng=random.Random(1))
    aae = AntiEntropy("n1", store.incarnation)
    ring = Ring({f"n{i}": 1.0 for i in range(1, nodes + 1)}, 16)
    m = Maintenance(
        store,
        aae,
        node_id="n1",
        ring=lambda: ring,
        n_val_of=lambda k: 3,
        leaving=lambda: False,
        grace_s=GRACE_S,
        marker_ttl_s=TTL_S,
    )
    return store, aae, m, ring


def proven(aae: AntiEntropy, peer: str, upto: int) -> None:
    """``peer`` pulled our log up to ``upto`` for every range (what its requests say)."""
    aae.progress(peer).has_ours = (aae.incarnation, EVERYTHING, upto)


def test_a_tombstone_is_reaped_only_when_old_enough_and_held_by_every_primary() -> None:
    store, aae, m, _ = setup()
    _, k = storage_key(b"b", b"gone")
    seq = store.put(k, tomb(NOW - 10), None, tombstone=True)
    proven(aae, "n2", seq)
    proven(aae, "n3", seq)
    assert m.reap(NOW) == 0  # younger than the grace period
    proven(aae, "n3", seq - 1)
    assert m.reap(NOW + GRACE_S) == 0  # n3 has not got it
    proven(aae, "n3", seq)
    assert m.reap(NOW + GRACE_S) == 1
    assert store.get(k) is None
    marker = store.marker(k)
    assert marker is not None
    assert objects.decode_marker(marker)[1] == NOW + GRACE_S
    assert m.stats.reaped == 1


def test_a_live_key_is_never_reaped_and_markers_expire_after_their_lifetime() -> None:
    store, aae, m, _ = setup()
    _, live = storage_key(b"b", b"live")
    c = Content(value=b"v", last_modified_us=1)
    seq = store.put(live, dvvset.update(dvvset.new(c), None, "n1/1"), None)
    proven(aae, "n2", seq)
    proven(aae, "n3", seq)
    assert m.reap(NOW + 10 * GRACE_S) == 0
    _, k = storage_key(b"b", b"gone")
    store.put_marker(k, objects.encode_marker(tomb(NOW), NOW))
    assert m.expire_markers(NOW + TTL_S) == 0
    assert m.expire_markers(NOW + TTL_S + 1) == 1
    assert store.marker(k) is None
    assert m.stats.markers_expired == 1


async def test_cleanup_drops_a_key_no_longer_ours_once_every_primary_holds_it() -> None:
    store, aae, m, ring = setup(nodes=4)
    key = next(
        f"k{i}".encode()
        for i in range(1000)
        if "n1" not in ring.primaries(storage_key(b"b", f"k{i}".encode())[0], 3)
    )
    pos, k = storage_key(b"b", key)
    assert storage_key_position(k) == pos
    c = Content(value=b"v", last_modified_us=1)
    seq = store.put(k, dvvset.update(dvvset.new(c), None, "n1/1"), None)
    primaries = ring.primaries(pos, 3)
    for p in primaries[:-1]:
        proven(aae, p, seq)
    await m.cleanup_chunk()
    assert store.get(k) is not None  # one primary has not pulled it yet
    assert m.stats.cleanup_waiting == 1
    assert m.cleanup_pending
    proven(aae, primaries[-1], seq)
    await m.cleanup_chunk()
    assert store.get(k) is None
    assert m.stats.dropped == 1
    assert not m.cleanup_pending
