"""An asyncio event loop on virtual time.

Nothing waits for real time: when no callback is ready, the clock jumps to the
next timer. With no sockets in play, a run is deterministic for a given seed
(the loop's queues are FIFO and its timer heap is ordered by time, then by
scheduling order).

As on a real loop, a timer is never due before the clock has moved one tick
past the moment it was set: asyncio runs timers that fall within a tick of
``time()`` at once, and on virtual time the clock would then never move for
code that waits "until t" in steps shorter than a tick. Code that spins
without ever letting time pass is reported (``Livelock``) instead of hanging
the run.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Mapping
from typing import Any


class Deadlock(RuntimeError):
    """Nothing is scheduled and nothing is ready: the simulation would wait forever."""


class Livelock(RuntimeError):
    """Callbacks keep running but virtual time never moves: something spins."""


LIVELOCK_SPINS = 1_000_000  # loop iterations at one instant before we call it a livelock


class _VirtualSelector(selectors.BaseSelector):
    def __init__(self) -> None:
        self.now = 0.0
        self.spins = 0  # loop iterations since the clock last moved
        self._keys: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, id(fileobj), events, data)
        self._keys[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise Deadlock("no timer is pending and no callback is ready")
        if timeout > 0:
            self.now += timeout
            self.spins = 0
        else:
            self.spins += 1
            if self.spins > LIVELOCK_SPINS:
                spins, self.spins = self.spins, 0  # the caller may run the loop to clean up
                raise Livelock(
                    f"virtual time stuck at {self.now:.6f}s for {spins} loop iterations:"
                    " a task runs again and again without waiting"
                )
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """``loop.time()`` is virtual; sleeping costs nothing."""

    def __init__(self) -> None:
        self._vsel = _VirtualSelector()
        super().__init__(selector=self._vsel)

    def time(self) -> float:
        return self._vsel.now

    def call_at(  # type: ignore[override]
        self, when: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        """A timer at least one clock tick ahead (see the module doc)."""
        earliest = self._vsel.now + self._clock_resolution  # type: ignore[attr-defined]
        return super().call_at(max(when, earliest), callback, *args, context=context)
