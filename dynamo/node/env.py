"""Where a node gets time and randomness: the real ones, or a simulation's.

Logic that depends on time or chance takes an ``Env`` instead of calling
``time`` or ``random`` itself, so a seeded simulation on virtual time can run
the same code deterministically.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class Env:
    monotonic: Callable[[], float] = time.monotonic  # for intervals and deadlines
    wallclock: Callable[[], float] = time.time  # for timestamps compared across nodes
    rng: random.Random = field(default_factory=random.Random)


REAL = Env()
