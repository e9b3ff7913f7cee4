"""Fakes for testing gossip without sockets or wall-clock time.

:class:`ManualClock` is time that moves only when told. :class:`FakeNetwork` carries
messages between named nodes in one process: every delivery is msgpack-encoded and
decoded again, so each receiver gets its own copy (no aliasing between nodes) and the
byte counts are those a real wire would carry. It drops messages with a seeded loss
probability, between partitioned groups, and to or from killed nodes.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable

import msgpack

__all__ = ["FakeNetwork", "ManualClock"]


class ManualClock:
    """Seconds that advance only through :meth:`advance`."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and return the new time."""
        if not seconds >= 0.0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        self._now += seconds
        return self._now


class FakeNetwork:
    """An in-process network between named nodes.

    ``loss`` is the probability that any one message is dropped (drawn from ``rng``).
    ``partition(a, b, ...)`` splits nodes into groups that cannot reach each other;
    nodes in no group reach everybody. A killed node neither sends nor receives.
    Counters: ``bytes_sent`` per sender (dropped messages included: they were sent),
    ``sent``, ``dropped``.
    """

    def __init__(self, rng: random.Random, *, loss: float = 0.0) -> None:
        self._rng = rng
        self.loss = loss
        self._dead: set[str] = set()
        self._group: dict[str, int] = {}
        self._packer = msgpack.Packer()
        self.bytes_sent: Counter[str] = Counter()
        self.sent = 0
        self.dropped = 0

    @property
    def loss(self) -> float:
        return self._loss

    @loss.setter
    def loss(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"loss must be in [0, 1], got {value!r}")
        self._loss = value

    def kill(self, node: str) -> None:
        self._dead.add(node)

    def revive(self, node: str) -> None:
        self._dead.discard(node)

    def is_alive(self, node: str) -> bool:
        return node not in self._dead

    def partition(self, *groups: Iterable[str]) -> None:
        """Split into ``groups`` that cannot talk to each other (replaces any split)."""
        self._group = {node: index for index, group in enumerate(groups) for node in group}

    def heal(self) -> None:
        self._group = {}

    def can_reach(self, src: str, dst: str) -> bool:
        if src in self._dead or dst in self._dead:
            return False
        a = self._group.get(src)
        b = self._group.get(dst)
        return a is None or b is None or a == b

    def transmit(
        self, src: str, dst: str, payload: object, *, decode: bool = True
    ) -> object | None:
        """Send ``payload`` from ``src`` to ``dst``: the receiver's own decoded copy, or
        None if it was lost. A killed sender sends nothing.

        ``decode=False`` still encodes (for the byte count) but hands back ``payload``
        itself: only for immutable payloads, when decoding is not what is being tested.
        """
        if src in self._dead:
            return None
        data = self._packer.pack(payload)
        self.bytes_sent[src] += len(data)
        self.sent += 1
        if not self.can_reach(src, dst) or (self._loss > 0.0 and self._rng.random() < self._loss):
            self.dropped += 1
            return None
        return msgpack.unpackb(data) if decode else payload
