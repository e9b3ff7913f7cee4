"""The storage contract, run against both stores: RocksDB (``Store``) and the in-memory
``MemStore`` the simulation runs on. The simulation is only as true as this match."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from dynamo.kv import dvvset
from dynamo.kv import object as objects
from dynamo.storage.contract import NO_SPACE, DiskFull, StorageError, StoreAPI
from dynamo.storage.memory import Disk, MemStore
from dynamo.storage.rocksdb import Store
from http_api.types import Content
from tests.support.small_fs import fill, small_filesystem


class Opener(Protocol):
    def __call__(self, node_id: str = "n1") -> StoreAPI: ...


@pytest.fixture(params=["memory", "rocksdb"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the same node's store again after the last one was closed."""
    disk = Disk()
    opened: list[StoreAPI] = []

    def open_(node_id: str = "n1") -> StoreAPI:
        s: StoreAPI = (
            MemStore(node_id, disk, random.Random(len(opened)))
            if request.param == "memory"
            else Store(tmp_path / "db", node_id)
        )
        opened.append(s)
        return s

    yield open_
    for s in opened:
        s.close()


def key(pos: int, name: bytes = b"k") -> bytes:
    return pos.to_bytes(8, "big") + b"\x00\x01b" + name


def obj(value: bytes, actor: str = "n1/1", deleted: bool = False) -> objects.Obj:
    c = Content(value=value, last_modified_us=1, deleted=deleted)
    return dvvset.update(dvvset.new(c), None, actor)


def test_a_new_store_is_fresh_and_keeps_its_identity_across_a_clean_restart(
    open_store: Opener,
) -> None:
    s = open_store()
    assert s.fresh
    assert s.node_id == "n1"
    inc = s.incarnation
    s.close()
    again = open_store()
    assert not again.fresh
    assert again.incarnation == inc
    assert again.clean_start


def test_a_store_refuses_another_node_id(open_store: Opener) -> None:
    open_store().close()
    with pytest.raises(StorageError):
        open_store("n2")


def test_put_get_and_the_log_hold_one_entry_per_key(open_store: Opener) -> None:
    s = open_store()
    k1, k2 = key(10), key(20)
    seq1 = s.put(k1, obj(b"a"), None)
    seq2 = s.put(k2, obj(b"b"), None)
    got = s.get(k1)
    assert got is not None
    assert got[1] == seq1
    assert [c.value for c in dvvset.values(got[0])] == [b"a"]
    seq3 = s.put(k1, obj(b"c"), seq1)
    assert seq1 < seq2 < seq3 == s.seq
    assert s.log_after(0, 10) == [(seq2, k2), (seq3, k1)]
    assert s.log_after(seq2, 10) == [(seq3, k1)]
    assert s.log_after(0, 1) == [(seq2, k2)]
    assert s.get(key(30)) is None
    assert s.digest(k1) == objects.digest(s.get_raw(k1) or b"")


def test_scan_walks_keys_in_ring_order_within_bounds(open_store: Opener) -> None:
    s = open_store()
    for pos in (50, 10, 30, 20, 40):
        s.put(key(pos), obj(b"%d" % pos), None)
    assert [k[:8] for k, _ in s.scan()] == [key(p)[:8] for p in (10, 20, 30, 40, 50)]
    assert [k for k, _ in s.scan(key(20), key(40))] == [key(20), key(30)]


def test_seqs_are_never_reused_after_a_restart(open_store: Opener) -> None:
    s = open_store()
    last = 0
    for i in range(5):
        last = s.put(key(i), obj(b"v"), None)
    s.close()
    again = open_store()
    assert again.seq >= last
    assert again.put(key(99), obj(b"w"), None) > last


def test_reap_leaves_a_marker_and_removes_the_key_and_its_log_entry(open_store: Opener) -> None:
    s = open_store()
    k = key(7)
    tomb = obj(b"", deleted=True)
    seq = s.put(k, tomb, None, tombstone=True)
    assert not s.reap(k, seq + 1, b"m")  # not at the seq expected: left alone
    marker = objects.encode_marker(tomb, 123.0)
    assert s.reap(k, seq, marker)
    assert s.get(k) is None
    assert s.marker(k) == marker
    assert s.log_after(0, 10) == []
    assert s.meta_scan(b"tomb/", b"", 10) == []
    assert s.put(k, obj(b"again"), None, clear_marker=True) > seq
    assert s.marker(k) is None


def test_drop_removes_a_key_without_a_marker(open_store: Opener) -> None:
    s = open_store()
    seq = s.put(key(3), obj(b"v"), None)
    assert s.drop(key(3), seq)
    assert s.get(key(3)) is None
    assert s.marker(key(3)) is None
    assert not s.drop(key(3), seq)


def test_put_marker_keeps_a_history_without_an_object(open_store: Opener) -> None:
    s = open_store()
    s.put_marker(key(5), b"history")
    assert s.marker(key(5)) == b"history"
    assert s.get(key(5)) is None


def test_hints_are_kept_per_target_with_when_they_were_first_stored(open_store: Opener) -> None:
    s = open_store()
    s.put_hint("n2", key(1), obj(b"a"), 1000)
    s.put_hint("n2", key(2), obj(b"b"), 2000)
    s.put_hint("n3", key(1), obj(b"c"), 3000)
    assert s.hint_counts() == {"n2": 2, "n3": 1}
    got = s.get_hint("n2", key(2))
    assert got is not None
    assert got[1] == 2000
    assert [c.value for c in dvvset.values(got[0])] == [b"b"]
    batch = s.hints_for("n2", b"", 10)
    assert [k for k, _ in batch] == [key(1), key(2)]
    assert [objects.stored_seq(v) for _, v in batch] == [1000, 2000]
    assert s.hints_for("n2", key(1), 10) == batch[1:]
    assert s.hints_for("n2", b"", 1) == batch[:1]
    s.put_hint("n2", key(1), obj(b"a2"), 1000)  # rewritten since it was read
    assert s.delete_hints_if_unchanged("n2", batch) == 1
    assert s.hint_counts() == {"n2": 1, "n3": 1}
    assert s.get_hint("n2", key(2)) is None
    assert s.get_hint("n4", key(1)) is None


def test_meta_puts_scans_and_deletes(open_store: Opener) -> None:
    s = open_store()
    for name in (b"aae/n3", b"aae/n2", b"other"):
        s.put_meta(name, name.upper())
    assert s.meta_scan(b"aae/", b"", 10) == [(b"n2", b"AAE/N2"), (b"n3", b"AAE/N3")]
    assert s.meta_scan(b"aae/", b"n2", 10) == [(b"n3", b"AAE/N3")]
    s.delete_meta(b"aae/n2")
    assert s.get_meta(b"aae/n2") is None
    assert s.get_meta(b"other") == b"OTHER"


async def test_what_was_written_before_a_clean_close_is_there_after_it(
    open_store: Opener,
) -> None:
    s = open_store()
    seq = s.put(key(1), obj(b"v"), None)
    s.put_hint("n2", key(2), obj(b"h"), 5)
    s.put_meta(b"name", b"value")
    await s.sync_wal()
    s.close()
    again = open_store()
    assert again.get(key(1)) is not None
    assert again.log_after(0, 10) == [(seq, key(1))]
    assert again.hint_counts() == {"n2": 1}
    assert again.get_meta(b"name") == b"value"
    with pytest.raises(StorageError):
        s.put_meta(b"closed", b"x")


# --- A full disk -------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "rocksdb"])
def full_disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[StoreAPI, Any]]:
    """A store and a switch: ``switch(True)`` fills its disk, ``switch(False)`` frees it.
    RocksDB's disk is a small tmpfs filled by a file (root only)."""
    if request.param == "memory":
        mem = MemStore("n1", Disk(), random.Random(1))

        def switch_mem(full: bool) -> None:
            mem.disk_full = full

        yield mem, switch_mem
        mem.close()
        return
    with small_filesystem(tmp_path / "small", 16) as root:
        store = Store(root / "db", "n1")
        filler: list[Path] = []

        def switch_rocksdb(full: bool) -> None:
            if full:
                filler.append(fill(root, 256 * 1024))
            else:
                filler.pop().unlink()

        try:
            yield store, switch_rocksdb
        finally:
            store.close()


def _fill_until_refused(s: StoreAPI) -> DiskFull:
    value = b"x" * 65536
    for i in range(1000):  # RocksDB: until the WAL no longer fits
        try:
            s.put(key(100 + i), obj(value), None)
        except DiskFull as e:
            return e
    raise AssertionError("1,000 writes of 64 KiB and the full disk refused none")


def _refusal(s: StoreAPI) -> str | None:
    return s.write_refusal


def _values(s: StoreAPI, k: bytes) -> list[bytes]:
    got = s.get(k)
    assert got is not None
    return [c.value for c in dvvset.values(got[0])]


def test_a_full_disk_refuses_writes_keeps_reads_and_recovers_by_itself(
    full_disk: tuple[StoreAPI, Any],
) -> None:
    s, switch = full_disk
    s.put(key(1), obj(b"before"), None)
    switch(True)
    refused = _fill_until_refused(s)
    assert "disk is full" in str(refused)
    assert s.write_refusal is not None
    assert NO_SPACE in s.write_refusal
    failures = s.write_failures_total
    assert failures >= 1
    assert not s.probe_write()
    assert s.write_failures_total > failures  # the probe was refused too, and counted
    assert _values(s, key(1)) == [b"before"]
    switch(False)
    deadline = time.monotonic() + 30  # RocksDB resumes from a no-space error by itself
    while not s.probe_write():
        assert time.monotonic() < deadline, f"writes still refused: {s.write_refusal}"
        time.sleep(0.1)
    assert _refusal(s) is None  # (a call: mypy narrowed the attribute to str above)
    s.put(key(2), obj(b"after"), None)
    assert _values(s, key(2)) == [b"after"]
