"""Which key the next request touches: uniform, or zipfian over ranks.

Key ``i`` is named ``k{i}`` (as ``benchmarks/wrk/*.lua`` name them); for zipfian, key
``k0`` is rank 1, the most popular. Randomness comes in as a ``random.Random``.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from typing import Protocol


def key_name(i: int) -> str:
    return f"k{i}"


class KeyChooser(Protocol):
    """Draws key indexes in ``range(n)``."""

    n: int

    def next_index(self) -> int: ...


class UniformKeys:
    def __init__(self, n: int, rng: random.Random) -> None:
        if n < 1:
            raise ValueError(f"keys must be >= 1, got {n}")
        self.n = n
        self._random = rng.random

    def next_index(self) -> int:
        return int(self._random() * self.n)


class ZipfianKeys:
    """P(rank k) proportional to 1 / k**s, drawn by bisecting a precomputed CDF."""

    def __init__(self, n: int, s: float, rng: random.Random) -> None:
        if n < 1:
            raise ValueError(f"keys must be >= 1, got {n}")
        if s <= 0:
            raise ValueError(f"zipf s must be > 0, got {s}")
        self.n = n
        self.s = s
        cdf = list(itertools.accumulate(math.pow(k, -s) for k in range(1, n + 1)))
        total = cdf[-1]
        self._cdf = [w / total for w in cdf]
        self._random = rng.random
        self._last = n - 1

    def next_index(self) -> int:
        i = bisect.bisect_right(self._cdf, self._random())
        return i if i < self._last else self._last

    def probability(self, rank: int) -> float:
        """P(rank), rank counted from 1."""
        below = self._cdf[rank - 2] if rank > 1 else 0.0
        return self._cdf[rank - 1] - below


def key_chooser(dist: str, n: int, s: float, rng: random.Random) -> KeyChooser:
    if dist == "uniform":
        return UniformKeys(n, rng)
    if dist == "zipfian":
        return ZipfianKeys(n, s, rng)
    raise ValueError(f"dist must be uniform or zipfian, got {dist!r}")
