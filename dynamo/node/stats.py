"""Riak-style node statistics: totals, one-minute counts and one-minute percentiles."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_S = 60
SAMPLES_PER_SECOND = 500


@dataclass(slots=True)
class _Second:
    at: int
    count: int = 0
    samples: list[float] = field(default_factory=list)


class Window:
    """Counts and a bounded sample of values over the last minute, in one-second buckets."""

    def __init__(self) -> None:
        self._buckets: deque[_Second] = deque()
        self._current: _Second | None = None
        self.total = 0

    def _bucket(self, now: float) -> _Second:
        sec = int(now)
        if not self._buckets or self._buckets[-1].at != sec:
            self._buckets.append(_Second(sec))
            while self._buckets and self._buckets[0].at <= sec - WINDOW_S:
                self._buckets.popleft()
        return self._buckets[-1]

    def add(self, now: float, value: float | None = None) -> None:
        b = self._current
        if b is None or b.at != int(now):
            b = self._current = self._bucket(now)
        b.count += 1
        self.total += 1
        if value is None:
            return
        samples = b.samples
        if len(samples) < SAMPLES_PER_SECOND:
            samples.append(value)
        else:  # past the cap, later values overwrite earlier ones in turn: no draw per call
            samples[b.count % SAMPLES_PER_SECOND] = value

    def _live(self, now: float) -> list[_Second]:
        floor = int(now) - WINDOW_S
        return [b for b in self._buckets if b.at > floor]

    def count(self, now: float) -> int:
        return sum(b.count for b in self._live(now))

    def rate(self, now: float, seconds: int = 10) -> float:
        """Events per second over the last ``seconds`` whole seconds."""
        floor = int(now) - seconds
        return sum(b.count for b in self._buckets if floor <= b.at < int(now)) / seconds

    def percentiles(self, now: float) -> dict[str, float]:
        """mean, median, 95, 99, 100 of the sampled values (0 when there are none)."""
        values = sorted(v for b in self._live(now) for v in b.samples)
        if not values:
            return {"mean": 0, "median": 0, "95": 0, "99": 0, "100": 0}
        n = len(values)

        def pick(q: float) -> float:
            return values[min(n - 1, int(q * n))]

        return {
            "mean": sum(values) / n,
            "median": pick(0.5),
            "95": pick(0.95),
            "99": pick(0.99),
            "100": values[-1],
        }


class NodeStats:
    """Every figure ``/stats`` shows that the node measures itself. ``clock`` is the
    node's wall clock (``Env.wallclock``): windows count events per minute on it."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.gets = Window()  # values: coordinator time, microseconds
        self.puts = Window()
        self.get_siblings = Window()
        self.get_objsize = Window()
        self.read_repairs = Window()
        self.vnode_gets = Window()
        self.vnode_puts = Window()
        self.coord_redirs_total = 0
        self.hints_written_total = 0
        self.siblings_refused_total = 0
        self.too_large_refused_total = 0
        self.get_observers: list[Callable[[int, int], None]] = []
        self.quorum_failures: dict[str, int] = {}

    def record_get(self, micros: float, siblings: int, size: int) -> None:
        """One quorum read answered (siblings and size 0 when nothing was found)."""
        now = self.clock()
        self.gets.add(now, micros)
        if siblings:
            self.get_siblings.add(now, siblings)
            self.get_objsize.add(now, size)
            for observe in self.get_observers:
                observe(siblings, size)

    def snapshot(self, now: float) -> dict[str, float | int]:
        out: dict[str, float | int] = {
            "node_gets": self.gets.count(now),
            "node_gets_total": self.gets.total,
            "node_puts": self.puts.count(now),
            "node_puts_total": self.puts.total,
            "read_repairs": self.read_repairs.count(now),
            "read_repairs_total": self.read_repairs.total,
            "vnode_gets": self.vnode_gets.count(now),
            "vnode_gets_total": self.vnode_gets.total,
            "vnode_puts": self.vnode_puts.count(now),
            "vnode_puts_total": self.vnode_puts.total,
            "coord_redirs_total": self.coord_redirs_total,
            "hints_written_total": self.hints_written_total,
            "siblings_refused_total": self.siblings_refused_total,
            "too_large_refused_total": self.too_large_refused_total,
        }
        for prefix, window in (
            ("node_get_fsm_time", self.gets),
            ("node_put_fsm_time", self.puts),
            ("node_get_fsm_siblings", self.get_siblings),
            ("node_get_fsm_objsize", self.get_objsize),
        ):
            for name, v in window.percentiles(now).items():
                out[f"{prefix}_{name}"] = round(v) if prefix.endswith("time") else round(v, 2)
        for kind, n in self.quorum_failures.items():
            out[f"quorum_failures_{kind}_total"] = n
        return out
