"""Stored objects are sealed with a checksum, on both stores: a value whose bytes were
changed behind the store's back (a bug, a bad restore, rot) is never served, but counted
and removed with its log and index entries; RocksDB's own block checksums stop a read
of damaged table data with a clear error, never garbage."""

from __future__ import annotations

import random
from pathlib import Path

from dynamo.kv import dvvset, index
from dynamo.kv import object as objects
from dynamo.storage.contract import CF_INDEX, CF_LOG, CF_OBJECTS, StorageError, seal, u64, unseal
from dynamo.storage.rocksdb import Store
from http_api.types import Content
from tests.unit.test_storage_contract import Opener, key, obj, open_store

__all__ = ["open_store"]  # the fixture, shared with the contract's tests


def test_a_sealed_value_checks_every_byte() -> None:
    body = objects.encode(obj(b"value"), 7)
    stored = seal(body)
    assert unseal(stored) == body
    for i in range(len(stored)):
        flipped = bytearray(stored)
        flipped[i] ^= 0x10
        assert unseal(bytes(flipped)) is None, i
    assert unseal(body) == body  # written before seals: read unchecked


def test_a_damaged_object_is_never_served_and_is_removed_with_its_entries(
    open_store: Opener,
) -> None:
    s = open_store()
    c = Content(value=b"value", indexes=(("tag_bin", "x"),), last_modified_us=1)
    o = dvvset.update(dvvset.new(c), None, "n1/1")
    k = key(10)
    seq = s.put(k, o, None)
    s.put(key(20), obj(b"other"), None)
    assert len(list(s.scan(family=CF_INDEX))) == 1
    stored = s.get_in(CF_OBJECTS, k)
    assert stored is not None
    rotten = bytearray(stored)
    rotten[-12] ^= 0x01  # a bit of the value, as rot or a bad copy would change it
    s._apply([(CF_OBJECTS, k, bytes(rotten))])  # behind the store's back
    assert s.get_raw(k) is None
    assert s.corrupt_total == 1
    assert s.get_in(CF_OBJECTS, k) is None  # removed
    assert s.get_in(CF_LOG, u64(seq)) is None
    assert list(s.scan(family=CF_INDEX)) == []
    assert [k2 for k2, _ in s.scan()] == [key(20)]
    # the key can be written again, sealed
    s.put(k, o, None)
    assert s.get(k) is not None


def test_a_scan_skips_and_removes_damaged_objects(open_store: Opener) -> None:
    s = open_store()
    for p in (10, 20, 30):
        s.put(key(p), obj(b"v%d" % p), None)
    stored = s.get_in(CF_OBJECTS, key(20))
    assert stored is not None
    s._apply([(CF_OBJECTS, key(20), b"\x00" + stored[1:])])  # even its first byte
    assert [k for k, _ in s.scan()] == [key(10), key(30)]
    assert s.corrupt_total == 1
    assert s.get_in(CF_OBJECTS, key(20)) is None


def test_rocksdb_block_damage_is_an_error_naming_it_never_garbage(tmp_path: Path) -> None:
    rng = random.Random(5)
    s = Store(tmp_path / "db", "n1")
    values = {key(p, b"k%d" % p): rng.randbytes(200) for p in range(3000)}
    for k, v in values.items():
        s.put(k, obj(v), None)
    s._db.flush()  # into table files, where RocksDB keeps block checksums
    s.close()
    tables = sorted((tmp_path / "db").glob("*.sst"), key=lambda p: p.stat().st_size)
    assert tables
    big = tables[-1]
    data = bytearray(big.read_bytes())
    for at in range(len(data) // 10, len(data) // 2, 997):  # data blocks, not the footer
        data[at] ^= 0xFF
    big.write_bytes(bytes(data))
    s = Store(tmp_path / "db", "n1")
    try:
        errors: list[str] = []
        for k, v in values.items():
            try:
                got = s.get(k)
            except StorageError as e:
                errors.append(str(e))
                continue
            assert got is not None
            assert dvvset.values(got[0])[0].value == v  # right, or an error
        assert errors
        assert all("orrupt" in e or "checksum" in e for e in errors), errors[:3]
    finally:
        s.close()


def test_an_index_entry_never_outlives_a_damaged_object(open_store: Opener) -> None:
    s = open_store()
    c = Content(value=b"v", indexes=(("n_int", "5"),), last_modified_us=1)
    o = dvvset.update(dvvset.new(c), None, "n1/1")
    k = key(40)
    s.put(k, o, None)
    assert [e for e, _ in s.scan(family=CF_INDEX)] == list(index.entries(k, o))
    stored = s.get_in(CF_OBJECTS, k)
    assert stored is not None
    s._apply([(CF_OBJECTS, k, stored[:-20] + b"\x00" * 20)])
    assert s.get(k) is None
    assert list(s.scan(family=CF_INDEX)) == []
