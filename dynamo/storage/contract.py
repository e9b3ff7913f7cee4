"""The store contract: what a node needs of its storage, and the batches every store applies.

Families (DESIGN section 5)::

    objects  position(8, BE) + encode_bkey(bucket, key)  -> sealed object (msgpack, with its seq)
    log      seq (8, BE)                                  -> objects key
    hints    len(target)(1) + target + objects key        -> object for that target, its
                                                             seq field holding when the
                                                             hint was first stored (ms)
    meta     name                                         -> bytes
    index    bucket, index name, term, key (``kv.index``)  -> position (8, BE)

A stored object is sealed: 0xC1 (a byte msgpack never writes), the CRC-32 of the
encoded object (4 bytes, BE), then the object. Every read checks it; a value that fails
(a bit flip on disk, a bad restore) is never served: it is logged, counted
(``corrupt_total``) and removed with its log and index entries, so this replica reads
as missing one copy, and read repair or anti-entropy puts a good copy back. Objects
written before seals (they start 0x93, msgpack's 3-array) are read unchecked and sealed
on their next write. Damage RocksDB finds itself (a block checksum) is a
``StorageError`` naming it.

Every change of an object is one atomic batch: the object, its new log entry, the
removal of its previous log entry, and its index entries' changes, so the log holds
one entry per key, the seq of its latest change, and an index entry never outlives
the object that carries it. ``rocksdb.Store`` implements it on RocksDB, ``memory.MemStore``
in memory for simulations; ``tests/unit/test_storage_contract.py`` holds both to it.
"""

from __future__ import annotations

import abc
import logging
import struct
import zlib
from collections.abc import Callable, Iterator

from dynamo.kv import index
from dynamo.kv import object as objects
from dynamo.kv.object import Obj

log = logging.getLogger(__name__)

CF_OBJECTS = "objects"
CF_LOG = "log"
CF_HINTS = "hints"
CF_META = "meta"
CF_INDEX = "index"
FAMILIES = (CF_OBJECTS, CF_LOG, CF_HINTS, CF_META, CF_INDEX)

META_NODE_ID = b"node_id"
META_INCARNATION = b"incarnation"
META_SEQ_FLOOR = b"seq_floor"
META_CLEAN = b"clean_shutdown"  # present only while the store is closed cleanly
META_SEQ_LEASE = b"seq_lease"  # seqs up to it may have been handed out: never reuse them
META_INDEXED = b"indexed"  # every object's index entries are in the index family
META_PROBE = b"write_probe"  # written now and then while writes fail, to see them work again
NO_SPACE = "No space left on device"  # in the error of a write the full disk refused
SEQ_LEASE_BLOCK = 10_000
TOMB_PREFIX = b"tomb/"  # + objects key -> seq: tombstones the reaper walks
REAPED_PREFIX = b"reaped/"  # + objects key -> marker: the history of a reaped tombstone
IXREF_PREFIX = b"ixref/"  # + objects key -> the key's index entries (kv.index.ref)

_U64 = struct.Struct(">Q")
SEAL = b"\xc1"
LEGACY = b"\x93"


def seal(encoded: bytes) -> bytes:
    """An encoded object as stored: its checksum first."""
    return SEAL + zlib.crc32(encoded).to_bytes(4, "big") + encoded


def unseal(stored: bytes) -> bytes | None:
    """The encoded object, or None when its checksum (or its first byte) is wrong."""
    head = stored[:1]
    if head == SEAL:
        body = stored[5:]
        return body if zlib.crc32(body) == int.from_bytes(stored[1:5], "big") else None
    return stored if head == LEGACY else None


class StorageError(Exception):
    """RocksDB refused an operation (disk full, I/O error, closed)."""


class DiskFull(StorageError):
    """The disk has no space left: writes fail until space returns, reads still work."""


def u64(n: int) -> bytes:
    return _U64.pack(n)


Op = tuple[str, bytes, bytes | None]  # (column family, key, value or None to delete)


def put_ops(
    objkey: bytes,
    encoded: bytes,
    seq: int,
    old_seq: int | None,
    tombstone: bool,
    was_tombstone: bool,
    clear_marker: bool,
) -> list[Op]:
    """The one batch that stores a new version of a key (every store applies the same)."""
    ops: list[Op] = [(CF_OBJECTS, objkey, encoded), (CF_LOG, u64(seq), objkey)]
    if old_seq:
        ops.append((CF_LOG, u64(old_seq), None))
    if tombstone:
        ops.append((CF_META, TOMB_PREFIX + objkey, u64(seq)))
    elif was_tombstone:
        ops.append((CF_META, TOMB_PREFIX + objkey, None))
    if clear_marker:
        ops.append((CF_META, REAPED_PREFIX + objkey, None))
    return ops


def index_ops(objkey: bytes, old: Obj | None, new: Obj | None) -> list[Op]:
    """The index entries that take a key from ``old`` to ``new``, and the list of the
    key's entries kept beside them (``IXREF_PREFIX``): what removes them even when the
    object they came from can no longer be read."""
    before = index.entries(objkey, old)
    after = index.entries(objkey, new)
    if before.keys() == after.keys():
        return []
    ops: list[Op] = [(CF_INDEX, k, None) for k in before if k not in after]
    ops += [(CF_INDEX, k, v) for k, v in after.items() if k not in before]
    ops.append((CF_META, IXREF_PREFIX + objkey, index.ref(after) if after else None))
    return ops


def remove_ops(
    objkey: bytes, seq: int, seq_floor: int, marker: bytes | None, stored: Obj | None = None
) -> list[Op]:
    """The one batch that removes a key (reaped: leaving ``marker``; dropped: none), with
    the index entries of ``stored``, the object removed."""
    ops: list[Op] = index_ops(objkey, stored, None)
    ops += [
        (CF_OBJECTS, objkey, None),
        (CF_LOG, u64(seq), None),
        (CF_META, TOMB_PREFIX + objkey, None),
        (CF_META, META_SEQ_FLOOR, u64(seq_floor)),
    ]
    if marker is not None:
        ops.append((CF_META, REAPED_PREFIX + objkey, marker))
    return ops


class StoreAPI(abc.ABC):
    """What the node needs of its storage. ``Store`` is RocksDB; ``dynamo.storage.memory.MemStore``
    is an in-memory fake for simulations (it can lose unsynced writes on a crash).

    Both implement the reads and one atomic ``_apply``; the object batches (put, reap,
    drop), the meta writes and the seq lease are written once, here.
    """

    node_id: str
    incarnation: str
    fresh: bool  # the data directory was empty when opened
    seq: int
    closed: bool
    clean_start: bool  # the last run closed the store; False after kill -9 or power loss
    _seq_lease: int
    write_refusal: str | None = None  # why writes fail, from the first failure to a success
    write_failures_total: int = 0
    corrupt_total: int = 0  # stored objects whose checksum failed: removed, never served
    open_iterators: int = 0  # scans not yet finished or closed
    # Told of every change of a stored object: (objects key, old, new), encoded or None
    # (the tictac tree's hook). A damaged object removed or overwritten, whose bytes are
    # unknown, is told to ``on_lost`` instead, by its objects key.
    on_change: Callable[[bytes, bytes | None, bytes | None], None] | None = None
    on_lost: Callable[[bytes], None] | None = None

    def _verified(self, objkey: bytes, stored: bytes | None) -> bytes | None:
        """The object stored at ``objkey``, checked; a damaged one is removed and reads
        as absent."""
        if stored is None:
            return None
        body = unseal(stored)
        if body is None:
            self._quarantine(objkey, stored)
        return body

    def _quarantine(self, objkey: bytes, stored: bytes) -> None:
        self.corrupt_total += 1
        log.error(
            "stored object %s failed its checksum (%d so far): removed; read repair and"
            " anti-entropy restore it from the other replicas",
            objkey.hex(),
            self.corrupt_total,
        )
        ops: list[Op] = [(CF_OBJECTS, objkey, None), (CF_META, TOMB_PREFIX + objkey, None)]
        seq = objects.stored_seq(stored) if len(stored) > 13 else 0
        if seq and self.get_in(CF_LOG, u64(seq)) == objkey:
            ops.append((CF_LOG, u64(seq), None))
        ref = self.get_in(CF_META, IXREF_PREFIX + objkey)
        if ref is not None:
            ops += [(CF_INDEX, k, None) for k in index.unref(ref)]
            ops.append((CF_META, IXREF_PREFIX + objkey, None))
        try:
            self._apply(ops)
        except StorageError as e:
            log.error("removing the damaged object failed: %s", e)
        if self.on_lost is not None:
            self.on_lost(objkey)

    def _write_failed(self, e: BaseException) -> StorageError:
        """Record a failed write; the error to raise (``DiskFull`` when out of space).
        Logged when writes start failing and then every 1,000th time, not per write."""
        text = str(e) or type(e).__name__
        self.write_failures_total += 1
        if self.write_refusal is None or self.write_failures_total % 1000 == 0:
            log.error("storage write failed (%d so far): %s", self.write_failures_total, text)
        self.write_refusal = text
        if NO_SPACE in text:
            return DiskFull(
                f"this node's disk is full: it serves reads, and takes writes again once space"
                f" is freed ({text})"
            )
        return StorageError(f"write failed: {text}")

    def _writes_work(self) -> None:
        """A write succeeded after failures (callers check ``write_refusal`` first)."""
        log.warning("storage writes work again (%d refused)", self.write_failures_total)
        self.write_refusal = None

    def probe_write(self) -> bool:
        """While writes fail: try a small one. True once writes work again."""
        if self.write_refusal is None:
            return True
        try:
            self._apply([(CF_META, META_PROBE, b"1")])
        except StorageError:
            return False
        return self.write_refusal is None

    @abc.abstractmethod
    def _apply(self, ops: list[Op], sync: bool = False) -> None:
        """Apply ``ops`` atomically (all or none); ``sync`` waits for the disk."""

    @abc.abstractmethod
    def get_raw(self, objkey: bytes) -> bytes | None:
        """The encoded object (its seal checked and taken off: ``_verified``)."""

    @abc.abstractmethod
    def get_in(self, family: str, key: bytes) -> bytes | None:
        """One entry of ``family`` as stored."""

    @abc.abstractmethod
    def marker(self, objkey: bytes) -> bytes | None: ...
    @abc.abstractmethod
    def meta_scan(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]: ...
    @abc.abstractmethod
    def scan(
        self, start: bytes = b"", end: bytes | None = None, family: str = CF_OBJECTS
    ) -> Iterator[tuple[bytes, bytes]]:
        """Entries of ``family`` with ``start <= key < end``, in key order."""

    @abc.abstractmethod
    def log_after(self, after_seq: int, limit: int) -> list[tuple[int, bytes]]: ...
    @abc.abstractmethod
    def get_hint_raw(self, target: str, objkey: bytes) -> bytes | None: ...
    @abc.abstractmethod
    def put_hint(self, target: str, objkey: bytes, obj: Obj, stored_at_ms: int) -> None:
        """Store the hint for ``target``; ``stored_at_ms`` is when it was first stored."""

    @abc.abstractmethod
    def hints_for(self, target: str, after: bytes, limit: int) -> list[tuple[bytes, bytes]]: ...
    @abc.abstractmethod
    def delete_hints_if_unchanged(self, target: str, sent: list[tuple[bytes, bytes]]) -> int: ...
    @abc.abstractmethod
    def hint_counts(self) -> dict[str, int]: ...
    @abc.abstractmethod
    def get_meta(self, name: bytes) -> bytes | None: ...
    @abc.abstractmethod
    async def sync_wal(self) -> None: ...
    @abc.abstractmethod
    def property_int(self, name: str, family: str = CF_OBJECTS) -> int: ...
    @abc.abstractmethod
    def close(self) -> None: ...

    def put_meta(self, name: bytes, value: bytes, sync: bool = False) -> None:
        self._apply([(CF_META, name, value)], sync)

    def put_marker(self, objkey: bytes, marker: bytes) -> None:
        """Keep only the history of a key that holds no value (see ``objects.encode_marker``)."""
        self._apply([(CF_META, REAPED_PREFIX + objkey, marker)])

    def get_hint(self, target: str, objkey: bytes) -> tuple[Obj, int] | None:
        """The hint held for ``target`` and when it was first stored (ms)."""
        raw = self.get_hint_raw(target, objkey)
        return None if raw is None else objects.decode(raw)

    def delete_meta(self, name: bytes) -> None:
        self._apply([(CF_META, name, None)])

    def get(self, objkey: bytes) -> tuple[Obj, int] | None:
        raw = self.get_raw(objkey)
        return None if raw is None else objects.decode(raw)

    def digest(self, objkey: bytes) -> bytes | None:
        raw = self.get_raw(objkey)
        return None if raw is None else objects.digest(raw)

    def _next_seq(self) -> int:
        """The next seq; past the lease, a new lease is synced first, so a power loss
        never makes a seq that peers may have seen be handed out again."""
        seq = self.seq + 1
        if seq > self._seq_lease:
            self._seq_lease = seq + SEQ_LEASE_BLOCK
            self.put_meta(META_SEQ_LEASE, u64(self._seq_lease), sync=True)
        return seq

    def put(
        self,
        objkey: bytes,
        obj: Obj,
        old_seq: int | None,
        *,
        tombstone: bool = False,
        was_tombstone: bool = False,
        clear_marker: bool = False,
        previous: Obj | None = None,
    ) -> int:
        """Store ``obj`` as the key's new version in one batch; returns its new seq.

        ``previous`` is the object stored now (None if none), as the caller read it:
        its index entries give way to ``obj``'s. ``tombstone`` and ``was_tombstone``
        keep the index of tombstones the reaper walks; ``clear_marker`` drops the key's
        reaped marker (its history now lives in ``obj``).
        """
        seq = self._next_seq()
        raw = self.get_in(CF_OBJECTS, objkey) if self.on_change else None
        old = unseal(raw) if raw is not None else None
        if raw is not None and old is None and self.on_lost is not None:
            self.on_lost(objkey)  # overwriting a damaged copy: its hash is not known
        encoded = objects.encode(obj, seq)
        self._apply(
            put_ops(
                objkey,
                seal(encoded),
                seq,
                old_seq,
                tombstone,
                was_tombstone,
                clear_marker,
            )
            + index_ops(objkey, previous, obj)
        )
        self.seq = seq
        if self.on_change is not None:
            self.on_change(objkey, old, encoded)
        return seq

    def reap(self, objkey: bytes, expected_seq: int, marker: bytes) -> bool:
        """Delete a tombstone for good if it is still at ``expected_seq``, leaving
        ``marker`` (its causal history) so a late copy cannot bring it back."""
        cur = self.get(objkey)
        if cur is None or cur[1] != expected_seq:
            return False
        self._apply(remove_ops(objkey, expected_seq, self.seq, marker, cur[0]))
        self._removed(objkey, cur[0])
        return True

    def drop(self, objkey: bytes, expected_seq: int) -> bool:
        """Remove a key this node no longer replicates, if still at ``expected_seq``."""
        cur = self.get(objkey)
        if cur is None or cur[1] != expected_seq:
            return False
        self._apply(remove_ops(objkey, expected_seq, self.seq, None, cur[0]))
        self._removed(objkey, cur[0])
        return True

    def _removed(self, objkey: bytes, obj: Obj) -> None:
        if self.on_change is not None:
            self.on_change(objkey, objects.encode(obj, 0), None)

    def build_index(self, progress_every: int = 100_000) -> int:
        """Write the index entries of every stored object, once per data directory (a
        store from before indexes, or restored from one); returns the objects indexed.
        Progress goes to the log."""
        if self.get_meta(META_INDEXED) is not None:
            return 0
        done = indexed = 0
        batch: list[Op] = []
        for objkey, raw in self.scan():
            done += 1
            changes = index_ops(objkey, None, objects.decode(raw)[0])
            if changes:
                indexed += 1
                batch += changes
            if len(batch) >= 1000:
                self._apply(batch)
                batch = []
            if done % progress_every == 0:
                log.info("indexing stored objects: %d read, %d with index entries", done, indexed)
        if batch:
            self._apply(batch)
        self.put_meta(META_INDEXED, b"1", sync=True)
        if done:
            log.info("indexed stored objects: %d read, %d with index entries", done, indexed)
        return indexed
