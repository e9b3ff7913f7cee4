"""Background upkeep of this node's data: tombstone reaping and ownership cleanup.

Both act only on proof, and the proof is anti-entropy's: a peer that pulled
our log past an entry's seq, with ranges covering the key, holds that version
(or a newer one).

- **Reaping**: a key whose every sibling is a tombstone, older than the grace
  period, held by every other primary, is deleted for good. What stays is a
  small marker with its causal history, so a late hint or a lagging replica
  cannot bring the key back; markers expire after ``reaped_marker_ttl_s``.
- **Cleanup**: after the ring changed, keys this node no longer replicates
  are dropped once every current primary holds them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from dynamo.kv import dvvset
from dynamo.kv import object as objects
from dynamo.node.env import REAL, Env
from dynamo.storage.contract import REAPED_PREFIX, TOMB_PREFIX, StoreAPI
from gossip.antientropy import AntiEntropy
from ring.position import storage_key_position
from ring.ring import Ring

log = logging.getLogger(__name__)

CHUNK = 500


@dataclass(slots=True)
class MaintenanceStats:
    reaped: int = 0
    dropped: int = 0
    markers_expired: int = 0
    cleanup_passes: int = 0
    cleanup_waiting: int = 0  # keys not ours any more, kept until every primary has them


class Maintenance:
    def __init__(
        self,
        store: StoreAPI,
        aae: AntiEntropy,
        *,
        node_id: str,
        ring: Callable[[], Ring],
        n_val_of: Callable[[bytes], int],
        leaving: Callable[[], bool],
        grace_s: float,
        marker_ttl_s: float,
        interval_s: float = 5.0,
        env: Env = REAL,
    ) -> None:
        self.env = env
        self.store = store
        self.aae = aae
        self.node_id = node_id
        self.ring = ring
        self.n_val_of = n_val_of
        self.leaving = leaving
        self.grace_s = grace_s
        self.marker_ttl_s = marker_ttl_s
        self.interval_s = interval_s
        self.stats = MaintenanceStats()
        self.cleanup_pending = True  # a restart may follow a ring change we did not finish
        self._cursor = b""
        self._tomb_cursor = b""
        self._marker_cursor = b""
        self._waiting = 0
        self.wake = asyncio.Event()

    def ring_changed(self) -> None:
        self.cleanup_pending = True
        self.wake.set()

    async def run(self) -> None:
        while True:
            try:
                # While the disk refuses writes, a small write now and then tells when
                # it takes them again; reaping and cleanup wait until it does.
                if not self.store.probe_write():
                    await asyncio.sleep(self.interval_s)
                    continue
                self.reap(self.env.wallclock())
                self.expire_markers(self.env.wallclock())
                if self.cleanup_pending and not self.leaving():
                    await self.cleanup_chunk()
            except Exception:
                log.exception("maintenance step failed")
            self.wake.clear()
            busy = (self.cleanup_pending and self._cursor) or self._tomb_cursor
            delay = 0.05 if busy else self.interval_s
            try:
                await asyncio.wait_for(self.wake.wait(), delay)
            except TimeoutError:
                pass

    # --- Reaping ------------------------------------------------------------------------------

    def reap(self, now: float) -> int:
        """Reap the next chunk of tombstones that are old enough and held by every
        other primary (a cursor walks the tombstone index, one chunk per step)."""
        ring = self.ring()
        batch = self.store.meta_scan(TOMB_PREFIX, self._tomb_cursor, CHUNK)
        self._tomb_cursor = batch[-1][0] if len(batch) == CHUNK else b""
        reaped = 0
        for objkey, _ in batch:
            got = self.store.get(objkey)
            if got is None:
                continue
            obj, seq = got
            if not objects.is_tombstone(obj):
                continue
            newest = max(c.last_modified_us for c in dvvset.values(obj)) / 1e6
            if now - newest < self.grace_s:
                continue
            pos = storage_key_position(objkey)
            n_val = self.n_val_of(objkey)
            primaries = ring.primaries(pos, n_val)
            if self.node_id not in primaries:
                continue
            others = [p for p in primaries if p != self.node_id]
            if self.aae.all_have(others, n_val, pos, seq) and self.store.reap(
                objkey, seq, objects.encode_marker(obj, now)
            ):
                reaped += 1
        self.stats.reaped += reaped
        return reaped

    def expire_markers(self, now: float) -> int:
        batch = self.store.meta_scan(REAPED_PREFIX, self._marker_cursor, CHUNK)
        self._marker_cursor = batch[-1][0] if len(batch) == CHUNK else b""
        expired = 0
        for objkey, raw in batch:
            _, at = objects.decode_marker(raw)
            if now - at > self.marker_ttl_s:
                self.store.delete_meta(REAPED_PREFIX + objkey)
                expired += 1
        self.stats.markers_expired += expired
        return expired

    # --- Cleanup ------------------------------------------------------------------------------

    async def cleanup_chunk(self) -> None:
        """Look at the next chunk of keys; drop those that are no longer ours and proven held."""
        ring = self.ring()
        if self.node_id not in ring:
            return  # not in the ring (joining, or left): nothing is ours to judge
        scanned = 0
        last = b""
        for objkey, raw in self.store.scan(self._cursor + b"\x00" if self._cursor else b""):
            scanned += 1
            last = objkey
            pos = storage_key_position(objkey)
            n_val = self.n_val_of(objkey)
            primaries = ring.primaries(pos, n_val)
            if self.node_id in primaries:
                if scanned >= CHUNK:
                    break
                continue
            _, seq = objects.decode(raw)
            if self.aae.all_have(primaries, n_val, pos, seq) and self.store.drop(objkey, seq):
                self.stats.dropped += 1
            else:
                self._waiting += 1
            if scanned >= CHUNK:
                break
        if scanned < CHUNK:  # a whole pass is done
            self.stats.cleanup_passes += 1
            self.stats.cleanup_waiting = self._waiting
            if self._waiting == 0:
                self.cleanup_pending = False
            self._waiting = 0
            self._cursor = b""
        else:
            self._cursor = last
        await asyncio.sleep(0)
