"""A quiet window of ``tictac_cost.py``: the cluster restarted at one exchange interval,
let quiesce (log exchange caught up, compactions drained, the cleanup pass after a start
over, the nodes idle), then read every ``--sample-s`` without client traffic."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

from costlib.cluster import wait_compactions, wait_idle
from costlib.node import READ_ERRORS, aae_status, caught_up
from costlib.report import by_minute
from costlib.tictac_node import (
    STATS_COUNTERS,
    TT_COUNTERS,
    Reading,
    Startup,
    restart,
    stats_counters,
)
from dynamo.tools.localcluster import LocalCluster, WaitTimeout, wait_for

CLEANUP = "cleanup_passes_total"


def utc_text() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())


def wait_cleanup(
    cluster: LocalCluster,
    timeout_s: float,
    spawned: float,
    parts: list[dict[str, Any]],
    parts_wanted: dict[str, int] | None = None,
    parts_timeout_s: float = 120,
) -> dict[str, float]:
    """Until every node's ``/stats`` ``cleanup_passes_total`` is >= 1: maintenance's walk
    over every key, which follows every start, is over. Seconds from the spawn at which
    each node was seen done (to within a poll). Meanwhile each growth of a node's
    ``tictac.parts_read`` is appended to ``parts`` (when, and the node's exchanges then);
    with ``parts_wanted``, also until each node's ``parts_read`` reached it (it has
    exchanged with every peer: its parts are kept from then on), at most
    ``parts_timeout_s`` after the cleanup passes (then a note)."""
    done: dict[str, float] = {}
    last = {n.node_id: 0 for n in cluster.nodes}
    deadline = time.monotonic() + timeout_s
    parts_deadline: float | None = None
    while True:
        for n in cluster.nodes:
            try:
                tt = aae_status(n)["tictac"]
                if int(tt["parts_read"]) > last[n.node_id]:
                    last[n.node_id] = int(tt["parts_read"])
                    parts.append(
                        {
                            "node": n.node_id,
                            "at_s": round(time.monotonic() - spawned, 1),
                            "parts_read": last[n.node_id],
                            "exchanges": int(tt["exchanges"]),
                        }
                    )
                if n.node_id not in done:
                    stats = n.stats()
                    if CLEANUP not in stats:
                        raise RuntimeError(f"{n.node_id}'s /stats has no {CLEANUP}: older node?")
                    if int(stats[CLEANUP]) >= 1:
                        done[n.node_id] = round(time.monotonic() - spawned, 1)
            except READ_ERRORS:
                continue
        if len(done) == len(cluster.nodes):
            short = {k: f"{last[k]}/{v}" for k, v in (parts_wanted or {}).items() if last[k] < v}
            if not short:
                return done
            parts_deadline = parts_deadline or time.monotonic() + parts_timeout_s
            if time.monotonic() > parts_deadline:
                print(f"  note: parts_read short of every peer's parts {short}; measuring anyway")
                return done
        elif time.monotonic() > deadline:
            raise WaitTimeout(
                f"timed out after {timeout_s:.0f}s waiting for every node's {CLEANUP} >= 1"
                f" (done: {done})"
            )
        time.sleep(1)


def quiesce(
    cluster: LocalCluster,
    args: argparse.Namespace,
    spawned: float,
    mode: str,
    parts: list[dict[str, Any]],
) -> dict[str, Any]:
    """Log exchange caught up, compactions drained (or their timeout), the cleanup pass
    after a start over on every node (its counter; ``--cleanup-s`` from the spawn as an
    extra minimum), with exchanges on every node's cut-segment parts read (it has met
    every peer), the nodes idle; then settle."""
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
    wanted = None if mode == "off" else args.parts_expected
    cleanup_done = wait_cleanup(cluster, args.cleanup_timeout_s, spawned, parts, wanted)
    args.cleanup_seen_s = max(args.cleanup_seen_s, *cleanup_done.values())
    time.sleep(max(0.0, spawned + args.cleanup_s - time.monotonic()))
    t3 = time.monotonic()
    busy_s = idle(cluster, args)
    time.sleep(args.settle_s)
    return {
        "catchup_s": round(t1 - t0, 1),
        "compaction_wait_s": round(t2 - t1, 1),
        "cleanup_wait_s": round(t3 - t2, 1),
        "cleanup_done_after_spawn_s": cleanup_done,
        "idle_wait_s": round(busy_s, 1),
        "window_after_spawn_s": round(time.monotonic() - spawned, 1),
    }


def idle(cluster: LocalCluster, args: argparse.Namespace) -> float:
    """Seconds until every node used under ``--idle-cpu`` of a core over ``--idle-window-s``
    (a check only: the cleanup pass after a start, ~4% of a core at 1M keys, passes it;
    the wait on ``cleanup_passes_total`` waits that out)."""
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
    before: dict[str, int]  # since the start, up to the window: exchanges, parts_read


@dataclass(slots=True)
class Quiet:
    mode: str  # "on", "off" or "fast"
    round: int
    interval_s: float
    started: str  # the restart (UTC)
    window_started: str = ""  # UTC
    window_ended: str = ""
    window_s: float = 0.0
    startup: list[Startup] = field(default_factory=list)
    prep: dict[str, Any] = field(default_factory=dict)
    nodes: list[QuietNode] = field(default_factory=list)
    cpu_by_minute: list[float] = field(default_factory=list)  # node CPU s/min a node
    samples: int = 0
    roots_compared: bool = True
    roots_differing_samples: int = 0
    root_examples: list[dict[str, str]] = field(default_factory=list)
    differing_events: list[dict[str, Any]] = field(default_factory=list)
    parts_events: list[dict[str, Any]] = field(default_factory=list)  # before the window

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
    q = Quiet(mode, rnd, interval, utc_text(), roots_compared=args.compare_roots)
    q.startup, spawned = restart(cluster, settings, args.build_timeout_s)
    q.prep = quiesce(cluster, args, spawned, mode, q.parts_events)
    nodes = cluster.nodes
    s0 = {n.node_id: stats_counters(n) for n in nodes}
    first = {n.node_id: Reading.take(n) for n in nodes}
    q.window_started = utc_text()
    prev = dict(first)
    series: list[tuple[float, float]] = [(first[nodes[0].node_id].t, total_cpu(first))]
    end = time.monotonic() + (args.fast_s if mode == "fast" else args.quiet_s)
    while True:
        time.sleep(max(0.0, min(args.sample_s, end - time.monotonic())))
        cur = {n.node_id: Reading.take(n) for n in nodes}
        series.append((cur[nodes[0].node_id].t, total_cpu(cur)))
        q.samples += 1
        # Equal roots mean equal trees only when every node holds every key (nodes <= n_val)
        roots = {k: r.tt["root"] for k, r in cur.items()}
        if q.roots_compared and len(set(roots.values())) > 1:
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
    q.window_ended = utc_text()
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
                before={f: int(a.tt[f]) for f in ("exchanges", "parts_read")},
            )
        )
        q.window_s = round(span, 1)
    return q
