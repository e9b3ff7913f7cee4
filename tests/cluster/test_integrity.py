"""Corruption injected into one real node's RocksDB while it is down, as a bug or a bad
restore would leave it: values with flipped bytes, and objects deleted together with
their log entries. No log shows either. Restarted, the node never serves a damaged
value, counts each one, and the tictac backstop puts every object back from the other
replicas, without a single client read: in buckets of the default n_val and of another
(n_val 2 here, kept in a tree of its own)."""

from __future__ import annotations

import random
import time

import pytest

from dynamo.kv import object as objects
from dynamo.storage.contract import CF_LOG, CF_OBJECTS, u64
from dynamo.storage.rocksdb import Store
from dynamo.tools.localcluster import LocalCluster
from http_api.admin import AdminClient
from http_api.client_sync import Client
from ring.position import storage_key
from tests.cluster.conftest import MakeCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]
KEYS = 400
FLIPPED = 25
LOST = 25
PAIRS = 150  # keys of a bucket at n_val 2
PAIRS_LOST = 10


def local_copies(
    c: LocalCluster, node: int, keys: list[str], bucket: str = "data"
) -> dict[str, object]:
    admin = AdminClient(c[node].url)
    out: dict[str, object] = {}
    for k in keys:
        got = admin.local(bucket, k)
        out[k] = (got.get("context"), tuple(s["vtag"] for s in got.get("siblings", [])))
    return out


def n_val_of(url: str, bucket: str) -> int:
    with Client(url) as cl:
        return int(cl.get_bucket_props(bucket)["n_val"])


def held(c: LocalCluster, node: int, keys: list[str]) -> list[str]:
    """The keys of the n_val 2 bucket ``node`` holds a copy of."""
    admin = AdminClient(c[node].url)
    return [k for k in keys if admin.local("pairs", k)["found"]]


def test_flipped_bytes_and_lost_objects_are_detected_and_repaired(
    make_cluster: MakeCluster,
) -> None:
    c = make_cluster(3, settings=("tictac_exchange_interval_s=1",))
    c.wait_converged()
    keys = [f"k{i:03}" for i in range(KEYS)]
    pairs = [f"p{i:03}" for i in range(PAIRS)]
    with Client(c[0].url) as cl:
        cl.set_bucket_props("pairs", {"n_val": 2})
        deadline = time.monotonic() + 30
        while any(n_val_of(n.url, "pairs") != 2 for n in c.nodes):
            assert time.monotonic() < deadline, "the bucket's n_val did not spread"
            time.sleep(0.2)
        for k in keys:
            cl.put("data", k, f"value of {k}".encode(), content_type="text/plain", w="all")
        for k in pairs:
            cl.put("pairs", k, f"pair {k}".encode(), content_type="text/plain", w="all")
    want = local_copies(c, 0, keys)
    victim = c[1]
    assert local_copies(c, 1, keys) == want
    on_victim = held(c, 1, pairs)
    assert 0 < len(on_victim) < PAIRS  # n_val 2 of 3 nodes: some keys, not all
    want_pairs = local_copies(c, 1, on_victim, "pairs")
    deadline = time.monotonic() + 60  # the log exchange has read every write: nothing new

    def caught_up() -> bool:
        marks = AdminClient(victim.url).get("/admin/aae")["peers"]
        heads = {n.node_id: n.stats()["storage_seq"] for n in (c[0], c[2])}
        return all(marks.get(p, {}).get("watermark", -1) >= h for p, h in heads.items())

    while not caught_up():
        assert time.monotonic() < deadline, "the log exchange did not catch up"
        time.sleep(0.2)
    assert victim.stop() == 0

    rng = random.Random(11)
    chosen = rng.sample(keys, FLIPPED + LOST)
    store = Store(victim.data_dir, victim.node_id)  # raw writes behind the node's back
    try:
        for k in chosen[:FLIPPED]:
            objkey = storage_key(b"data", k.encode())[1]
            stored = bytearray(store.get_in(CF_OBJECTS, objkey) or b"")
            stored[-14] ^= 0x08  # one bit of the value
            store._apply([(CF_OBJECTS, objkey, bytes(stored))])
        lost = [(b"data", k) for k in chosen[FLIPPED:]]
        lost += [(b"pairs", k) for k in rng.sample(on_victim, PAIRS_LOST)]
        for bucket, k in lost:
            objkey = storage_key(bucket, k.encode())[1]
            seq = objects.stored_seq(store.get_in(CF_OBJECTS, objkey) or b"")
            store._apply([(CF_OBJECTS, objkey, None), (CF_LOG, u64(seq), None)])
    finally:
        store.close()

    c.start(victim)
    c.wait_up_everywhere(victim, up=True)
    deadline = time.monotonic() + 120
    while (
        local_copies(c, 1, chosen) != {k: want[k] for k in chosen}
        or local_copies(c, 1, on_victim, "pairs") != want_pairs
    ):
        assert time.monotonic() < deadline, "the damage was not repaired in 120 s"
        time.sleep(1.0)
    stats = victim.stats()
    print(
        f"injected: {FLIPPED} flipped, {LOST} + {PAIRS_LOST} (n_val 2) lost; detected:"
        f" {stats['storage_corrupt_objects_total']} damaged; repaired by the backstop:"
        f" {stats['tictac_repaired_total']}, by the log exchange:"
        f" {stats['aae_objects_changed_total']};"
        f" tictac exchanges {stats['tictac_exchanges_total']}"
    )
    assert stats["storage_corrupt_objects_total"] == FLIPPED
    assert stats["tictac_repaired_total"] == FLIPPED + LOST + PAIRS_LOST  # no log showed them
    assert local_copies(c, 1, keys) == want
    with Client(victim.url) as cl:  # and every value reads back right through the node
        for k in chosen:
            assert cl.get("data", k, r=1).value == f"value of {k}".encode()
