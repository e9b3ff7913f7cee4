"""Fault episodes in the network lab (``dynamo chaos --lab``): what a TCP proxy cannot
give, on hosts that each run several node processes.

- ``partition``: a minority of hosts cut from the rest, packets dropped silently both
  ways (connections hang until their timeouts, as in a real partition);
- ``asymmetric``: packets from a minority to the rest dropped, the other way through;
- ``flap``: one host's link to the rest cut and restored every 1-3 s;
- ``host_loss``: every process of a host killed at once (the host dies), restarted
  after the episode;
- ``pause``: every process of a host stopped (SIGSTOP), then resumed.

One network episode at a time (healing removes every drop rule), one host episode at
a time, and never more than ``max_impaired`` hosts impaired at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from dynamo.tools.chaos.faults import Applied, FaultLog
from dynamo.tools.hosts import HostCluster

log = logging.getLogger(__name__)

LAB_KINDS = ("partition", "asymmetric", "flap", "host_loss", "pause")
NETWORK = frozenset({"partition", "asymmetric", "flap"})


class LabFaults:
    """Episodes on ``hosts`` (processes) and ``lab`` (its network)."""

    def __init__(
        self,
        hosts: HostCluster,
        lab: Any,
        rng: random.Random,
        *,
        max_impaired: int,
        kinds: tuple[str, ...] = LAB_KINDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hosts = hosts
        self.lab = lab
        self.rng = rng
        self.max_impaired = max_impaired
        self.kinds = kinds
        self.clock = clock
        self.impaired: dict[str, str] = {}  # "host<i>" -> what impairs it
        self.log = FaultLog()
        self.started = clock()
        self.tasks: set[asyncio.Task[None]] = set()
        self._plan: list[str] = []
        self._busy: set[str] = set()  # "network", "host": one episode of each at a time

    def _next_kind(self) -> str:
        if not self._plan:
            self._plan = list(self.kinds)
            self.rng.shuffle(self._plan)
        return self._plan.pop()

    async def run(self, until: float) -> None:
        while self.clock() < until:
            await asyncio.sleep(self.rng.uniform(1.0, 4.0))
            if self.clock() >= until:
                break
            kind = self._next_kind()
            length = min(self.rng.uniform(3.0, 8.0), max(0.5, until - self.clock()))
            if not self.start(kind, length):
                self._plan.append(kind)

    def start(self, kind: str, length: float) -> bool:
        n = len(self.hosts.addrs)
        lane = "network" if kind in NETWORK else "host"
        free = [h for h in range(n) if f"host{h + 1}" not in self.impaired]
        size = self.rng.randint(1, max(1, self.max_impaired)) if kind in NETWORK else 1
        targets = self.rng.sample(free, min(size, len(free)))
        if (
            lane in self._busy
            or not targets
            or len(self.impaired) + len(targets) > self.max_impaired
        ):
            self.log.skipped += 1
            return False
        self._busy.add(lane)
        names = tuple(f"host{h + 1}" for h in targets)
        for name in names:
            self.impaired[name] = kind
        self.log.applied.append(Applied(kind, names, self.clock() - self.started, length))
        task = asyncio.ensure_future(self._episode(kind, targets, length, lane))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _episode(self, kind: str, targets: list[int], length: float, lane: str) -> None:
        rest = {h for h in range(len(self.hosts.addrs))} - set(targets)
        try:
            if kind == "partition":
                self.lab.partition(set(targets), rest, symmetric=True)
            elif kind == "asymmetric":
                self.lab.partition(set(targets), rest, symmetric=False)
            elif kind == "flap":
                period = self.rng.uniform(1.0, 3.0)
                self.lab.flap(set(targets), rest, period_s=period, duration_s=length)
            elif kind == "host_loss":
                await asyncio.to_thread(self.hosts.kill, targets[0])
            elif kind == "pause":
                await asyncio.to_thread(self.hosts.pause, targets[0])
            await asyncio.sleep(length)
            if kind in NETWORK:
                self.lab.heal()
            elif kind == "host_loss":
                await asyncio.to_thread(self.hosts.start, targets[0])
            elif kind == "pause":
                await asyncio.to_thread(self.hosts.resume, targets[0])
        except Exception:
            log.exception("lab fault %s on %s failed", kind, targets)
        finally:
            self._busy.discard(lane)
            for h in targets:
                self.impaired.pop(f"host{h + 1}", None)

    async def heal_all(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.lab.heal()
        for h in range(len(self.hosts.addrs)):
            if h in self.hosts.paused:
                await asyncio.to_thread(self.hosts.resume, h)
            if not self.hosts.running(h):
                await asyncio.to_thread(self.hosts.start, h)
        self.impaired.clear()
        self._busy.clear()
