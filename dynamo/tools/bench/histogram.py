"""Latency histogram with fixed log-linear buckets.

Buckets are 1 us wide up to 1 ms, then each is 1% wider than the one before, up to an
hour. Being fixed, histograms from different processes merge by adding counts, and a
percentile is read back within one bucket: +-0.5 us below 1 ms, +-0.5% above.
Values are integer nanoseconds, so count, sum, min and max merge exactly.
"""

from __future__ import annotations

import math
from typing import Any

LINEAR_STEP_NS = 1_000
LINEAR_LIMIT_NS = 1_000_000
LINEAR_BUCKETS = LINEAR_LIMIT_NS // LINEAR_STEP_NS
RATIO = 1.01
MAX_TRACKED_NS = 3_600 * 10**9
LOG_BUCKETS = math.ceil(math.log(MAX_TRACKED_NS / LINEAR_LIMIT_NS) / math.log(RATIO)) + 1
BUCKETS = LINEAR_BUCKETS + LOG_BUCKETS
_INV_LOG_RATIO = 1.0 / math.log(RATIO)


def bucket_of(ns: int) -> int:
    """The bucket a value in nanoseconds falls in (values past an hour share the last)."""
    if ns < LINEAR_LIMIT_NS:
        return 0 if ns < 0 else ns // LINEAR_STEP_NS
    i = LINEAR_BUCKETS + int(math.log(ns / LINEAR_LIMIT_NS) * _INV_LOG_RATIO)
    return i if i < BUCKETS else BUCKETS - 1


def bucket_bounds(i: int) -> tuple[int, int]:
    """``[low, high)`` of bucket ``i`` in nanoseconds."""
    if i < LINEAR_BUCKETS:
        return i * LINEAR_STEP_NS, (i + 1) * LINEAR_STEP_NS
    j = i - LINEAR_BUCKETS
    return round(LINEAR_LIMIT_NS * RATIO**j), round(LINEAR_LIMIT_NS * RATIO ** (j + 1))


def nearest_rank(q: float, n: int) -> int:
    """The 1-based rank of quantile ``q`` (0..1) among ``n`` values, nearest-rank method."""
    return min(n, max(1, math.ceil(round(q * n, 9))))


class LatencyHistogram:
    """An accumulator of latencies in nanoseconds; merge with ``merge``."""

    __slots__ = ("count", "counts", "max_ns", "min_ns", "total_ns")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.total_ns = 0
        self.min_ns = 0
        self.max_ns = 0

    def record(self, ns: int) -> None:
        if ns < LINEAR_LIMIT_NS:
            i = 0 if ns < 0 else ns // LINEAR_STEP_NS
        else:
            i = LINEAR_BUCKETS + int(math.log(ns / LINEAR_LIMIT_NS) * _INV_LOG_RATIO)
            if i >= BUCKETS:
                i = BUCKETS - 1
        self.counts[i] += 1
        if self.count == 0 or ns < self.min_ns:
            self.min_ns = ns
        if ns > self.max_ns:
            self.max_ns = ns
        self.count += 1
        self.total_ns += ns

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s values to this histogram."""
        if other.count == 0:
            return
        counts = self.counts
        for i, c in enumerate(other.counts):
            if c:
                counts[i] += c
        self.min_ns = other.min_ns if self.count == 0 else min(self.min_ns, other.min_ns)
        self.max_ns = max(self.max_ns, other.max_ns)
        self.count += other.count
        self.total_ns += other.total_ns

    def percentile_ns(self, q: float) -> int:
        """The value at quantile ``q`` (0..1): the middle of its bucket, within min..max."""
        if self.count == 0:
            return 0
        rank = nearest_rank(q, self.count)
        if rank == self.count:
            return self.max_ns
        if rank == 1:
            return self.min_ns
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                low, high = bucket_bounds(i)
                return min(self.max_ns, max(self.min_ns, (low + high) // 2))
        return self.max_ns  # pragma: no cover - counts always sum to count

    @property
    def mean_ns(self) -> float:
        return self.total_ns / self.count if self.count else 0.0

    def to_wire(self) -> dict[str, Any]:
        """A compact picklable form: only the buckets in use."""
        return {
            "buckets": {i: c for i, c in enumerate(self.counts) if c},
            "count": self.count,
            "total_ns": self.total_ns,
            "min_ns": self.min_ns,
            "max_ns": self.max_ns,
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> LatencyHistogram:
        h = cls()
        for i, c in d["buckets"].items():
            h.counts[int(i)] = int(c)
        h.count = int(d["count"])
        h.total_ns = int(d["total_ns"])
        h.min_ns = int(d["min_ns"])
        h.max_ns = int(d["max_ns"])
        return h

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return self.to_wire() == other.to_wire()

    __hash__ = None  # type: ignore[assignment]
