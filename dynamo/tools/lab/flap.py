"""A flapping link: a cut that comes and goes on a fixed schedule, then stops by itself.

The schedule is a pure value (``flap_schedule``): cut at 0, heal at half a period,
cut again at a period, and so on, with a final heal at ``duration_s`` whatever the
phase, so a flap always ends healed. ``Flap`` carries it out on a daemon thread:
the lab's commands are blocking subprocess calls, and a thread keeps them off any
asyncio loop the caller runs. The thread waits on an ``Event``, so ``stop()`` ends
it at once (with the final heal), and it never outlives ``duration_s`` by more than
one command. A failed toggle stops the flap; the error is kept for ``wait()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MIN_PERIOD_S = 0.1  # below this the nft commands themselves would set the rhythm


@dataclass(frozen=True, slots=True, kw_only=True)
class Toggle:
    """At ``at_s`` seconds from the start, cut the link (``cut``) or heal it."""

    at_s: float
    cut: bool


def flap_schedule(period_s: float, duration_s: float) -> tuple[Toggle, ...]:
    """Cut for half of each period, healed for the other half; healed at ``duration_s``."""
    if period_s < MIN_PERIOD_S:
        raise ValueError(f"period_s={period_s}: use at least {MIN_PERIOD_S} s")
    if duration_s <= 0:
        raise ValueError(f"duration_s={duration_s}: use a positive duration")
    toggles: list[Toggle] = []
    k = 0
    while (at_s := k * period_s / 2) < duration_s:
        toggles.append(Toggle(at_s=at_s, cut=k % 2 == 0))
        k += 1
    toggles.append(Toggle(at_s=duration_s, cut=False))
    return tuple(toggles)


class Flap:
    """Runs a schedule on a daemon thread, calling ``set_cut(True|False)`` at each toggle."""

    def __init__(
        self,
        schedule: tuple[Toggle, ...],
        set_cut: Callable[[bool], None],
        *,
        name: str = "lab-flap",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.schedule = schedule
        self.toggles_done = 0
        self.error: Exception | None = None
        self._set_cut = set_cut
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Flap:
        self._thread.start()
        return self

    def _run(self) -> None:
        started = self._clock()
        try:
            for toggle in self.schedule[:-1]:
                if self._stop.wait(max(0.0, started + toggle.at_s - self._clock())):
                    break
                self._set_cut(toggle.cut)
                self.toggles_done += 1
            else:
                self._stop.wait(max(0.0, started + self.schedule[-1].at_s - self._clock()))
        except Exception as e:
            self.error = e
        finally:
            try:
                self._set_cut(False)
                self.toggles_done += 1
            except Exception as e:
                self.error = self.error or e

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        """End the flap now (healed); returns when the thread is gone."""
        self._stop.set()
        self.wait(timeout_s)

    def wait(self, timeout_s: float) -> None:
        """Wait until the flap has ended; raise its error, or ``TimeoutError`` at the deadline."""
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(f"flap still running after {timeout_s} s: call stop() first")
        if self.error is not None:
            raise self.error
