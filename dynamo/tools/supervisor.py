"""``dynamo start --processes K``: every core of a host, as K node processes under one
supervisor.

A Python node is one event loop on one core; a host's other cores serve through more
node processes, which is safe because placement keeps a key's replicas in distinct
locations and the processes of a host share one (the host name, or ``--location``).
Process ``i`` (from 1) of a host started as node ``N`` with ports H (HTTP), B (PB) and
P (peer) is node ``N-i``, with:

- the host's client addresses H and B, shared with SO_REUSEPORT (clients see one
  endpoint per host; the kernel spreads their connections);
- its own admin HTTP port A + i - 1 (``--admin-port``, default H + 1000): what
  ``/admin/members`` lists as its ``http_addr``, for ``/admin/local`` and ``dynamo leave``;
- its own peer port P + i - 1 and data directory ``D/p<i>``;
- the others of the host as seeds, beside the given ones.

All derived, so stable across restarts. A process that crashes is restarted with
backoff (doubling from 0.5 s to 30 s, reset after a minute up); one that exits 0 (it
left the cluster) or with a configuration error (2, 3) is not. SIGTERM or SIGINT stops
them all cleanly (SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0  # up this long: the next crash starts the backoff afresh
STOP_TIMEOUT_S = 75.0  # a node takes up to 60 s to finish in-flight requests
PERMANENT_EXITS = frozenset({0, 2, 3})  # left the cluster, bad config, left before


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parse_processes(value: str) -> int:
    """``--processes``: a count, or ``auto`` (one per usable core)."""
    if value == "auto":
        return cpu_count()
    if value.isdigit() and 1 <= int(value) <= 256:
        return int(value)
    raise ValueError(f"--processes {value!r}: use a count from 1 to 256, or auto")


@dataclass(frozen=True, slots=True, kw_only=True)
class HostLayout:
    """What the host's processes share, from which each one's settings are derived."""

    node_id: str
    processes: int
    host: str
    http_port: int
    pb_port: int
    peer_port: int
    admin_port: int
    data_dir: Path
    location: str
    seeds: tuple[str, ...] = ()
    new_cluster: bool = False

    def node(self, i: int) -> str:
        return f"{self.node_id}-{i}"

    def peer_addr(self, i: int) -> str:
        return f"{self.host}:{self.peer_port + i - 1}"

    def child_args(self, i: int) -> list[str]:
        """``dynamo start`` flags of process ``i`` (from 1); the caller appends the rest."""
        siblings = [self.peer_addr(j) for j in range(1, self.processes + 1) if j != i]
        seeds = [*self.seeds, *siblings] if (self.seeds or i > 1) else []
        args = [
            "--node-id", self.node(i),
            "--host", self.host,
            "--http-port", str(self.admin_port + i - 1),
            "--peer-port", str(self.peer_port + i - 1),
            "--pb-port", str(self.pb_port),
            "--data-dir", str(self.data_dir / f"p{i}"),
            "--location", self.location,
            "--set", f"shared_http_port={self.http_port}",
            "--set", f"pb_reuse_port={'true' if self.pb_port else 'false'}",
        ]  # fmt: skip
        if seeds:
            args += ["--seeds", ",".join(seeds)]
        if self.new_cluster and i == 1:
            args.append("--new-cluster")
        return args


@dataclass(slots=True)
class _Child:
    index: int
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff_s: float = BACKOFF_MIN_S
    restart_at: float = 0.0
    done: bool = False


class Supervisor:
    """Runs a host's processes until told to stop (or every one of them is done)."""

    def __init__(self, layout: HostLayout, extra_args: Sequence[str] = ()) -> None:
        self.layout = layout
        base = [sys.executable, "-m", "dynamo.tools.cli", "start"]
        self.children = [
            _Child(i, [*base, *extra_args, *layout.child_args(i)])
            for i in range(1, layout.processes + 1)
        ]
        self.stopping = False

    def _spawn(self, child: _Child) -> None:
        child.proc = subprocess.Popen(child.argv)
        child.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.layout.node(child.index), child.proc.pid)

    def _check(self, child: _Child, now: float) -> None:
        proc = child.proc
        if child.done:
            return
        if proc is None:
            if now >= child.restart_at:
                self._spawn(child)
            return
        rc = proc.poll()
        if rc is None:
            if now - child.started_at >= HEALTHY_AFTER_S:
                child.backoff_s = BACKOFF_MIN_S
            return
        name = self.layout.node(child.index)
        child.proc = None
        if rc in PERMANENT_EXITS:
            child.done = True
            log.warning("%s exited with %d: not restarted", name, rc)
            return
        child.restart_at = now + child.backoff_s
        log.warning("%s exited with %d: restarting in %.1fs", name, rc, child.backoff_s)
        child.backoff_s = min(BACKOFF_MAX_S, child.backoff_s * 2)

    def _stop_all(self) -> None:
        procs = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("pid %d did not stop in %.0fs: killing it", p.pid, STOP_TIMEOUT_S)
                p.kill()
                p.wait()

    def run(self) -> int:
        def stop(*_: Any) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        for child in self.children:
            self._spawn(child)
        try:
            while not self.stopping and not all(c.done for c in self.children):
                now = time.monotonic()
                for child in self.children:
                    self._check(child, now)
                time.sleep(0.1)
        finally:
            self._stop_all()
        return 0


def layout_from(cfg: Any, processes: int, admin_port: int) -> HostLayout:
    """The host layout from a node's configuration (``NodeConfig``) and the flags."""
    return HostLayout(
        node_id=cfg.node_id,
        processes=processes,
        host=cfg.host,
        http_port=cfg.http_port,
        pb_port=cfg.pb_port,
        peer_port=cfg.peer_port,
        admin_port=admin_port or cfg.http_port + 1000,
        data_dir=Path(cfg.data_dir),
        location=cfg.effective_location,
        seeds=tuple(cfg.seeds),
        new_cluster=cfg.new_cluster,
    )
