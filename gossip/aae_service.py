"""The asyncio shell of anti-entropy: rounds with every peer, paced by what they find.

A round pulls one bounded batch of digests from a peer and fetches the objects
that differ. While that finds copies we lack, the next round with the peer
follows at once; while it only finds changes we already hold (under a write
load the coordinator replicates them), rounds keep an ``interval_s`` pace; once
a peer has nothing new, it is asked again only every ``quiet_interval_s``, so a
quiet cluster costs one small exchange per peer every few seconds whatever it
stores.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gossip.antientropy import (
    METHOD_FETCH,
    METHOD_PULL,
    AntiEntropy,
    AntiEntropyError,
    Entry,
    FetchRequest,
    PullReply,
    fetch_reply_from_wire,
    fetch_reply_to_wire,
    fetch_request_from_wire,
    fetch_request_to_wire,
    reply_from_wire,
    reply_to_wire,
    request_from_wire,
    request_to_wire,
)

log = logging.getLogger(__name__)


class ReplicaLog(Protocol):
    """This node's log and objects, as anti-entropy reads them."""

    @property
    def seq(self) -> int: ...

    def log_after(self, after_seq: int, limit: int) -> list[tuple[int, bytes]]: ...

    def get_raw(self, objkey: bytes) -> bytes | None: ...

    def digest(self, objkey: bytes) -> bytes | None:
        """A digest of the stored object's history (equal copies, equal digests)."""
        ...


Call = Callable[[str, str, Any], Awaitable[Any]]  # (peer, method, body) -> reply
Apply = Callable[[tuple[Entry, ...]], Awaitable[int]]  # merge entries; returns how many changed
Persist = Callable[[str, str, str, int], None]  # (peer, incarnation, spec hash, watermark)


class AntiEntropyService:
    def __init__(
        self,
        core: AntiEntropy,
        replica_log: ReplicaLog,
        *,
        peers: Callable[[], list[str]],
        spec: Callable[[], dict[int, list[tuple[int, int]]]],
        n_val_of: Callable[[bytes], int],
        call: Call,
        apply: Apply,
        persist: Persist,
        interval_s: float = 1.0,
        quiet_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = core
        self.replica_log = replica_log
        self.peers = peers
        self.spec = spec
        self.n_val_of = n_val_of
        self.call = call
        self.apply = apply
        self.persist = persist
        self.interval_s = interval_s
        self.quiet_interval_s = quiet_interval_s
        self.clock = clock
        self.due: dict[str, float] = {}
        self.rounds = 0
        self.failed_rounds = 0
        self.changed = 0
        self.fetched = 0
        self.oversized = 0
        self.wake = asyncio.Event()

    def poke(self) -> None:
        """Run rounds with every peer now (e.g. the ring changed)."""
        self.due.clear()
        self.wake.set()

    async def run(self) -> None:
        while True:
            now = self.clock()
            peers = self.peers()
            for peer in peers:
                if self.due.get(peer, 0.0) <= now:
                    fetched_before = self.fetched
                    complete = await self.round(peer)
                    # Caught up: rest. A backlog of copies we lacked: come back at once.
                    # A backlog of changes we already hold (the coordinator replicated
                    # them): keep pace without chasing the head under a write load.
                    if complete:
                        delay = self.quiet_interval_s
                    elif self.fetched > fetched_before:
                        delay = 0.0
                    else:
                        delay = self.interval_s
                    self.due[peer] = self.clock() + delay
            pending = [self.due.get(p, 0.0) for p in peers]
            wait = min(pending, default=now + self.interval_s) - self.clock()
            if wait > 0:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), min(wait, self.interval_s))
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)

    async def round(self, peer: str) -> bool:
        """One pull from ``peer``; returns whether we are caught up with it.

        A failure is recorded per peer (consecutive count, last error, last success),
        so ``/admin/aae`` shows an exchange that keeps failing instead of a lag of 0.
        """
        self.rounds += 1
        request = self.core.pull_request(peer, self.spec())
        try:
            raw = await self.call(peer, METHOD_PULL, request_to_wire(request))
            reply: PullReply = reply_from_wire(raw)
            wanted = [k for k, d in reply.entries if self.replica_log.digest(k) != d]
            progress = self.core.progress(peer)
            while wanted:
                ask = FetchRequest(tuple(wanted), self.core.max_round_bytes)
                fetched = fetch_reply_from_wire(
                    await self.call(peer, METHOD_FETCH, fetch_request_to_wire(ask))
                )
                if fetched.handled <= 0:
                    raise AntiEntropyError("a fetch that handled nothing")
                wanted = wanted[fetched.handled :]
                objs = fetched.entries
                progress.objects_in += len(objs)
                self.fetched += len(objs)
                progress.bytes_in += sum(len(k) + len(v) for k, v in objs)
                if fetched.oversized:
                    self.oversized += len(fetched.oversized)
                    self.core.skipped(peer, fetched.oversized)
                    log.warning(
                        "anti-entropy with %s: %d object(s) too large for one message skipped",
                        peer,
                        len(fetched.oversized),
                    )
                if objs:
                    self.changed += await self.apply(objs)
        except AntiEntropyError as e:
            self._failed(peer, f"bad reply: {e}", logging.WARNING)
            return False
        except Exception as e:
            self._failed(peer, f"{type(e).__name__}: {e}", logging.INFO)
            return True  # rest before trying a failing peer again
        self.core.succeeded(peer, self.clock())
        moved = self.core.accept(peer, request, reply)
        if moved is not None:
            self.persist(peer, *moved)
        return reply.complete

    def _failed(self, peer: str, error: str, level: int) -> None:
        self.failed_rounds += 1
        failures = self.core.failed(peer, error)
        # The first failure, then every tenth in a row: a stuck exchange shows in the log.
        if failures == 1 or failures % 10 == 0:
            log.log(
                max(level, logging.WARNING if failures >= 10 else level),
                "anti-entropy with %s failed (%d in a row): %s",
                peer,
                failures,
                error,
            )

    def status(self) -> dict[str, dict[str, Any]]:
        return self.core.status(self.clock())

    def handle_pull(self, body: Any, peer: str = "") -> Any:
        request = request_from_wire(body)
        head = self.replica_log.seq
        reply = self.core.serve(
            request, head, self.replica_log.log_after, self.replica_log.digest, self.n_val_of
        )
        return reply_to_wire(reply)

    def handle_fetch(self, body: Any, peer: str = "") -> Any:
        ask = fetch_request_from_wire(body)
        return fetch_reply_to_wire(
            self.core.fetch(list(ask.keys), self.replica_log.get_raw, ask.max_bytes)
        )
