"""Phi accrual failure detector (Hayashibara et al.), in the form Akka and Cassandra use.

For each peer we keep a bounded window of heartbeat inter-arrival intervals. The
suspicion that a peer is down is ``phi = -log10(P(a heartbeat arrives later than
now))`` under a normal distribution fitted to that window, with the mean stretched by
an acceptable pause and the standard deviation kept above a floor (so a perfectly
regular peer is not declared dead by a few milliseconds of lateness). The normal tail
is computed with the logistic approximation Akka uses.

The detector is pure: arrival times come in as ``now`` (seconds, monotonic), nothing
reads a clock. "Down" is a local opinion; callers decide what to do with it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import Final

__all__ = ["PhiAccrualDetector", "phi_value"]

_LN10: Final = math.log(10.0)


def phi_value(elapsed: float, mean: float, std: float) -> float:
    """Suspicion level after ``elapsed`` seconds of silence, for intervals ~ N(mean, std).

    ``phi = -log10(1 - F(elapsed))`` where ``F`` is the logistic approximation of the
    normal CDF used by Akka: ``1 - F = e / (1 + e)`` with
    ``e = exp(-y * (1.5976 + 0.070566 * y**2))`` and ``y = (elapsed - mean) / std``.
    Rewritten as ``log10(1 + exp(z))`` (a softplus) so it neither overflows for very
    early arrivals nor underflows to ``log10(0)`` for very late ones.
    """
    if not std > 0.0:
        raise ValueError(f"std must be > 0, got {std!r}")
    y = (elapsed - mean) / std
    z = y * (1.5976 + 0.070566 * y * y)
    if z > 0.0:
        return (z + math.log1p(math.exp(-z))) / _LN10
    return math.log1p(math.exp(z)) / _LN10


def _crossing_y(threshold: float) -> float:
    """The standardized lateness ``y`` at which :func:`phi_value` equals ``threshold``.

    phi >= T  <=>  z(y) >= c  with  c = ln(10**T - 1)  and  z(y) = 1.5976 y + 0.070566 y**3,
    a strictly increasing cubic: one real root, by Cardano, polished by Newton.
    """
    scaled = threshold * _LN10
    c = math.log(math.expm1(scaled)) if scaled < 40.0 else scaled + math.log1p(-math.exp(-scaled))
    a, b = 1.5976, 0.070566
    p, q = a / b, -c / b
    root = math.sqrt(q * q / 4.0 + p**3 / 27.0)
    y = math.cbrt(-q / 2.0 + root) + math.cbrt(-q / 2.0 - root)
    for _ in range(2):
        y -= (a * y + b * y**3 - c) / (a + 3.0 * b * y * y)
    return y


class _History:
    """A peer's bounded window of intervals with running sums (O(1) per heartbeat), the
    last arrival and the time at which phi will reach the threshold if nothing comes."""

    __slots__ = ("deadline", "evictions", "intervals", "last", "sum", "sum_sq")

    def __init__(self, window: int, seed_intervals: tuple[float, ...], last: float) -> None:
        self.intervals: deque[float] = deque(maxlen=window)
        self.sum = 0.0
        self.sum_sq = 0.0
        self.evictions = 0
        self.last = last
        self.deadline = last
        for interval in seed_intervals:
            self.add(interval)

    def add(self, interval: float) -> None:
        intervals = self.intervals
        if len(intervals) == intervals.maxlen:
            old = intervals[0]
            self.sum -= old
            self.sum_sq -= old * old
            self.evictions += 1
        intervals.append(interval)
        self.sum += interval
        self.sum_sq += interval * interval
        if self.evictions >= len(intervals):
            # Recompute now and then so rounding errors of the running sums never pile up.
            self.evictions = 0
            self.sum = math.fsum(intervals)
            self.sum_sq = math.fsum(i * i for i in intervals)

    def mean_std(self) -> tuple[float, float]:
        n = len(self.intervals)
        mean = self.sum / n
        variance = self.sum_sq / n - mean * mean
        return mean, math.sqrt(variance) if variance > 0.0 else 0.0


class PhiAccrualDetector:
    """Per-peer phi accrual failure detector.

    Parameters (all in seconds where they are durations):

    - ``threshold``: phi at or above which a peer is suspected. Higher means fewer
      false suspicions and slower detection; 8 is Cassandra's and Akka's default.
    - ``window``: how many recent intervals the estimate uses. Larger is steadier but
      slower to adapt to a peer whose rhythm changed.
    - ``min_std_s``: floor of the standard deviation. Protects very regular peers (tiny
      measured deviation) from being suspected after a small delay.
    - ``acceptable_pause_s``: added to the mean interval; a pause this long (GC, a busy
      loop, a lost gossip round) costs almost no suspicion.
    - ``first_interval_s``: assumed interval when a peer is first heard of, before any
      interval has been measured (seeded as ``mean +- mean/4`` as in Akka). Set it to
      the heartbeat interval: since intervals that end after the peer was already
      suspected are not learned, a rhythm much slower than this guess plus the
      acceptable pause would never be learned.

    A peer that was never heard of has phi 0.0 and is not up.
    """

    __slots__ = (
        "_acceptable_pause_s",
        "_crossing_y",
        "_history",
        "_min_std_s",
        "_seed_intervals",
        "_threshold",
        "_window",
    )

    def __init__(
        self,
        threshold: float = 8.0,
        window: int = 100,
        min_std_s: float = 0.5,
        acceptable_pause_s: float = 2.0,
        first_interval_s: float = 1.0,
    ) -> None:
        if not (math.isfinite(threshold) and threshold > 0.0):
            raise ValueError(f"threshold must be a finite number > 0, got {threshold!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an int >= 1, got {window!r}")
        if not (math.isfinite(min_std_s) and min_std_s > 0.0):
            raise ValueError(f"min_std_s must be a finite number > 0, got {min_std_s!r}")
        if not (math.isfinite(acceptable_pause_s) and acceptable_pause_s >= 0.0):
            raise ValueError(
                f"acceptable_pause_s must be a finite number >= 0, got {acceptable_pause_s!r}"
            )
        if not (math.isfinite(first_interval_s) and first_interval_s > 0.0):
            raise ValueError(
                f"first_interval_s must be a finite number > 0, got {first_interval_s!r}"
            )
        self._threshold = threshold
        self._window = window
        self._min_std_s = min_std_s
        self._acceptable_pause_s = acceptable_pause_s
        quarter = first_interval_s / 4.0
        self._seed_intervals = (first_interval_s - quarter, first_interval_s + quarter)
        self._crossing_y = _crossing_y(threshold)
        self._history: dict[str, _History] = {}

    @property
    def threshold(self) -> float:
        return self._threshold

    def heartbeat(self, node: str, now: float) -> None:
        """Record a heartbeat arrival from ``node`` at time ``now``.

        The first heartbeat registers the peer with the assumed first interval. As in
        Akka, the interval that ends a period in which the peer was already suspected is
        not recorded: one long outage would otherwise inflate the estimate for a long time.
        """
        history = self._history.get(node)
        if history is None:
            history = self._history[node] = _History(self._window, self._seed_intervals, now)
        else:
            interval = now - history.last
            if interval < 0.0:
                return  # out-of-order arrival: keep the latest one
            if now < history.deadline:
                history.add(interval)
            history.last = now
        # Inlined _refresh: this runs for every heartbeat of every peer.
        n = len(history.intervals)
        mean = history.sum / n
        variance = history.sum_sq / n - mean * mean
        std = math.sqrt(variance) if variance > 0.0 else 0.0
        history.deadline = (
            now
            + mean
            + self._acceptable_pause_s
            + self._crossing_y * (std if std > self._min_std_s else self._min_std_s)
        )

    def phi(self, node: str, now: float) -> float:
        """Current suspicion level of ``node``; 0.0 for a node never heard of."""
        history = self._history.get(node)
        if history is None:
            return 0.0
        mean, std = history.mean_std()
        return phi_value(
            now - history.last,
            mean + self._acceptable_pause_s,
            std if std > self._min_std_s else self._min_std_s,
        )

    def is_up(self, node: str, now: float) -> bool:
        """True when ``node`` was heard of and its phi is below the threshold."""
        history = self._history.get(node)
        return history is not None and now < history.deadline

    def suspected_at(self, node: str) -> float | None:
        """When phi of ``node`` reaches the threshold if no heartbeat comes (None: unknown)."""
        history = self._history.get(node)
        return None if history is None else history.deadline

    def split(self, nodes: Iterable[str], now: float) -> tuple[list[str], list[str]]:
        """``nodes`` divided into (up, down), each in the given order."""
        up: list[str] = []
        down: list[str] = []
        get = self._history.get
        for node in nodes:
            history = get(node)
            if history is not None and now < history.deadline:
                up.append(node)
            else:
                down.append(node)
        return up, down

    def reset(self, node: str) -> None:
        """Forget the interval history of ``node`` (e.g. it restarted with a new generation).

        The last arrival time is kept, so phi does not jump; the estimate starts again
        from ``first_interval_s`` as if the next heartbeat were the second one ever.
        No-op for an unknown node.
        """
        history = self._history.get(node)
        if history is not None:
            fresh = self._history[node] = _History(self._window, self._seed_intervals, history.last)
            self._refresh(fresh)

    def forget(self, node: str) -> None:
        """Drop ``node`` entirely (it left the cluster); it becomes never heard of."""
        self._history.pop(node, None)

    def nodes(self) -> list[str]:
        """Peers heard of, sorted."""
        return sorted(self._history)

    def _refresh(self, history: _History) -> None:
        # phi grows with the silence, so "phi < threshold" is "now < deadline".
        mean, std = history.mean_std()
        history.deadline = (
            history.last
            + mean
            + self._acceptable_pause_s
            + self._crossing_y * (std if std > self._min_std_s else self._min_std_s)
        )
