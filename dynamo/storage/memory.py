"""Fakes for the node's I/O seams, for simulations and integration tests.

``MemStore`` is ``storage.Store`` in memory, with the same contract, plus the one
thing a disk does that matters under faults: writes not yet synced are lost if
the machine loses power. A process crash (``kill -9``) loses nothing, since the
WAL is in the operating system's cache; a power loss drops every write since
the last sync.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from sortedcontainers import SortedDict

from dynamo.kv import object as objects
from dynamo.kv.object import Obj
from dynamo.storage.contract import (
    CF_OBJECTS,
    FAMILIES,
    META_CLEAN,
    META_INCARNATION,
    META_NODE_ID,
    META_SEQ_FLOOR,
    META_SEQ_LEASE,
    NO_SPACE,
    REAPED_PREFIX,
    Op,
    StorageError,
    StoreAPI,
)
from handoff.hints import hint_key, split_hint_key

_U64 = struct.Struct(">Q")


@dataclass
class Disk:
    """What survives a crash: the synced families."""

    families: dict[str, dict[bytes, bytes]] = field(
        default_factory=lambda: {f: {} for f in FAMILIES}
    )


class MemStore(StoreAPI):
    """An in-memory ``StoreAPI``. ``crash(power_loss)`` gives the disk a restart would see."""

    def __init__(self, node_id: str, disk: Disk | None = None, rng: random.Random | None = None):
        self.disk = disk or Disk()
        self._live: dict[str, SortedDict] = {f: SortedDict(self.disk.families[f]) for f in FAMILIES}
        self._journal: list[Op] = []
        self.closed = False
        self.disk_full = False  # set by a test: writes fail as on a full disk
        self.syncs = 0
        meta = self._live["meta"]
        stored = meta.get(META_NODE_ID)
        if stored is not None and stored.decode() != node_id:
            raise StorageError(f"data belongs to node {stored.decode()!r}, not {node_id!r}")
        self.node_id = node_id
        self.fresh = META_INCARNATION not in meta
        if self.fresh:
            inc = f"{(rng or random.Random()).getrandbits(64):016x}".encode()
            self._apply([("meta", META_NODE_ID, node_id.encode()), ("meta", META_INCARNATION, inc)])
            self._sync()
        self.incarnation = self._live["meta"][META_INCARNATION].decode()
        log = self._live["log"]
        last = _U64.unpack(log.peekitem(-1)[0])[0] if len(log) else 0
        floor = meta.get(META_SEQ_FLOOR)
        lease = meta.get(META_SEQ_LEASE)
        self._seq_lease = _U64.unpack(lease)[0] if lease else 0
        self.seq = max(last, _U64.unpack(floor)[0] if floor else 0, self._seq_lease)
        self.clean_start = META_CLEAN in meta
        self._apply([("meta", META_CLEAN, None)], sync=True)

    # --- Durability ---------------------------------------------------------------------------

    def _apply(self, ops: list[Op], sync: bool = False) -> None:
        if self.closed:
            raise StorageError("the store is closed")
        if self.disk_full:
            raise self._write_failed(OSError(f"IO error: {NO_SPACE}"))
        if self.write_refusal is not None:
            self._writes_work()
        for fam, key, value in ops:
            if value is None:
                self._live[fam].pop(key, None)
            else:
                self._live[fam][key] = value
        self._journal.extend(ops)
        if sync:
            self._sync()

    def _sync(self) -> None:
        for fam, key, value in self._journal:
            if value is None:
                self.disk.families[fam].pop(key, None)
            else:
                self.disk.families[fam][key] = value
        self._journal.clear()
        self.syncs += 1

    async def sync_wal(self) -> None:
        self._sync()

    def crash(self, power_loss: bool) -> Disk:
        """Stop. A process crash keeps every write; a power loss only the synced ones."""
        if not power_loss:
            self._sync()
        self._journal.clear()
        self.closed = True
        return self.disk

    def close(self) -> None:
        if not self.closed:
            self._apply([("meta", META_CLEAN, b"1")], sync=True)
            self.closed = True

    # --- Objects ------------------------------------------------------------------------------

    def get_raw(self, objkey: bytes) -> bytes | None:
        return self._verified(objkey, self.get_in(CF_OBJECTS, objkey))

    def get_in(self, family: str, key: bytes) -> bytes | None:
        v: bytes | None = self._live[family].get(key)
        return v

    def marker(self, objkey: bytes) -> bytes | None:
        v: bytes | None = self._live["meta"].get(REAPED_PREFIX + objkey)
        return v

    def scan(
        self, start: bytes = b"", end: bytes | None = None, family: str = CF_OBJECTS
    ) -> Iterator[tuple[bytes, bytes]]:
        objs = self._live[family]
        for k in list(objs.irange(minimum=start, maximum=end, inclusive=(True, False))):
            v = objs.get(k)
            if v is not None and family == CF_OBJECTS:
                v = self._verified(k, v)
            if v is not None:
                yield k, v

    def log_after(self, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        log = self._live["log"]
        for k in log.irange(minimum=_U64.pack(after_seq + 1)):
            out.append((_U64.unpack(k)[0], log[k]))
            if len(out) >= limit:
                break
        return out

    # --- Hints --------------------------------------------------------------------------------

    def get_hint_raw(self, target: str, objkey: bytes) -> bytes | None:
        v: bytes | None = self._live["hints"].get(hint_key(target, objkey))
        return v

    def put_hint(self, target: str, objkey: bytes, obj: Obj, stored_at_ms: int) -> None:
        self._apply([("hints", hint_key(target, objkey), objects.encode(obj, stored_at_ms))])

    def hints_for(self, target: str, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        prefix = hint_key(target, b"")
        hints = self._live["hints"]
        out: list[tuple[bytes, bytes]] = []
        for k in hints.irange(minimum=prefix + after):
            if not k.startswith(prefix):
                break
            objkey = k[len(prefix) :]
            if after and objkey == after:
                continue
            out.append((objkey, hints[k]))
            if len(out) >= limit:
                break
        return out

    def delete_hints_if_unchanged(self, target: str, sent: list[tuple[bytes, bytes]]) -> int:
        ops: list[Op] = []
        for objkey, raw in sent:
            hk = hint_key(target, objkey)
            if self._live["hints"].get(hk) == raw:
                ops.append(("hints", hk, None))
        if ops:
            self._apply(ops)
        return len(ops)

    def hint_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for hk in self._live["hints"]:
            target, _ = split_hint_key(hk)
            counts[target] = counts.get(target, 0) + 1
        return counts

    # --- Meta ---------------------------------------------------------------------------------

    def get_meta(self, name: bytes) -> bytes | None:
        v: bytes | None = self._live["meta"].get(name)
        return v

    def meta_scan(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        meta = self._live["meta"]
        out: list[tuple[bytes, bytes]] = []
        for k in meta.irange(minimum=prefix + after, inclusive=(not after, True)):
            if not k.startswith(prefix):
                break
            out.append((k[len(prefix) :], meta[k]))
            if len(out) >= limit:
                break
        return out

    def property_int(self, name: str, family: str = CF_OBJECTS) -> int:
        return len(self._live["objects"]) if "num-keys" in name else 0
