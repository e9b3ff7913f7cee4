"""One node's RocksDB (through rocksdict), as ``contract.StoreAPI``.

Column families are the contract's families. RocksDB calls run inline on the event
loop (they are microseconds); only the WAL sync that ``dw`` asks for runs in a
thread, as a group commit: one ``fsync`` for every write waiting at that moment.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rocksdict import (
    BlockBasedOptions,
    Cache,
    Checkpoint,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

from dynamo.kv import object as objects
from dynamo.kv.object import Obj
from dynamo.storage.contract import (
    CF_HINTS,
    CF_LOG,
    CF_META,
    CF_OBJECTS,
    FAMILIES,
    META_CLEAN,
    META_INCARNATION,
    META_NODE_ID,
    META_SEQ_FLOOR,
    META_SEQ_LEASE,
    REAPED_PREFIX,
    Op,
    StorageError,
    StoreAPI,
    u64,
)
from handoff.hints import hint_key, split_hint_key

log = logging.getLogger(__name__)
_U64 = struct.Struct(">Q")


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreConfig:
    """RocksDB sizing. Memory per node is about block cache + memtables."""

    block_cache_bytes: int = 32 * 1024 * 1024  # reads (and index/filter blocks) from memory
    write_buffer_bytes: int = 8 * 1024 * 1024  # one memtable; larger means fewer, bigger flushes
    max_write_buffers: int = 2  # memtables per family before writes stall
    total_write_buffer_bytes: int = 32 * 1024 * 1024  # cap over all families


class Store(StoreAPI):
    """The node's storage. Not thread-safe except for the WAL sync it runs itself."""

    def __init__(
        self, path: str | os.PathLike[str], node_id: str, config: StoreConfig | None = None
    ):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        cfg = config or StoreConfig()
        self._cache = Cache(cfg.block_cache_bytes)
        self._db = Rdict(
            str(self.path), self._options(cfg, db=True), column_families=self._families(cfg)
        )
        self._cf = {name: self._db.get_column_family(name) for name in FAMILIES}
        self._h = {name: self._db.get_column_family_handle(name) for name in FAMILIES}
        self._wo = WriteOptions()
        self._sync_wo = WriteOptions()
        self._sync_wo.sync = True
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-sync")
        self._sync_waiters: list[asyncio.Future[None]] = []
        self._sync_task: asyncio.Task[None] | None = None
        self.syncs = 0
        self.closed = False
        self.node_id, self.incarnation, fresh = self._identity(node_id)
        self.fresh = fresh
        self.seq = self._recover_seq()
        self._hint_counts = self._count_hints()
        self.clean_start = self._cf[CF_META].get(META_CLEAN) is not None
        wb = WriteBatch(raw_mode=True)
        wb.delete(META_CLEAN, self._h[CF_META])
        self._db.write(wb, self._sync_wo)

    # --- Set-up -------------------------------------------------------------------------------

    def _options(self, cfg: StoreConfig, db: bool = False) -> Options:
        o = Options(raw_mode=True)
        if db:
            o.create_if_missing(True)
            o.create_missing_column_families(True)
            o.set_db_write_buffer_size(cfg.total_write_buffer_bytes)
            o.increase_parallelism(2)
        o.set_write_buffer_size(cfg.write_buffer_bytes)
        o.set_max_write_buffer_number(cfg.max_write_buffers)
        bbo = BlockBasedOptions()
        bbo.set_block_cache(self._cache)
        # Index and filter blocks stay in the table readers (outside the block cache):
        # about 1.3 MiB of bloom filter and a few MiB of index per million keys. In the
        # cache they made every read of a large store load them again (measured: reads
        # took 96% of a node's CPU at 1M keys).
        bbo.set_bloom_filter(10, False)
        o.set_block_based_table_factory(bbo)
        return o

    def _families(self, cfg: StoreConfig) -> dict[str, Options]:
        return {name: self._options(cfg) for name in FAMILIES}

    def _identity(self, node_id: str) -> tuple[str, str, bool]:
        meta = self._cf[CF_META]
        stored = meta.get(META_NODE_ID)
        inc = meta.get(META_INCARNATION)
        if stored is not None and stored.decode() != node_id:
            self.close()
            raise StorageError(
                f"data directory {self.path} belongs to node {stored.decode()!r}, not {node_id!r}:"
                " start with that --node-id or use another --data-dir"
            )
        fresh = inc is None
        if fresh:
            inc = secrets.token_hex(8).encode()
            wb = WriteBatch(raw_mode=True)
            wb.put(META_NODE_ID, node_id.encode(), self._h[CF_META])
            wb.put(META_INCARNATION, inc, self._h[CF_META])
            self._db.write(wb, self._sync_wo)
        assert inc is not None
        return node_id, inc.decode(), fresh

    def _recover_seq(self) -> int:
        it = self._cf[CF_LOG].iter(ReadOptions())
        it.seek_to_last()
        last = _U64.unpack(it.key())[0] if it.valid() else 0
        del it
        floor = self._cf[CF_META].get(META_SEQ_FLOOR)
        lease = self._cf[CF_META].get(META_SEQ_LEASE)
        self._seq_lease = _U64.unpack(lease)[0] if lease else 0
        # A power loss may have dropped the log's tail after peers read it: start
        # past every seq that may have been handed out.
        return max(last, _U64.unpack(floor)[0] if floor else 0, self._seq_lease)

    def _count_hints(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for hk in self._cf[CF_HINTS].keys():  # noqa: SIM118 (an Rdict, not a dict)
            assert isinstance(hk, bytes)
            target, _ = split_hint_key(hk)
            counts[target] = counts.get(target, 0) + 1
        return counts

    # --- Objects ------------------------------------------------------------------------------

    def get_raw(self, objkey: bytes) -> bytes | None:
        return self._verified(objkey, self.get_in(CF_OBJECTS, objkey))

    def get_in(self, family: str, key: bytes) -> bytes | None:
        if self.closed:
            raise StorageError("the store is closed")
        try:
            v: bytes | None = self._cf[family].get(key)
        except Exception as e:  # RocksDB's own checks (a block checksum) name the damage
            raise StorageError(f"read failed: {e}") from e
        return v

    def _apply(self, ops: list[Op], sync: bool = False) -> None:
        if self.closed:
            raise StorageError("the store is closed")
        wb = WriteBatch(raw_mode=True)
        for family, key, value in ops:
            if value is None:
                wb.delete(key, self._h[family])
            else:
                wb.put(key, value, self._h[family])
        self._write(wb, sync)

    def marker(self, objkey: bytes) -> bytes | None:
        """The reaped marker of a key, if its tombstone was reaped."""
        v: bytes | None = self._cf[CF_META].get(REAPED_PREFIX + objkey)
        return v

    def meta_scan(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` meta entries under ``prefix`` with a suffix above ``after``."""
        it = self._cf[CF_META].iter(ReadOptions())
        it.seek(prefix + after + (b"\x00" if after else b""))
        out: list[tuple[bytes, bytes]] = []
        while it.valid() and len(out) < limit:
            k = it.key()
            if not k.startswith(prefix):
                break
            out.append((k[len(prefix) :], it.value()))
            it.next()
        return out

    def scan(
        self, start: bytes = b"", end: bytes | None = None, family: str = CF_OBJECTS
    ) -> Iterator[tuple[bytes, bytes]]:
        """Entries of ``family`` with ``start <= key < end`` in key order."""
        ro = ReadOptions()
        if end is not None:
            ro.set_iterate_upper_bound(end)
        it = self._cf[family].iter(ro)
        self.open_iterators += 1
        try:
            it.seek(start)
            check = family == CF_OBJECTS
            while it.valid():
                if not check:
                    yield it.key(), it.value()
                elif (body := self._verified(it.key(), it.value())) is not None:
                    yield it.key(), body
                it.next()
            try:
                it.status()
            except Exception as e:
                raise StorageError(f"read failed: {e}") from e
        finally:
            self.open_iterators -= 1
            del it

    def log_after(self, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` log entries with seq > ``after_seq``: (seq, objects key)."""
        it = self._cf[CF_LOG].iter(ReadOptions())
        it.seek(u64(after_seq + 1))
        out: list[tuple[int, bytes]] = []
        while it.valid() and len(out) < limit:
            out.append((_U64.unpack(it.key())[0], it.value()))
            it.next()
        return out

    # --- Hints --------------------------------------------------------------------------------

    def get_hint_raw(self, target: str, objkey: bytes) -> bytes | None:
        v: bytes | None = self._cf[CF_HINTS].get(hint_key(target, objkey))
        return v

    def put_hint(self, target: str, objkey: bytes, obj: Obj, stored_at_ms: int) -> None:
        hk = hint_key(target, objkey)
        is_new = self._cf[CF_HINTS].get(hk) is None
        self._apply([(CF_HINTS, hk, objects.encode(obj, stored_at_ms))])
        if is_new:
            self._hint_counts[target] = self._hint_counts.get(target, 0) + 1

    def hints_for(self, target: str, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` hints for ``target`` with objects key > ``after``."""
        prefix = hint_key(target, b"")
        ro = ReadOptions()
        ro.set_iterate_upper_bound(prefix[:-1] + bytes((prefix[-1] + 1,)) if prefix else b"")
        it = self._cf[CF_HINTS].iter(ro)
        it.seek(prefix + after)
        out: list[tuple[bytes, bytes]] = []
        while it.valid() and len(out) < limit:
            k = it.key()
            if not k.startswith(prefix):
                break
            objkey = k[len(prefix) :]
            if objkey != after or not after:
                out.append((objkey, it.value()))
            it.next()
        return out

    def delete_hints_if_unchanged(self, target: str, sent: list[tuple[bytes, bytes]]) -> int:
        """Delete delivered hints in one batch, except those rewritten since they were sent."""
        wb = WriteBatch(raw_mode=True)
        n = 0
        for objkey, raw in sent:
            hk = hint_key(target, objkey)
            if self._cf[CF_HINTS].get(hk) == raw:
                wb.delete(hk, self._h[CF_HINTS])
                n += 1
        if n:
            self._write(wb)
            left = self._hint_counts.get(target, 0) - n
            if left > 0:
                self._hint_counts[target] = left
            else:
                self._hint_counts.pop(target, None)
        return n

    def hint_counts(self) -> dict[str, int]:
        return dict(self._hint_counts)

    # --- Meta ---------------------------------------------------------------------------------

    def get_meta(self, name: bytes) -> bytes | None:
        v: bytes | None = self._cf[CF_META].get(name)
        return v

    # --- Writing and durability ---------------------------------------------------------------

    def _write(self, wb: Any, sync: bool = False) -> None:
        if self.closed:
            raise StorageError("the store is closed")
        try:
            self._db.write(wb, self._sync_wo if sync else self._wo)
        except Exception as e:
            raise self._write_failed(e) from e
        if self.write_refusal is not None:
            self._writes_work()

    async def sync_wal(self) -> None:
        """Return once every write made before this call is on disk (group commit)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sync_waiters.append(fut)
        if self._sync_task is None:
            self._sync_task = asyncio.create_task(self._sync_loop(), name="wal-sync")
        await fut

    async def _sync_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._sync_waiters:
                batch, self._sync_waiters = self._sync_waiters, []
                try:
                    await loop.run_in_executor(self._executor, self._db.flush_wal, True)
                    self.syncs += 1
                except Exception as e:
                    err = self._write_failed(e)
                    for f in batch:
                        if not f.done():
                            f.set_exception(type(err)(f"sync failed: {e}"))
                    continue
                for f in batch:
                    if not f.done():
                        f.set_result(None)
        finally:
            self._sync_task = None

    def checkpoint(self, path: Path) -> None:
        """A consistent copy of the whole database at ``path`` (which must not exist):
        hard links to the table files, copies of the rest (RocksDB's Checkpoint)."""
        if self.closed:
            raise StorageError("the store is closed")
        try:
            Checkpoint(self._db).create_checkpoint(str(path))
        except Exception as e:
            raise StorageError(f"checkpoint to {path} failed: {e}") from e

    def property_int(self, name: str, family: str = CF_OBJECTS) -> int:
        v = self._cf[family].property_int_value(name)
        return int(v or 0)

    def close(self) -> None:
        """Flush and close; the column-family views go first or the LOCK stays held."""
        if self.closed:
            return
        self.closed = True
        self._executor.shutdown(wait=True)
        try:
            wb = WriteBatch(raw_mode=True)
            wb.put(META_CLEAN, b"1", self._h[CF_META])
            self._db.write(wb, self._sync_wo)
        except Exception as e:  # closing anyway
            log.warning("final WAL sync failed: %s", e)
        self._cf.clear()
        self._h.clear()
        self._db.close()
