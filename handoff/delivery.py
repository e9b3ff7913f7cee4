"""Hinted handoff: deliver the hints a fallback holds once their target is up again.

A fallback keeps what it accepted for a down primary in durable storage (the
node's ``hints`` column family). This service offers them to their target in
batches bounded in count and in bytes (one hint at least, and no hint is
larger than one message, since stored objects are capped below it) when the
failure detector says it is up; the target merges each object (``sync``, so a
batch delivered twice changes nothing) and acks; only then are the hints
deleted, in one batch, and only those not rewritten in the meantime. A crash
of either side leaves the hints in place to be offered again. Delivery is rate
limited.

Hints expire (``expired``, judged by the caller from the hint's first-stored
time): an expired hint is deleted and counted, never delivered, whether its
target is up or not (a sweep walks every target's hints now and then). Hints
must expire before the reaped markers that guard against them, or a stand-in
back from a long outage would bring a deleted key back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from handoff.hints import HintQueue

log = logging.getLogger(__name__)

Batch = list[tuple[bytes, bytes]]  # (objects key, stored object bytes)


Deliver = Callable[[str, Batch], Awaitable[None]]  # raises when the target did not ack


@dataclass(slots=True)
class HandoffStats:
    delivered: int = 0
    batches: int = 0
    failures: int = 0
    expired: int = 0


def reroute(
    batch: Batch, primaries: Callable[[bytes], Sequence[str]], is_up: Callable[[str], bool]
) -> dict[str, Batch]:
    """Hints held for a node that left the ring: each goes to every current primary of
    its key that is up (their merge is idempotent, so more copies cost nothing)."""
    per_node: dict[str, Batch] = {}
    for objkey, raw in batch:
        for node in primaries(objkey):
            if is_up(node):
                per_node.setdefault(node, []).append((objkey, raw))
    return per_node


def take_batch(
    hints: Batch, max_bytes: int, expired: Callable[[bytes], bool]
) -> tuple[Batch, Batch, bytes]:
    """Split hints read in key order into (to send, expired to drop, last key examined).

    What is sent stays within ``max_bytes`` (one hint at least); the walk stops at
    the first live hint that does not fit, so the next batch starts with it.
    """
    send: Batch = []
    drop: Batch = []
    size = 0
    last = b""
    for objkey, raw in hints:
        if expired(raw):
            drop.append((objkey, raw))
        else:
            if send and size + len(objkey) + len(raw) > max_bytes:
                break
            send.append((objkey, raw))
            size += len(objkey) + len(raw)
        last = objkey
    return send, drop, last


class HintDeliveryService:
    """Offers hints to their targets, batch by batch."""

    def __init__(
        self,
        store: HintQueue,
        deliver: Deliver,
        is_up: Callable[[str], bool],
        *,
        batch: int = 200,
        batch_bytes: int = 4 * 1024 * 1024,
        rate_per_s: int = 5000,
        interval_s: float = 1.0,
        expired: Callable[[bytes], bool] = lambda raw: False,
        sweep_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.deliver = deliver
        self.is_up = is_up
        self.batch = batch
        self.batch_bytes = batch_bytes
        self.rate_per_s = rate_per_s
        self.interval_s = interval_s
        self.expired = expired
        self.sweep_interval_s = sweep_interval_s
        self.clock = clock
        self.stats = HandoffStats()
        self.active: set[str] = set()
        self.wake = asyncio.Event()
        self._swept_at = float("-inf")

    def pending(self) -> dict[str, int]:
        return self.store.hint_counts()

    async def run(self) -> None:
        """Deliver forever (cancel to stop)."""
        while True:
            if self.clock() - self._swept_at >= self.sweep_interval_s:
                self._swept_at = self.clock()
                for target in sorted(self.store.hint_counts()):
                    await self.expire(target)
            for target in sorted(self.store.hint_counts()):
                if self.is_up(target):
                    await self.deliver_to(target)
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), self.interval_s)
            except TimeoutError:
                pass

    async def deliver_to(self, target: str) -> int:
        """Deliver every hint held for ``target``; returns how many were handed over."""
        self.active.add(target)
        after = b""
        handed = 0
        try:
            while self.is_up(target):
                hints = self.store.hints_for(target, after, self.batch)
                if not hints:
                    break
                batch, drop, after = take_batch(hints, self.batch_bytes, self.expired)
                self._drop_expired(target, drop)
                if batch:
                    try:
                        await self.deliver(target, batch)
                    except Exception as e:
                        self.stats.failures += 1
                        log.info("hint delivery to %s failed, will retry: %s", target, e)
                        break
                    deleted = self.store.delete_hints_if_unchanged(target, batch)
                    handed += deleted
                    self.stats.delivered += deleted
                    self.stats.batches += 1
                await asyncio.sleep(len(batch) / self.rate_per_s)
        finally:
            self.active.discard(target)
        if handed:
            log.info("handed %d hints over to %s", handed, target)
        return handed

    async def expire(self, target: str) -> int:
        """Drop every expired hint held for ``target``; returns how many."""
        after = b""
        dropped = 0
        while True:
            hints = self.store.hints_for(target, after, self.batch)
            if not hints:
                return dropped
            dropped += self._drop_expired(target, [h for h in hints if self.expired(h[1])])
            after = hints[-1][0]
            await asyncio.sleep(0)

    def _drop_expired(self, target: str, expired: Batch) -> int:
        if not expired:
            return 0
        n = self.store.delete_hints_if_unchanged(target, expired)
        self.stats.expired += n
        log.warning(
            "dropped %d hints for %s older than their lifetime: anti-entropy refills it", n, target
        )
        return n
