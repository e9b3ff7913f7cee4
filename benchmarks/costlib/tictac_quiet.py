"""A quiet window of ``tictac_cost.py``: the cluster restarted at one exchange interval,
let quiesce (log exchange caught up, compactions drained, the cleanup pass after a start
over, the nodes idle), then read every ``--sample-s`` without client traffic."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

from index_bench import now_text

from costlib.cluster import wait_compactions, wait_idle
from costlib.node import caught_up
from costlib.report import by_minute
from costlib.tictac_node import (
    STATS_COUNTERS,
    TT_COUNTERS,
    Reading,
    Startup,
    restart,
    stats_counters,
)
from dynamo.tools.localcluster import LocalCluster, wait_for


def quiesce(cluster: LocalCluster, args: argparse.Namespace, spawned: float) -> dict[str, float]:
    """Log exchange caught up, compactions drained (or their timeout), the cleanup pass
    after a start over, the nodes idle; then settle."""
    t0 = time.monotonic()
    wait_for(
        lambda: caught_up(cluster.nodes),
        args.catchup_timeout_s,
        "every node's log exchange to be caught up",
        interval_s=1,
    )
    t1 = time.monotonic()
    wait_compactions(cluster.nodes, args.compaction_timeout_s)
    t2 = time.monotonic()
    time.sleep(max(0.0, spawned + args.cleanup_s - time.monotonic()))
    busy_s = idle(cluster, args)
    time.sleep(args.settle_s)
    return {
        "catchup_s": round(t1 - t0, 1),
        "compaction_wait_s": round(t2 - t1, 1),
        "cleanup_wait_s": round(time.monotonic() - t2 - busy_s - args.settle_s, 1),
        "idle_wait_s": round(busy_s, 1),
        "window_after_spawn_s": round(time.monotonic() - spawned, 1),
    }


def idle(cluster: LocalCluster, args: argparse.Namespace) -> float:
    """Seconds until every node used under ``--idle-cpu`` of a core over ``--idle-window-s``
    (a check only: the cleanup pass after a start, ~4% of a core at 1M keys, passes it;
    ``--cleanup-s`` waits that out)."""
    return wait_idle(cluster.nodes, args.idle_cpu, args.idle_window_s, args.idle_timeout_s)


@dataclass(slots=True)
class QuietNode:
    node: str
    cpu_s: float
    cpu_s_per_min: float
    io_bytes_per_min: float
    log_rounds: int
    tt: dict[str, int]  # deltas of TT_COUNTERS
    stats: dict[str, int]  # deltas of STATS_COUNTERS


@dataclass(slots=True)
class Quiet:
    mode: str  # "on" or "off"
    round: int
    interval_s: float
    started: str
    window_s: float = 0.0
    startup: list[Startup] = field(default_factory=list)
    prep: dict[str, float] = field(default_factory=dict)
    nodes: list[QuietNode] = field(default_factory=list)
    cpu_by_minute: list[float] = field(default_factory=list)  # node CPU s/min a node
    samples: int = 0
    roots_differing_samples: int = 0
    root_examples: list[dict[str, str]] = field(default_factory=list)
    differing_events: list[dict[str, Any]] = field(default_factory=list)

    def total(self, name: str) -> float:
        return float(sum(getattr(n, name) for n in self.nodes))

    def tt_total(self, name: str) -> int:
        return sum(n.tt[name] for n in self.nodes)


def total_cpu(readings: dict[str, Reading]) -> float:
    return sum(r.cpu for r in readings.values())


def quiet_window(cluster: LocalCluster, mode: str, rnd: int, args: argparse.Namespace) -> Quiet:
    interval = {"on": args.on_interval_s, "off": args.off_interval_s, "fast": args.fast_interval_s}[
        mode
    ]
    settings = [*args.base_set, f"tictac_exchange_interval_s={interval:g}"]
    q = Quiet(mode, rnd, interval, now_text())
    q.startup, spawned = restart(cluster, settings, args.build_timeout_s)
    q.prep = quiesce(cluster, args, spawned)
    nodes = cluster.nodes
    s0 = {n.node_id: stats_counters(n) for n in nodes}
    first = {n.node_id: Reading.take(n) for n in nodes}
    prev = dict(first)
    series: list[tuple[float, float]] = [(first[nodes[0].node_id].t, total_cpu(first))]
    end = time.monotonic() + (args.fast_s if mode == "fast" else args.quiet_s)
    while True:
        time.sleep(max(0.0, min(args.sample_s, end - time.monotonic())))
        cur = {n.node_id: Reading.take(n) for n in nodes}
        series.append((cur[nodes[0].node_id].t, total_cpu(cur)))
        q.samples += 1
        roots = {k: r.tt["root"] for k, r in cur.items()}
        if len(set(roots.values())) > 1:
            q.roots_differing_samples += 1
            if len(q.root_examples) < 5:
                q.root_examples.append(roots)
        for k, r in cur.items():
            grew = r.tt["differing_exchanges"] - prev[k].tt["differing_exchanges"]
            if grew:
                q.differing_events.append(
                    {
                        "node": k,
                        "at_s": round(r.t - first[k].t, 1),
                        "differing": grew,
                        "healed_leaves": r.tt["healed_leaves"] - prev[k].tt["healed_leaves"],
                        "repaired": r.tt["repaired"] - prev[k].tt["repaired"],
                    }
                )
        prev = cur
        if time.monotonic() >= end:
            break
    s1 = {n.node_id: stats_counters(n) for n in nodes}
    q.cpu_by_minute = by_minute(series, len(nodes))
    for n in nodes:
        a, b = first[n.node_id], prev[n.node_id]
        span = b.t - a.t
        cpu = b.cpu - a.cpu
        q.nodes.append(
            QuietNode(
                node=n.node_id,
                cpu_s=round(cpu, 3),
                cpu_s_per_min=round(cpu * 60 / span, 4),
                io_bytes_per_min=round((b.io - a.io) * 60 / span),
                log_rounds=b.rounds - a.rounds,
                tt={k: int(b.tt[k]) - int(a.tt[k]) for k in TT_COUNTERS},
                stats={k: s1[n.node_id][k] - s0[n.node_id][k] for k in STATS_COUNTERS},
            )
        )
        q.window_s = round(span, 1)
    return q
