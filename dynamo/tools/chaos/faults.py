"""Fault episodes on a real local cluster, on a seeded schedule.

An episode impairs one or more nodes for a while, then heals: ``kill -9`` and
restart, ``SIGSTOP``/``SIGCONT``, a majority/minority partition, one node
isolated, slow or lossy links (through the fault proxy), and a restart with a
wiped data directory. Never more than ``max_impaired`` nodes are impaired at
once; a wiped node stays impaired until it has refilled, and a wipe only starts
when every node is caught up (so the last copies of a write are never wiped).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from dynamo.tools.chaos.proxy import LinkMesh
from dynamo.tools.localcluster import LocalCluster, NodeProcess
from http_api.admin import get_json

log = logging.getLogger(__name__)

KINDS = ("kill", "stop", "partition", "isolate", "slow", "lossy", "wipe")


@dataclass
class Applied:
    kind: str
    nodes: tuple[str, ...]
    at_s: float
    length_s: float


@dataclass
class FaultLog:
    applied: list[Applied] = field(default_factory=list)
    skipped: int = 0

    def counts(self) -> dict[str, int]:
        return dict(Counter(a.kind for a in self.applied))


class Faults:
    """Applies episodes to ``cluster`` (processes) and ``mesh`` (links)."""

    def __init__(
        self,
        cluster: LocalCluster,
        mesh: LinkMesh,
        rng: random.Random,
        *,
        max_impaired: int,
        kinds: tuple[str, ...] = KINDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.mesh = mesh
        self.rng = rng
        self.max_impaired = max_impaired
        self.kinds = kinds
        self.clock = clock
        self.impaired: dict[str, str] = {}  # node -> what impairs it
        self.log = FaultLog()
        self.started = clock()
        self.tasks: set[asyncio.Task[None]] = set()
        self._plan: list[str] = []

    def _next_kind(self) -> str:
        """Every kind once in a shuffled round, then again: coverage in short runs."""
        if not self._plan:
            self._plan = list(self.kinds)
            self.rng.shuffle(self._plan)
        return self._plan.pop()

    def node(self, node_id: str) -> NodeProcess:
        return next(n for n in self.cluster.nodes if n.node_id == node_id)

    async def run(self, until: float) -> None:
        """Start episodes until ``until`` (monotonic); each heals itself."""
        while self.clock() < until:
            await asyncio.sleep(self.rng.uniform(1.0, 4.0))
            if self.clock() >= until:
                break
            kind = self._next_kind()
            length = min(self.rng.uniform(3.0, 8.0), max(0.5, until - self.clock()))
            if not await self.start(kind, length):
                self._plan.append(kind)  # no room now: it comes next

    async def start(self, kind: str, length: float) -> bool:
        ids = [n.node_id for n in self.cluster.nodes]
        free = [n for n in ids if n not in self.impaired]
        if kind == "partition":
            size = max(1, (len(ids) - 1) // 2)
            targets = self.rng.sample(free, min(size, len(free)))
        else:
            targets = [self.rng.choice(free)] if free else []
        if not targets or len(self.impaired) + len(targets) > self.max_impaired:
            self.log.skipped += 1
            return False
        if kind == "wipe" and (self.impaired or not await asyncio.to_thread(self._caught_up)):
            self.log.skipped += 1
            return False
        for t in targets:
            self.impaired[t] = kind
        self.log.applied.append(Applied(kind, tuple(targets), self.clock() - self.started, length))
        task = asyncio.ensure_future(self._episode(kind, targets, length))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _episode(self, kind: str, targets: list[str], length: float) -> None:
        try:
            await self._apply(kind, targets)
            await asyncio.sleep(length)
            await self._heal(kind, targets)
            if kind == "wipe":  # impaired until refilled
                deadline = self.clock() + 120
                while self.clock() < deadline and not await asyncio.to_thread(self._caught_up):
                    await asyncio.sleep(0.5)
        except Exception:
            log.exception("fault %s on %s failed", kind, targets)
        finally:
            for t in targets:
                self.impaired.pop(t, None)

    async def _apply(self, kind: str, targets: list[str]) -> None:
        node = self.node(targets[0])
        if kind in ("kill", "wipe"):
            await asyncio.to_thread(node.kill9)
            if kind == "wipe":
                await asyncio.to_thread(node.wipe)
        elif kind == "stop":
            node.pause()
        elif kind == "partition":
            minority = set(targets)
            majority = {n.node_id for n in self.cluster.nodes} - minority
            self.mesh.partition([minority, majority])
        elif kind == "isolate":
            self.mesh.isolate(targets[0])
        elif kind == "slow":
            self.mesh.slow(targets[0], self.rng.uniform(0.02, 0.15), self.rng.uniform(0.0, 0.05))
        elif kind == "lossy":
            self.mesh.lossy(targets[0], self.rng.uniform(0.05, 0.3))

    async def _heal(self, kind: str, targets: list[str]) -> None:
        node = self.node(targets[0])
        if kind in ("kill", "wipe"):
            await asyncio.to_thread(self.cluster.start, node)
        elif kind == "stop":
            node.resume()
        else:
            for t in targets:
                for other in self.cluster.nodes:
                    if other.node_id != t:
                        self.mesh.link(t, other.node_id).clear()
                        self.mesh.link(other.node_id, t).clear()

    async def heal_all(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.mesh.heal_all()
        for n in self.cluster.nodes:
            if n.paused:
                n.resume()
            if not n.running():
                await asyncio.to_thread(self.cluster.start, n)
        self.impaired.clear()

    def _caught_up(self) -> bool:
        """Every node answers, holds no hints, and has applied every peer's log."""
        for n in self.cluster.nodes:
            if not n.running() or n.paused:
                return False
            try:
                aae = get_json(n.url + "/admin/aae", timeout=3)
                handoff = get_json(n.url + "/admin/handoff", timeout=3)
            except (OSError, ValueError):
                return False
            if handoff["hints_pending"]:
                return False
            if any(p["lag"] or not p["complete"] for p in aae["peers"].values()):
                return False
        return True
