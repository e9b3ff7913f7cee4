"""One tictac node as ``tictac_cost.py`` reads it: ``/proc`` and ``/admin/aae`` together
in one ``Reading``, the counters it differences, and the cluster's restart with each
node's start-up build timed (spawn to ``/ping``, to ``tictac.built``, and the log's own
span of the build)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from costlib.node import READ_ERRORS, aae_status, log_lines, proc_cpu_s, proc_io_bytes
from dynamo.tools.localcluster import LocalCluster, NodeProcess, WaitTimeout

BUILT_RE = re.compile(
    r"^(\S+ \S+) INFO node=(\S+) dynamo\.node\.tictac: tictac tree built from (\d+) objects"
)


@dataclass(frozen=True, slots=True)
class Reading:
    t: float
    cpu: float
    io: int
    tt: dict[str, Any]  # /admin/aae's tictac object
    rounds: int  # log-exchange rounds

    @staticmethod
    def take(node: NodeProcess) -> Reading:
        if node.pid is None or not node.running():
            raise RuntimeError(f"{node.node_id} is not running: see {node.log_path}")
        s = aae_status(node)
        return Reading(
            time.monotonic(),
            proc_cpu_s(node.pid),
            proc_io_bytes(node.pid),
            s["tictac"],
            s["rounds"],
        )


TT_COUNTERS = (
    "exchanges",
    "differing_exchanges",
    "keys_fetched",
    "repaired",
    "bytes_in",
    "healed_leaves",
    "builds",
    "parts_read",  # cut segments' parts read from the store (then kept by the tree)
)
STATS_COUNTERS = (
    "tictac_exchanges_total",
    "tictac_repaired_total",
    "tictac_builds_total",
    "cleanup_passes_total",  # maintenance's walks over every key (one after each start)
)


def stats_counters(node: NodeProcess) -> dict[str, int]:
    s = node.stats()
    return {k: int(s.get(k, 0)) for k in STATS_COUNTERS}


@dataclass(slots=True)
class Startup:
    node: str
    ready_s: float | None = None  # spawn to /ping
    built_s: float | None = None  # spawn to tictac.built
    built_keys: int = 0
    log_build_s: float | None = None  # first log line to the build's log line


def _log_time(text: str) -> float:
    return time.mktime(time.strptime(text[:19], "%Y-%m-%d %H:%M:%S")) + int(text[20:23]) / 1e3


def log_build_span(node: NodeProcess, skip: int) -> float | None:
    """Seconds from the node's first timestamped log line after line ``skip`` (this start)
    to its first "tictac tree built" line: the build's time bounded above."""
    first: float | None = None
    for line in log_lines(node)[skip:]:
        m = re.match(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", line)
        if not m:
            continue
        t = _log_time(m.group(1))
        if first is None:
            first = t
        if BUILT_RE.match(line):
            return t - first
    return None


def restart(
    cluster: LocalCluster, settings: list[str], timeout_s: float
) -> tuple[list[Startup], float]:
    """Stop every node, start them with ``settings``, time each until its tree is built;
    the start-ups and when the nodes were spawned (monotonic)."""
    cluster.stop()
    cluster.settings = settings
    skips = {n.node_id: len(log_lines(n)) for n in cluster.nodes}
    out = {n.node_id: Startup(n.node_id) for n in cluster.nodes}
    t0 = time.monotonic()
    cluster.start(wait=False)
    deadline = t0 + timeout_s
    while any(s.built_s is None for s in out.values()):
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout_s:.0f}s waiting for the trees' builds")
        for n in cluster.nodes:
            s = out[n.node_id]
            if s.built_s is not None:
                continue
            if not n.running():
                raise RuntimeError(f"{n.node_id} exited: see {n.log_path}")
            if s.ready_s is None:
                if n.ping():
                    s.ready_s = time.monotonic() - t0
                continue
            try:
                tt = aae_status(n, timeout_s=5)["tictac"]
            except READ_ERRORS:
                continue
            if tt["built"]:
                s.built_s, s.built_keys = time.monotonic() - t0, int(tt["built_keys"])
        time.sleep(0.2)
    for n in cluster.nodes:
        out[n.node_id].log_build_s = log_build_span(n, skips[n.node_id])
    cluster.wait_converged(timeout_s=120)
    return list(out.values()), t0


def fmt_startup(ss: list[Startup]) -> str:
    parts = []
    for s in ss:
        log_s = f", log {s.log_build_s:.1f}s" if s.log_build_s is not None else ""
        parts.append(
            f"{s.node} ready {s.ready_s or 0:.1f}s built {s.built_s or 0:.1f}s"
            f" ({s.built_keys:,} keys{log_s})"
        )
    return "; ".join(parts)
