"""Hinted handoff: deliver the hints a fallback holds once their target is up again.

A fallback keeps what it accepted for a down primary in durable storage (the
node's ``hints`` column family). This service offers them to their target in
bounded batches when the failure detector says it is up; the target merges
each object (``sync``, so a batch delivered twice changes nothing) and acks;
only then are the hints deleted, in one batch, and only those not rewritten
in the meantime. A crash of either side leaves the hints in place to be
offered again. Delivery is rate limited.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

Batch = list[tuple[bytes, bytes]]  # (objects key, stored object bytes)


class HintStore(Protocol):
    """The durable hints of this node."""

    def hint_counts(self) -> dict[str, int]: ...

    def hints_for(self, target: str, after: bytes, limit: int) -> Batch: ...

    def delete_hints_if_unchanged(self, target: str, sent: Batch) -> int: ...


Deliver = Callable[[str, Batch], Awaitable[None]]  # raises when the target did not ack


@dataclass(slots=True)
class HandoffStats:
    delivered: int = 0
    batches: int = 0
    failures: int = 0


class HintDeliveryService:
    """Offers hints to their targets, batch by batch."""

    def __init__(
        self,
        store: HintStore,
        deliver: Deliver,
        is_up: Callable[[str], bool],
        *,
        batch: int = 200,
        rate_per_s: int = 5000,
        interval_s: float = 1.0,
    ) -> None:
        self.store = store
        self.deliver = deliver
        self.is_up = is_up
        self.batch = batch
        self.rate_per_s = rate_per_s
        self.interval_s = interval_s
        self.stats = HandoffStats()
        self.active: set[str] = set()
        self.wake = asyncio.Event()

    def pending(self) -> dict[str, int]:
        return self.store.hint_counts()

    async def run(self) -> None:
        """Deliver forever (cancel to stop)."""
        while True:
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
                batch = self.store.hints_for(target, after, self.batch)
                if not batch:
                    break
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
                after = batch[-1][0]
                await asyncio.sleep(len(batch) / self.rate_per_s)
        finally:
            self.active.discard(target)
        if handed:
            log.info("handed %d hints over to %s", handed, target)
        return handed
