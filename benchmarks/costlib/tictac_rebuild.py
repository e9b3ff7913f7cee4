"""The rebuild phase of ``tictac_cost.py``: a rebuild's pace against its rate limit and
the node CPU inside rebuilds and outside them."""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from index_bench import now_text

from costlib.node import READ_ERRORS, log_lines
from costlib.report import mean
from costlib.tictac_node import BUILT_RE, Reading, Startup, restart
from costlib.tictac_quiet import idle, wait_cleanup
from dynamo.tools.localcluster import LocalCluster, WaitTimeout


@dataclass(slots=True)
class Rebuild:
    node: str
    keys: int
    start_s: float  # from the window's start (midpoint of the poll)
    seconds: float
    seconds_err: float  # +- from the polls
    keys_per_s: float
    cpu_s_per_min: float  # inside the rebuild


@dataclass(slots=True)
class RebuildPhase:
    started: str
    settings: list[str]
    startup: list[Startup] = field(default_factory=list)
    post_start_busy_s: float = 0.0  # from spawning the nodes until readings began
    cleanup_done_after_spawn_s: dict[str, float] = field(default_factory=dict)
    window_s: float = 0.0
    rebuilds: list[Rebuild] = field(default_factory=list)
    idle_cpu_s_per_min: dict[str, float] = field(default_factory=dict)  # outside rebuilds
    busy_cpu_s_per_min: dict[str, float] = field(default_factory=dict)  # inside rebuilds
    window_cpu_s_per_min: dict[str, float] = field(default_factory=dict)
    log_builds: list[dict[str, Any]] = field(default_factory=list)
    differing_exchanges: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def analyse_rebuilds(node: str, rs: list[Reading], t0: float, ph: RebuildPhase) -> None:
    """Rebuild spans of one node's readings; CPU per minute inside and outside them."""
    spans: list[tuple[int, int]] = []  # (i, j): started in (t[i-1], t[i]], ended in (t[j-1], t[j]]
    for j in range(1, len(rs)):
        if rs[j].tt["builds"] <= rs[j - 1].tt["builds"]:
            continue
        i = next(
            (k for k in range(j - 1, 0, -1) if rs[k].tt["exchanges"] > rs[k - 1].tt["exchanges"]),
            None,
        )
        if i is None:
            continue  # no exchange seen before it in the window: its start is unknown
        spans.append((i, j))
        start = (rs[i - 1].t + rs[i].t) / 2
        end = (rs[j - 1].t + rs[j].t) / 2
        seconds = end - start
        keys = int(rs[j].tt["built_keys"])
        inside = rs[j - 1].t - rs[i].t
        cpu = (rs[j - 1].cpu - rs[i].cpu) * 60 / inside if inside > 0 else float("nan")
        ph.rebuilds.append(
            Rebuild(
                node=node,
                keys=keys,
                start_s=round(start - t0, 2),
                seconds=round(seconds, 2),
                seconds_err=round(max(rs[i].t - rs[i - 1].t, rs[j].t - rs[j - 1].t), 2),
                keys_per_s=round(keys / seconds, 1) if seconds > 0 else float("nan"),
                cpu_s_per_min=round(cpu, 4),
            )
        )
    busy = [False] * len(rs)  # interval k is (t[k-1], t[k]]
    for i, j in spans:
        for k in range(i, j + 1):
            busy[k] = True
    idle_cpu = idle_t = busy_cpu = busy_t = 0.0
    for k in range(1, len(rs)):
        dc, dt = rs[k].cpu - rs[k - 1].cpu, rs[k].t - rs[k - 1].t
        if busy[k]:
            busy_cpu, busy_t = busy_cpu + dc, busy_t + dt
        else:
            idle_cpu, idle_t = idle_cpu + dc, idle_t + dt
    if idle_t > 0:
        ph.idle_cpu_s_per_min[node] = round(idle_cpu * 60 / idle_t, 4)
    if busy_t > 0:
        ph.busy_cpu_s_per_min[node] = round(busy_cpu * 60 / busy_t, 4)
    span = rs[-1].t - rs[0].t
    ph.window_cpu_s_per_min[node] = round((rs[-1].cpu - rs[0].cpu) * 60 / span, 4)
    ph.differing_exchanges[node] = int(rs[-1].tt["differing_exchanges"]) - int(
        rs[0].tt["differing_exchanges"]
    )


def rebuild_phase(cluster: LocalCluster, args: argparse.Namespace) -> RebuildPhase:
    # The first rebuild is due rebuild_interval_s after the start-up build: after the
    # cleanup pass that follows a start (as long as the quiet windows' took, or the
    # --cleanup-s minimum), so it is measured alone.
    interval = max(args.rebuild_interval_s, round(max(args.cleanup_seen_s, args.cleanup_s) + 30))
    settings = [
        *args.base_set,
        f"tictac_exchange_interval_s={args.on_interval_s:g}",
        f"tictac_rebuild_interval_s={interval:g}",
        f"tictac_rebuild_keys_per_s={args.rebuild_keys_per_s:g}",
    ]
    ph = RebuildPhase(now_text(), settings)
    skips = {n.node_id: len(log_lines(n)) for n in cluster.nodes}
    ph.startup, spawned = restart(cluster, settings, args.build_timeout_s)
    ph.cleanup_done_after_spawn_s = wait_cleanup(cluster, args.cleanup_timeout_s, spawned, [])
    time.sleep(max(0.0, spawned + args.cleanup_s - time.monotonic()))
    ph.post_start_busy_s = round(time.monotonic() - spawned + idle(cluster, args), 1)
    one = args.objects / args.rebuild_keys_per_s
    want = args.rebuilds or (2 if one < 60 else 1)
    timeout = want * (interval + 1.2 * args.on_interval_s + 3 * one) + 300
    nodes = cluster.nodes
    readings: dict[str, list[Reading]] = {n.node_id: [] for n in nodes}
    base = {n.node_id: Reading.take(n).tt["builds"] for n in nodes}
    t0 = time.monotonic()
    next_print = t0 + 60
    try:
        while True:
            for n in nodes:
                readings[n.node_id].append(Reading.take(n))
            now = time.monotonic()
            done = {k: rs[-1].tt["builds"] - base[k] for k, rs in readings.items()}
            if all(d >= want for d in done.values()):
                break
            if now - t0 > timeout:
                raise WaitTimeout(f"{timeout:.0f}s and rebuilds done only {done} (want {want})")
            if now >= next_print:
                print(f"  rebuild phase: {now - t0:.0f}s, rebuilds done {done}")
                next_print = now + 60
            time.sleep(args.poll_s)
    except (WaitTimeout, RuntimeError, *READ_ERRORS) as e:
        ph.error = f"{type(e).__name__}: {e}"
        print(f"  !!! rebuild phase: {ph.error}")
    ph.window_s = round(time.monotonic() - t0, 1)
    for k, rs in readings.items():
        if len(rs) >= 2:
            analyse_rebuilds(k, rs, t0, ph)
    for n in nodes:
        for line in log_lines(n)[skips[n.node_id] :]:
            m = BUILT_RE.match(line)
            if m:
                ph.log_builds.append({"at": m.group(1), "node": m.group(2), "keys": int(m[3])})
    return ph


def report_rebuilds(rb: RebuildPhase, args: argparse.Namespace) -> dict[str, Any]:
    """Print the rebuild phase's table; return its summary figures."""
    print(
        f"\nRebuild phase ({', '.join(rb.settings)}), readings from"
        f" {rb.post_start_busy_s:.0f}s after the start for {rb.window_s:.0f}s"
        + (f", ERROR {rb.error}" if rb.error else "")
    )
    print(
        f"  {'node':<4} {'start s':>8} {'keys':>9} {'seconds':>9} {'keys/s':>9}"
        f" {'CPU s/min in':>12}"
    )
    for r in rb.rebuilds:
        print(
            f"  {r.node:<4} {r.start_s:>8.1f} {r.keys:>9,} {r.seconds:>6.1f}"
            f"+-{r.seconds_err:<3.1f}{r.keys_per_s:>9,.0f} {r.cpu_s_per_min:>12.3f}"
        )
    nan = float("nan")
    for k in rb.window_cpu_s_per_min:
        print(
            f"  {k}: CPU s/min inside rebuilds {rb.busy_cpu_s_per_min.get(k, nan):.3f},"
            f" outside {rb.idle_cpu_s_per_min.get(k, nan):.3f},"
            f" whole window {rb.window_cpu_s_per_min[k]:.3f};"
            f" differing exchanges {rb.differing_exchanges.get(k, 0)}"
        )
    rates = [r.keys_per_s for r in rb.rebuilds]
    busy = list(rb.busy_cpu_s_per_min.values())
    idle = list(rb.idle_cpu_s_per_min.values())
    out: dict[str, Any] = dict(
        rebuild_keys_per_s_limit=args.rebuild_keys_per_s,
        rebuild_keys_per_s_median=round(statistics.median(rates), 1) if rates else None,
        rebuild_keys_per_s_max=round(max(rates), 1) if rates else None,
        rebuild_cpu_s_per_min_per_node_inside=round(mean(busy), 4),
        rebuild_cpu_s_per_min_per_node_outside=round(mean(idle), 4),
        rebuild_cpu_s_per_min_per_node_extra=round(mean(busy) - mean(idle), 4),
    )
    print(
        f"  rebuild pace: median {out['rebuild_keys_per_s_median']} keys/s, max"
        f" {out['rebuild_keys_per_s_max']} (limit {args.rebuild_keys_per_s:g});"
        f" node CPU inside {mean(busy):.3f} s/min vs outside {mean(idle):.3f}:"
        f" rebuild {mean(busy) - mean(idle):+.3f} s/min per node"
    )
    return out
