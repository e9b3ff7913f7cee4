"""Index queries equal the same query computed from the stored objects, whatever writes,
overwrites, deletes, sibling states, merges, reaps and drops came before: on both
stores, through the node's own answer (``index_query.answer``) page by page."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynamo.kv import dvvset, index
from dynamo.kv import object as objects
from dynamo.kv.index_query import answer
from dynamo.kv.replica import Replica
from dynamo.net.methods import IndexPageRequest
from dynamo.storage.contract import (
    CF_INDEX,
    CF_META,
    IXREF_PREFIX,
    META_INDEXED,
    Op,
    StoreAPI,
)
from dynamo.storage.memory import Disk, MemStore
from dynamo.storage.rocksdb import Store
from http_api import indexes
from http_api.types import Content
from ring.position import RING_SIZE, storage_key, storage_key_bkey

KEYS = [f"k{i}".encode() for i in range(12)]
BUCKETS = [b"b", b"c"]
TERMS = ["", "a", "ab", "b", "b\x00", "zz"]
EVERYTHING = ((-1, RING_SIZE - 1),)
HALVES = ((-1, RING_SIZE // 3), (RING_SIZE // 3, RING_SIZE - 1))


def fields(rng: random.Random) -> tuple[tuple[str, str], ...]:
    out = []
    for _ in range(rng.randrange(3)):
        if rng.random() < 0.5:
            out.append(("t_bin", rng.choice(TERMS)))
        else:
            out.append(("n_int", str(rng.randrange(-3, 4) * rng.choice((1, 10**20)))))
    return indexes.normalize(out)


def mutate(replica: Replica, rng: random.Random, step: int) -> None:
    bucket, key = rng.choice(BUCKETS), rng.choice(KEYS)
    _, objkey = storage_key(bucket, key)
    store = replica.store
    local = replica.read(objkey)
    kind = rng.random()
    context = dvvset.join(local) if local is not None and rng.random() < 0.7 else ()
    if kind < 0.55:  # a client's write: an overwrite with its context, or a sibling
        c = Content(value=b"v%d" % step, indexes=fields(rng), last_modified_us=step)
        replica.coordinate(
            objkey, c, context, hint_for=None, allow_mult=True, last_write_wins=False
        )
    elif kind < 0.7:  # a delete
        c = Content(value=b"", deleted=True, last_modified_us=step)
        replica.coordinate(
            objkey, c, context, hint_for=None, allow_mult=True, last_write_wins=False
        )
    elif kind < 0.85:  # a replica's concurrent copy merged in (repair, handoff)
        c = Content(value=b"r%d" % step, indexes=fields(rng), last_modified_us=step)
        other = dvvset.update(dvvset.new(c), None, f"peer/{step}")
        replica.write(objkey, other, None, allow_mult=rng.random() < 0.8)
    else:  # reaped if a tombstone, or dropped (the node no longer replicates it)
        got = store.get(objkey)
        if got is None:
            return
        obj, seq = got
        if objects.is_tombstone(obj):
            store.reap(objkey, seq, objects.encode_marker(obj, 0.0))
        elif rng.random() < 0.3:
            store.drop(objkey, seq)


def expected(store: StoreAPI, bucket: bytes, q: indexes.IndexQuery) -> list[index.Entry]:
    """The query computed from the objects themselves."""
    k = q.kind
    rx = re.compile(q.term_regex) if q.term_regex else None
    out: set[index.Entry] = set()
    for objkey, raw in store.scan():
        b, key = storage_key_bkey(objkey)
        if b != bucket:
            continue
        obj = objects.decode(raw)[0]
        live = [c for c in dvvset.values(obj) if not c.deleted]
        if not live:
            continue
        if k == indexes.BUCKET_FIELD:
            out.add((key, key))
            continue
        for c in live:
            for name, term in c.indexes:
                if name != q.name:
                    continue
                if k == indexes.INT:
                    lo, hi = int(q.start), int(q.end if q.end is not None else q.start)
                    if not lo <= int(term) <= hi:
                        continue
                else:
                    hi_s = q.end if q.end is not None else q.start
                    if not q.start.encode() <= term.encode() <= hi_s.encode():
                        continue
                if rx is not None and not rx.search(term):
                    continue
                out.add((index.encode_term(k, term), key))
    return sorted(out)


def asked(
    store: StoreAPI, bucket: bytes, q: indexes.IndexQuery, ranges: index.Ranges, limit: int
) -> list[index.Entry]:
    s = index.scan_of(bucket, q)
    got: list[index.Entry] = []
    after = None
    while True:
        req = IndexPageRequest(bucket, q.name, s.lo, s.hi, s.regex, ranges, after, limit)
        reply = answer(store, req)
        assert reply.entries == sorted(reply.entries)
        got += reply.entries
        if not reply.more:
            return got
        after = reply.entries[-1]


def queries(rng: random.Random) -> Iterator[indexes.IndexQuery]:
    yield indexes.query("$bucket", "b")
    for _ in range(6):
        a, b = sorted(rng.sample(TERMS, 2))
        yield indexes.query("t_bin", a, b)
        yield indexes.query("t_bin", rng.choice(TERMS))
        lo = rng.randrange(-40, 40) * rng.choice((1, 10**19))
        yield indexes.query("n_int", str(lo), str(lo + rng.randrange(10**21)))
        yield indexes.query("n_int", str(rng.randrange(-3, 4)))
    yield indexes.query("t_bin", "", "zzz", term_regex="^b")


def check(store: StoreAPI, rng: random.Random) -> None:
    for bucket in BUCKETS:
        for q in queries(rng):
            want = [(t, k) for t, k in expected(store, bucket, q)]
            limit = rng.choice((1, 2, 5, 1000))
            assert asked(store, bucket, q, EVERYTHING, limit) == want, q
            halves = [asked(store, bucket, q, (r,), limit) for r in HALVES]
            assert index.merged(halves) == want, q
    # each key's list of its entries (what removes them without the object) is exact
    refs = dict(store.meta_scan(IXREF_PREFIX, b"", 10**6))
    for objkey, raw in store.scan():
        want_refs = sorted(index.entries(objkey, objects.decode(raw)[0]))
        got_refs = index.unref(refs.pop(objkey)) if objkey in refs else []
        assert got_refs == want_refs, objkey
    assert refs == {}, "a list of entries outlived its object"
    # every index entry belongs to a live object that carries it: none outlives its object
    for ikey, pos in store.scan(family=CF_INDEX):
        found = [k for k, v in store.scan(pos, (int.from_bytes(pos, "big") + 1).to_bytes(8, "big"))]
        assert found, ikey


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.integers(0, 2**32), st.integers(5, 120))
def test_memory_store_queries_equal_the_objects(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    store = MemStore("n1", Disk(), random.Random(seed))
    replica = Replica(store, random.Random(seed), wallclock=lambda: 1000.0)
    for step in range(steps):
        mutate(replica, rng, step)
    check(store, rng)


@pytest.mark.parametrize("seed", range(3))
def test_rocksdb_queries_equal_the_objects(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = Store(tmp_path / "db", "n1")
    try:
        replica = Replica(store, random.Random(seed), wallclock=lambda: 1000.0)
        for step in range(300):
            mutate(replica, rng, step)
            if step % 100 == 99:
                check(store, rng)
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["memory", "rocksdb"])
def test_objects_stored_before_indexes_are_indexed_once_at_start(tmp_path: Path, kind: str) -> None:
    disk = Disk()

    def open_() -> StoreAPI:
        return MemStore("n1", disk) if kind == "memory" else Store(tmp_path / "db", "n1")

    store = open_()
    replica = Replica(store, random.Random(1), wallclock=lambda: 1000.0)
    rng = random.Random(7)
    for step in range(60):
        mutate(replica, rng, step)
    want = {b: expected(store, b, indexes.query("t_bin", "", "zzz")) for b in BUCKETS}
    # as a store from before indexes: no entries, no mark
    wipe: list[Op] = [(CF_INDEX, k, None) for k, _ in store.scan(family=CF_INDEX)]
    store._apply([*wipe, (CF_META, META_INDEXED, None)])
    assert list(store.scan(family=CF_INDEX)) == []
    store.close()
    if kind == "memory":
        store.crash(power_loss=False)  # type: ignore[attr-defined]
    store = open_()
    try:
        Replica(store, random.Random(2), wallclock=lambda: 1000.0)
        for b in BUCKETS:
            got = asked(store, b, indexes.query("t_bin", "", "zzz"), EVERYTHING, 1000)
            assert got == want[b]
        assert store.build_index() == 0  # once
    finally:
        store.close()
