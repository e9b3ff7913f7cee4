"""This node's copies: reads and merges of primary data and of hints held for others.

Every write is a read-merge-write with no ``await`` in between, so it is atomic
on the event loop; the store makes it one ``WriteBatch``.

Clock actors: a coordinator stamps new values with an actor of its own,
``{node_id}/{epoch}``. It reuses the actor found in its local copy when that
actor belongs to this incarnation, and takes a fresh epoch when it holds no
copy of the key (a new key, a reaped tombstone, a wiped disk) or coordinates
on a hint copy, so a dot is never issued twice for different values (Riak's
"key epochs"). An actor's events are only ever stamped into the primary copy,
which only grows by merges, so that copy always holds the actor's last counter,
unless the machine lost unsynced writes: after an unclean stop, actors from
before it are never reused.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable, Iterator

from dynamo.kv import crdt, datatypes, dvvset
from dynamo.kv import object as objects
from dynamo.kv.object import Obj
from dynamo.storage.contract import StoreAPI
from handoff import hints
from http_api.types import Content
from ring.position import storage_key_bkey

META_EPOCH_BASE = b"epoch_base"
META_EPOCH_LEASE = b"epoch_lease"
EPOCH_LEASE_BLOCK = 10_000
META_HINTS_DATED = b"hints_dated"  # every hint here carries the time it was first stored
DEFAULT_HINT_TTL_S = 3 * 86400.0  # NodeConfig.hint_ttl_s
_U64 = struct.Struct(">Q")


class TooManySiblings(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(f"{count} siblings")
        self.count = count


class TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


class Replica:
    """Local reads and writes of objects and hints."""

    def __init__(
        self,
        store: StoreAPI,
        rng: random.Random | None = None,
        *,
        wallclock: Callable[[], float] = time.time,
        hint_ttl_s: float = DEFAULT_HINT_TTL_S,
        crdt_limits: crdt.Limits | None = None,
    ) -> None:
        self.store = store
        self.wallclock = wallclock
        self.hint_ttl_s = hint_ttl_s
        self.crdt_limits = crdt_limits or crdt.Limits()
        self.node_id = store.node_id
        self._prefix = f"{self.node_id}/"
        base = store.get_meta(META_EPOCH_BASE)
        if base is None:
            start = (rng or random.SystemRandom()).getrandbits(60)
            store.put_meta(META_EPOCH_BASE, _U64.pack(start), sync=True)
            store.put_meta(META_EPOCH_LEASE, _U64.pack(start), sync=True)
            base = _U64.pack(start)
        self._epoch_base = _U64.unpack(base)[0]
        lease = store.get_meta(META_EPOCH_LEASE)
        self._next_epoch = _U64.unpack(lease)[0] if lease else self._epoch_base
        self._lease = self._next_epoch
        # After an unclean stop (kill -9, power loss) a primary copy may have lost its
        # last unsynced write, which replicas may hold: stamp with fresh epochs only.
        self._reuse_floor = self._epoch_base if store.clean_start else self._next_epoch
        self._date_undated_hints()
        store.build_index()
        self.puts = 0
        self.gets = 0

    def _now_ms(self) -> int:
        return int(self.wallclock() * 1000)

    def _date_undated_hints(self) -> None:
        """Hints stored before hints carried a time (their time field is 0) are dated
        now, once per data directory: they would otherwise read as expired at once and
        be dropped on the first start after an upgrade."""
        if self.store.get_meta(META_HINTS_DATED) is not None:
            return
        now_ms = self._now_ms()
        for target in self.store.hint_counts():
            after = b""
            while batch := self.store.hints_for(target, after, 1000):
                for objkey, raw in batch:
                    if objects.stored_seq(raw) == 0:
                        self.store.put_hint(target, objkey, objects.decode(raw)[0], now_ms)
                after = batch[-1][0]
        self.store.put_meta(META_HINTS_DATED, b"1", sync=True)

    # --- Actors -------------------------------------------------------------------------------

    def _new_epoch(self) -> int:
        if self._next_epoch >= self._lease:
            self._lease = self._next_epoch + EPOCH_LEASE_BLOCK
            self.store.put_meta(META_EPOCH_LEASE, _U64.pack(self._lease), sync=True)
        e = self._next_epoch
        self._next_epoch += 1
        return int(e)

    def _own_actor(self, actor: str) -> bool:
        if not actor.startswith(self._prefix):
            return False
        try:
            e = int(actor[len(self._prefix) :], 16)
        except ValueError:
            return False
        return bool(self._reuse_floor <= e < self._next_epoch)

    def actor_for(self, local: Obj | None) -> str:
        if local is not None:
            for actor, _, _ in reversed(local.entries):
                if self._own_actor(actor):
                    return actor
        return f"{self._prefix}{self._new_epoch():x}"

    # --- Reads --------------------------------------------------------------------------------

    def hint_expired(self, stored_at_ms: int) -> bool:
        """Is a hint first stored at ``stored_at_ms`` past its lifetime? Hints expire
        before the reaped markers that guard against them (``NodeConfig.hint_ttl_s``),
        so an old hint can never bring back a key deleted and reaped meanwhile."""
        return hints.expired(stored_at_ms, self.wallclock() * 1000, self.hint_ttl_s)

    def _hint(self, target: str, objkey: bytes) -> tuple[Obj, int] | None:
        """A live hint and when it was first stored; an expired one reads as absent."""
        got = self.store.get_hint(target, objkey)
        if got is None or self.hint_expired(got[1]):
            return None
        return got

    def read(self, objkey: bytes, hint_for: str | None = None) -> Obj | None:
        self.gets += 1
        if hint_for is not None:
            hint = self._hint(hint_for, objkey)
            return None if hint is None else hint[0]
        got = self.store.get(objkey)
        return None if got is None else got[0]

    def read_raw(self, objkey: bytes, hint_for: str | None = None) -> bytes | None:
        """The stored bytes (seq included; it is ignored by readers elsewhere).

        A primary that holds only the marker of a reaped key answers with the
        marker's history (a clock without values), not "not found": the
        coordinator's merge then drops every value that history covers, and read
        repair removes them from the replicas that still hold them.
        """
        self.gets += 1
        if hint_for is not None:
            hint = self._hint(hint_for, objkey)
            return None if hint is None else objects.encode(hint[0])
        raw = self.store.get_raw(objkey)
        if raw is None:
            marker = self.store.marker(objkey)
            if marker is not None:
                return objects.encode(objects.marker_history(marker))
        return raw

    def local_copy(self, objkey: bytes) -> Obj | None:
        """The primary copy, or else every hint held for the key, merged."""
        own = self.read(objkey)
        if own is not None:
            return own
        merged: Obj | None = None
        for target in self.store.hint_counts():
            h = self._hint(target, objkey)
            if h is not None:
                merged = h[0] if merged is None else dvvset.sync(merged, h[0])
        return merged

    # --- Writes -------------------------------------------------------------------------------

    def _primary(self, objkey: bytes) -> tuple[Obj | None, int | None, bool]:
        """Our primary copy and its seq; without one, the history of a reaped
        tombstone (a clock with no values) if the key was reaped. The flag says
        whether that marker is in use."""
        got = self.store.get(objkey)
        if got is not None:
            return got[0], got[1], False
        marker = self.store.marker(objkey)
        if marker is None:
            return None, None, False
        return objects.marker_history(marker), None, True

    def _store(
        self, objkey: bytes, new: Obj, local: Obj | None, seq: int | None, marked: bool
    ) -> None:
        self.store.put(
            objkey,
            new,
            seq,
            tombstone=objects.is_tombstone(new),
            was_tombstone=local is not None and objects.is_tombstone(local),
            clear_marker=marked,
            previous=local,
        )

    def write(
        self, objkey: bytes, incoming: Obj, hint_for: str | None, allow_mult: bool
    ) -> tuple[Obj, bool]:
        """Merge a replica's copy into ours; returns (our copy, whether it changed).

        A copy of a reaped key whose every value the reaped tombstone had
        superseded changes nothing: it cannot bring the key back.
        """
        self.puts += 1
        if hint_for is not None:
            held = self._hint(hint_for, objkey)
            record = hints.merge_into(
                held, incoming, self._now_ms(), lambda a, b: objects.merge(a, b, allow_mult)
            )
            if record is None:
                assert held is not None
                return held[0], False
            self.store.put_hint(hint_for, objkey, *record)
            return record[0], True
        local, seq, marked = self._primary(objkey)
        if local is None:
            if dvvset.size(incoming) == 0:  # a reaped key's history, from a peer's marker
                self.store.put_marker(objkey, objects.encode_marker(incoming, self.wallclock()))
            else:
                self._store(objkey, incoming, None, None, False)
            return incoming, True
        merged = objects.merge(local, incoming, allow_mult)
        if merged == local:
            return local, False
        if dvvset.size(merged) == 0:
            # Every value we held is covered by a reaped key's history: keep the history.
            marker = objects.encode_marker(merged, self.wallclock())
            if marked:
                self.store.put_marker(objkey, marker)
            elif seq is not None:
                self.store.reap(objkey, seq, marker)
            return merged, True
        self._store(objkey, merged, None if marked else local, seq, marked)
        return merged, True

    def coordinate(
        self,
        objkey: bytes,
        content: Content,
        context: dvvset.VersionVector,
        *,
        hint_for: str | None,
        allow_mult: bool,
        last_write_wins: bool,
        max_siblings: int = 0,
        max_bytes: int = 0,
    ) -> Obj:
        """Stamp a client's write with a new dot, merge it into our copy, store it.

        With ``max_siblings``, a write that would leave more siblings than that is
        refused (``TooManySiblings``); with ``max_bytes``, one that would make the
        stored object (every sibling) larger than that (``TooLarge``). Either way
        nothing is stored.
        """
        self.puts += 1
        marked = False
        stored_at_ms = self._now_ms()
        if hint_for is not None:
            held = self._hint(hint_for, objkey)
            local: Obj | None = None if held is None else held[0]
            stored_at_ms = stored_at_ms if held is None else held[1]
            seq = None
        else:
            local, seq, marked = self._primary(objkey)
        if last_write_wins and local is not None:
            context = dvvset.join(local)  # the new value supersedes everything, unread
        # A hint copy is not where this node's actors keep their history: fresh epoch.
        actor = self.actor_for(local if hint_for is None else None)
        if datatypes.is_op(content):  # a data type update: applied to our state, here
            content = datatypes.apply(local, content, actor, self.crdt_limits)
            context = dvvset.join(local) if local is not None else ()
        new = dvvset.update(dvvset.new_with_context(context, content), local, actor)
        if not allow_mult:
            new = objects.newest_only(new)
        if max_siblings and dvvset.size(new) > max_siblings:
            raise TooManySiblings(dvvset.size(new))
        if max_bytes and (size := objects.stored_size(new)) > max_bytes:
            raise TooLarge(size)
        if hint_for is not None:
            self.store.put_hint(hint_for, objkey, new, stored_at_ms)
        else:
            self._store(objkey, new, None if marked else local, seq, marked)
        return new

    # --- Listing ------------------------------------------------------------------------------

    def live_keys(self, bucket: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """(bucket, key) of every live primary object, optionally of one bucket."""
        for objkey, raw in self.store.scan():
            b, k = storage_key_bkey(objkey)
            if bucket is not None and b != bucket:
                continue
            obj, _ = objects.decode(raw)
            if not objects.is_tombstone(obj):
                yield b, k
