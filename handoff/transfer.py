"""Ownership transfer on leave: stream every object to the nodes that take it over.

A leaving node walks its objects in ring order and sends each one, in acked
batches, to the nodes that become its replicas once the node is gone (those
primaries of the future ring that are not primaries now). The walk's cursor
is persisted after each acked batch, so a crash resumes where it stopped.
Writes keep arriving while the node leaves, so the walk is followed by passes
over the change log from the seq at which the walk began, until a pass finds
nothing new. Then the node may announce ``left``. Batches are bounded in count
and in bytes (one object at least: stored objects are capped below one message).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import msgpack

from ring.ring import Ring

log = logging.getLogger(__name__)

Batch = list[tuple[bytes, bytes]]


def new_holders(current: Ring, future: Ring, node_id: str, pos: int, n_val: int) -> list[str]:
    """The nodes a leaving ``node_id`` must hand a key at ``pos`` to: primaries of the
    ``future`` ring (``current.without(node_id)``) that are not primaries now. None if
    the key is not ours to hand over (we are not one of its primaries)."""
    now = current.primaries(pos, n_val)
    if node_id not in now:
        return []
    return [x for x in future.primaries(pos, n_val) if x not in now]


class TransferSource(Protocol):
    @property
    def seq(self) -> int: ...

    def scan(
        self, start: bytes = b"", end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]: ...

    def log_after(self, after_seq: int, limit: int) -> list[tuple[int, bytes]]: ...

    def get_raw(self, objkey: bytes) -> bytes | None: ...


@dataclass(slots=True)
class TransferProgress:
    phase: str = "scan"  # scan -> catch-up -> done
    sent: int = 0
    total: int = 0
    batches: int = 0
    cursor: bytes = b""
    start_seq: int = 0

    def to_bytes(self) -> bytes:
        """As persisted, so a leave resumes where it was after a restart."""
        data: bytes = msgpack.packb(
            [self.phase, self.sent, self.total, self.batches, self.cursor, self.start_seq]
        )
        return data

    @classmethod
    def from_bytes(cls, raw: bytes) -> TransferProgress:
        phase, sent, total, batches, cursor, start_seq = msgpack.unpackb(raw)
        return cls(phase, sent, total, batches, cursor, start_seq)


class LeaveTransfer:
    def __init__(
        self,
        source: TransferSource,
        *,
        new_holders: Callable[[bytes], list[str]],
        send: Callable[[str, Batch], Awaitable[None]],
        save: Callable[[TransferProgress], None],
        progress: TransferProgress,
        batch: int = 200,
        batch_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.source = source
        self.new_holders = new_holders
        self.send = send
        self.save = save
        self.progress = progress
        self.batch = batch
        self.batch_bytes = batch_bytes

    async def _flush(self, pending: dict[str, Batch]) -> None:
        for node, items in pending.items():
            for chunk in chunks(items, self.batch_bytes):
                await self.send(node, chunk)  # raises if not acked: the caller retries later
                self.progress.batches += 1
        pending.clear()

    async def run(self) -> None:
        """Hand everything over; raises on a failed send (resumable from the last save)."""
        p = self.progress
        if p.phase == "scan":
            if not p.cursor:
                p.start_seq = self.source.seq
                self.save(p)
            pending: dict[str, Batch] = {}
            count = size = 0
            for objkey, raw in self.source.scan(p.cursor + b"\x00" if p.cursor else b""):
                for node in self.new_holders(objkey):
                    pending.setdefault(node, []).append((objkey, raw))
                    size += len(objkey) + len(raw)
                count += 1
                if count >= self.batch or size >= self.batch_bytes:
                    await self._flush(pending)
                    p.sent += count
                    p.cursor = objkey
                    self.save(p)
                    count = size = 0
            await self._flush(pending)
            p.sent += count
            p.phase = "catch-up"
            self.save(p)
        while p.phase == "catch-up":
            entries = self.source.log_after(p.start_seq, self.batch)
            if not entries:
                p.phase = "done"
                self.save(p)
                break
            pending = {}
            for _, objkey in entries:
                current = self.source.get_raw(objkey)
                if current is None:
                    continue
                for node in self.new_holders(objkey):
                    pending.setdefault(node, []).append((objkey, current))
            await self._flush(pending)
            p.sent += len(entries)
            p.start_seq = entries[-1][0]
            self.save(p)
        log.info("leave transfer done: %d objects in %d batches", p.sent, p.batches)


def chunks(items: Batch, max_bytes: int) -> Iterator[Batch]:
    """``items`` in order, cut into batches of at most ``max_bytes`` (one item at least)."""
    out: Batch = []
    size = 0
    for objkey, raw in items:
        if out and size + len(objkey) + len(raw) > max_bytes:
            yield out
            out, size = [], 0
        out.append((objkey, raw))
        size += len(objkey) + len(raw)
    if out:
        yield out
