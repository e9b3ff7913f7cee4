"""What the tictac anti-entropy backstop costs on a quiet 3-node cluster, and while it
rebuilds: node CPU seconds per minute (from /proc), exchanges and bytes per minute,
the start-up build time, and a rebuild's pace against its rate limit.

    python benchmarks/tictac_cost.py --objects 10000
    python benchmarks/tictac_cost.py --objects 1000000 --json 1m.json

One ``LocalCluster`` of 3 nodes in a temporary directory, the same data throughout.

1. Load: ``dynamo bench``'s preload writes ``k0..k{N-1}`` (``--objects``) of
   ``--value-bytes`` to bucket ``bench`` once each (``benchmarks/index_bench.py``'s
   loader, no index entries); then every node has applied every peer's whole log (the
   load and this wait run with ``aae_interval_s`` = ``--load-aae-interval-s``, 0.1: at
   the default 1 s the log exchange walks entries the peers already hold at 1,000 a
   round a second, slower than the load writes, and after a 1M load was still ~9k
   entries behind 13 minutes later). Tictac's counters at the load's end and while
   the log exchange catches up are printed (writes in flight make trees differ).
2. Quiet, tictac on against off: the cluster is restarted with
   ``tictac_exchange_interval_s`` = ``--on-interval-s`` (5) or ``--off-interval-s`` (3600,
   so no exchange falls in the window), alternating which goes first over ``--rounds``
   rounds. After each restart: the start-up build is timed (from spawning the process to
   ``tictac.built`` in ``/admin/aae``), the log exchange is let catch up, RocksDB's
   pending compactions are let drain, the nodes are let go idle (each under ``--idle-cpu``
   of a core over ``--idle-window-s``: a started node walks every key once in
   maintenance's cleanup pass, minutes at 1M keys), ``--settle-s`` more; then
   ``--quiet-s`` without
   client traffic, taking per node the delta of utime + stime of the node process
   (``/proc/<pid>/stat``: the whole node, the log exchange, gossip and RocksDB included),
   of ``/proc/<pid>/io`` rchar + wchar (every socket and file read/write: a rough
   all-traffic figure), and of the ``tictac`` counters of ``/admin/aae``. Every
   ``--sample-s`` the nodes' tree roots are compared (on 3 nodes with n_val 3 every node
   holds every key, so equal roots mean equal trees). Tictac's cost is on minus off.
   Then one amplified window of ``--fast-s`` at ``--fast-interval-s`` (0.25 s: ~20x the
   exchanges) gives node CPU per exchange as (fast - off) / exchanges, a figure the
   tick-grained on-minus-off difference is too small to give well.
3. Bytes an exchange moves are COMPUTED, not measured (``/stats`` counts node-to-node
   calls, not their bytes): the ring is rebuilt from ``/admin/ring`` (its hash checked),
   each pair's shared ranges at the default n_val give the "tree" request, and the reply
   is 256 branch hashes; both are encoded as the RPC frames them (msgpack ``[kind, id,
   method, body]``), each hash at 9 bytes (msgpack uint64: any hash above 2**32). An
   exchange that finds nothing different is exactly that request and that reply. TCP/IP
   headers are not counted. Segments a shared-range boundary cuts are hashed from their
   keys, read from the store in every exchange on both sides: their number is shown.
4. Rebuild: restarted with ``tictac_rebuild_interval_s`` = ``--rebuild-interval-s`` (60,
   or 1.5x the longest busy spell after a start + 30 s if that is longer, so the first
   rebuild starts once the node is idle; readings start when it is) and
   ``tictac_rebuild_keys_per_s`` = ``--rebuild-keys-per-s`` (2000), exchanges every
   ``--on-interval-s``. ``/admin/aae`` and /proc are polled every ``--poll-s``: a rebuild
   ends when ``tictac.builds`` grows, and starts right after the exchange before it (the
   node's loop is sleep, exchange, rebuild if due, and starts no exchange while it
   rebuilds), so it starts where ``tictac.exchanges`` last grew. Keys per second is
   ``built_keys`` over that span (each end known to within one poll); node CPU per
   minute is taken inside rebuilds and outside them. Runs until every node has done
   ``--rebuilds`` rebuilds (default: 2 if one takes under a minute, else 1).

Every wait has a timeout; SIGTERM (as from ``timeout``) stops the cluster too. The machine
may be shared: figures are node-CPU seconds, which other load slows but does not inflate.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from http.client import HTTPException
from pathlib import Path
from types import FrameType
from typing import Any

import msgpack
from aae_cost import aae_summary, caught_up, proc_io_bytes
from index_bench import blind_puts, load, load_line, now_text
from pb_vs_http import cpu_s  # puts the repository on sys.path

from dynamo.net.session import REPLY, REQUEST
from dynamo.tools.localcluster import LocalCluster, NodeProcess, WaitTimeout, wait_for
from gossip import tictac
from http_api.admin import get_json
from ring.ring import Ring

BUCKET = "bench"
HASH_ON_WIRE = 2**63 + 12345  # a typical 64-bit hash: msgpack uint64, 9 bytes
RID_ON_WIRE = 2**20  # a request id after some calls: msgpack uint32, 5 bytes
BUILT_RE = re.compile(
    r"^(\S+ \S+) INFO node=(\S+) dynamo\.node\.tictac: tictac tree built from (\d+) objects"
)

READ_ERRORS = (OSError, ValueError, KeyError, HTTPException)


class Stop(Exception):
    """SIGTERM: end the run, stopping the cluster on the way out."""


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise Stop(f"signal {signum}")


# --- Readings -----------------------------------------------------------------------------------


def aae(node: NodeProcess, timeout: float = 10) -> dict[str, Any]:
    status: dict[str, Any] = get_json(node.url + "/admin/aae", timeout=timeout)
    return status


def pending_compaction(node: NodeProcess) -> int:
    return int(node.stats().get("rocksdb_pending_compaction_bytes", 0) or 0)


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
        s = aae(node)
        return Reading(
            time.monotonic(), cpu_s(node.pid), proc_io_bytes(node.pid), s["tictac"], s["rounds"]
        )


TT_COUNTERS = (
    "exchanges",
    "differing_exchanges",
    "keys_fetched",
    "repaired",
    "bytes_in",
    "healed_leaves",
    "builds",
)
STATS_COUNTERS = ("tictac_exchanges_total", "tictac_repaired_total", "tictac_builds_total")


# --- Computed exchange bytes ---------------------------------------------------------------------


def frame_bytes(kind: int, method: str, body: Any) -> int:
    pack = msgpack.Packer(use_bin_type=True).pack
    return len(pack([kind, RID_ON_WIRE, method, body]))


def exchange_wire(ring: Ring, me: str, peer: str, n_val: int) -> dict[str, Any]:
    """One quiet exchange from ``me`` with ``peer``: its tree request and reply in bytes,
    and what the shared ranges cost besides (segments cut by a boundary)."""
    shared = tictac.intersect(ring.owned_ranges(me, n_val), ring.owned_ranges(peer, n_val))
    c = tictac.cover(shared)
    request = {"k": "tree", "r": [list(r) for r in shared]}
    reply = {"b": [HASH_ON_WIRE] * tictac.BRANCHES}
    return {
        "shared_ranges": len(shared),
        "whole_segments": len(c.whole),
        "cut_segments": len(c.parts),
        "request_bytes": frame_bytes(REQUEST, tictac.METHOD, request),
        "reply_bytes": frame_bytes(REPLY, "", reply),
    }


def wire_model(cluster: LocalCluster) -> dict[str, Any]:
    """The cluster's ring rebuilt here (hash checked) and every ordered pair's exchange."""
    r = get_json(cluster.nodes[0].url + "/admin/ring")
    ring = Ring(r["members"], r["tokens_per_node"], r.get("locations") or None)
    pairs = {
        f"{a}->{b}": exchange_wire(ring, a, b, int(r["n_val"]))
        for a in r["members"]
        for b in r["members"]
        if a != b
    }
    return {
        "ring_hash_matches": ring.ring_hash == r["ring_hash"],
        "n_val": r["n_val"],
        "tokens_per_node": r["tokens_per_node"],
        "pairs": pairs,
    }


def bigger_ring_note(objects: int) -> dict[str, Any]:
    """For scale (computed only): a 5-node ring at n_val 3 cuts segments at range
    boundaries; each cut segment's keys are read from the store in every exchange."""
    ring = Ring([f"n{i}" for i in range(1, 6)])
    w = exchange_wire(ring, "n1", "n2", 3)
    w["keys_read_per_exchange_side"] = round(w["cut_segments"] * objects / tictac.SEGMENTS, 1)
    return w


# --- Restarts and the start-up build -------------------------------------------------------------


@dataclass(slots=True)
class Startup:
    node: str
    ready_s: float | None = None  # spawn to /ping
    built_s: float | None = None  # spawn to tictac.built
    built_keys: int = 0
    log_build_s: float | None = None  # first log line to the build's log line


def log_lines(node: NodeProcess) -> list[str]:
    if node.log_path is None:
        return []
    return node.log_path.read_text(errors="replace").splitlines()


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


def restart(cluster: LocalCluster, settings: list[str], timeout_s: float) -> list[Startup]:
    """Stop every node, start them with ``settings``, time each until its tree is built."""
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
                tt = aae(n, timeout=5)["tictac"]
            except READ_ERRORS:
                continue
            if tt["built"]:
                s.built_s, s.built_keys = time.monotonic() - t0, int(tt["built_keys"])
        time.sleep(0.2)
    for n in cluster.nodes:
        out[n.node_id].log_build_s = log_build_span(n, skips[n.node_id])
    cluster.wait_converged(timeout_s=120)
    return list(out.values())


def quiesce(cluster: LocalCluster, args: argparse.Namespace) -> dict[str, float]:
    """Log exchange caught up, compactions drained (or their timeout), then settle."""
    t0 = time.monotonic()
    wait_for(
        lambda: caught_up(cluster.nodes),
        args.catchup_timeout_s,
        "every node's log exchange to be caught up",
        interval_s=1,
    )
    t1 = time.monotonic()
    try:
        wait_for(
            lambda: all(pending_compaction(n) == 0 for n in cluster.nodes),
            args.compaction_timeout_s,
            "RocksDB's pending compactions to drain",
            interval_s=2,
        )
    except WaitTimeout as e:
        print(f"  note: {e}; measuring anyway")
    t2 = time.monotonic()
    busy_s = wait_idle(cluster, args)
    time.sleep(args.settle_s)
    return {
        "catchup_s": round(t1 - t0, 1),
        "compaction_wait_s": round(t2 - t1, 1),
        "post_start_busy_s": round(busy_s, 1),
    }


def wait_idle(cluster: LocalCluster, args: argparse.Namespace) -> float:
    """Seconds until every node used under ``--idle-cpu`` of a core over ``--idle-window-s``.

    A started node walks every key once (maintenance's cleanup pass: "a restart may follow
    a ring change we did not finish", ~10k keys/s at most), so after a restart at 1M keys
    it is busy for minutes whatever tictac does; a window measured then is not quiet."""
    pids = {n.node_id: n.pid for n in cluster.nodes if n.pid}
    t0 = time.monotonic()
    prev = {k: cpu_s(p) for k, p in pids.items()}
    while True:
        time.sleep(args.idle_window_s)
        cur = {k: cpu_s(p) for k, p in pids.items()}
        rate = {k: (cur[k] - prev[k]) / args.idle_window_s for k in cur}
        prev = cur
        if all(v < args.idle_cpu for v in rate.values()):
            return time.monotonic() - t0
        if time.monotonic() - t0 > args.idle_timeout_s:
            shown = {k: round(v, 3) for k, v in rate.items()}
            print(f"  note: nodes still busy after {args.idle_timeout_s:.0f}s ({shown} of a core)")
            return time.monotonic() - t0


# --- Quiet windows -------------------------------------------------------------------------------


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
    samples: int = 0
    roots_differing_samples: int = 0
    root_examples: list[dict[str, str]] = field(default_factory=list)
    differing_events: list[dict[str, Any]] = field(default_factory=list)

    def total(self, name: str) -> float:
        return float(sum(getattr(n, name) for n in self.nodes))

    def tt_total(self, name: str) -> int:
        return sum(n.tt[name] for n in self.nodes)


def stats_counters(node: NodeProcess) -> dict[str, int]:
    s = node.stats()
    return {k: int(s.get(k, 0)) for k in STATS_COUNTERS}


def quiet_window(cluster: LocalCluster, mode: str, rnd: int, args: argparse.Namespace) -> Quiet:
    interval = {"on": args.on_interval_s, "off": args.off_interval_s, "fast": args.fast_interval_s}[
        mode
    ]
    settings = [*args.base_set, f"tictac_exchange_interval_s={interval:g}"]
    q = Quiet(mode, rnd, interval, now_text())
    q.startup = restart(cluster, settings, args.build_timeout_s)
    q.prep = quiesce(cluster, args)
    nodes = cluster.nodes
    s0 = {n.node_id: stats_counters(n) for n in nodes}
    first = {n.node_id: Reading.take(n) for n in nodes}
    prev = dict(first)
    end = time.monotonic() + (args.fast_s if mode == "fast" else args.quiet_s)
    while True:
        time.sleep(max(0.0, min(args.sample_s, end - time.monotonic())))
        cur = {n.node_id: Reading.take(n) for n in nodes}
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


# --- Rebuilds ------------------------------------------------------------------------------------


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
    post_start_busy_s: float = 0.0  # restart (trees built) until the nodes were idle
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


def rebuild_phase(
    cluster: LocalCluster, args: argparse.Namespace, busy_after_start_s: float
) -> RebuildPhase:
    # The first rebuild is due rebuild_interval_s after the start-up build: later than the
    # busy spell after a start (maintenance's pass over every key), so it is measured alone.
    interval = max(args.rebuild_interval_s, round(1.5 * busy_after_start_s + 30))
    settings = [
        *args.base_set,
        f"tictac_exchange_interval_s={args.on_interval_s:g}",
        f"tictac_rebuild_interval_s={interval:g}",
        f"tictac_rebuild_keys_per_s={args.rebuild_keys_per_s:g}",
    ]
    ph = RebuildPhase(now_text(), settings)
    skips = {n.node_id: len(log_lines(n)) for n in cluster.nodes}
    ph.startup = restart(cluster, settings, args.build_timeout_s)
    ph.post_start_busy_s = round(wait_idle(cluster, args), 1)
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


# --- Output --------------------------------------------------------------------------------------


def fmt_startup(ss: list[Startup]) -> str:
    parts = []
    for s in ss:
        log_s = f", log {s.log_build_s:.1f}s" if s.log_build_s is not None else ""
        parts.append(
            f"{s.node} ready {s.ready_s or 0:.1f}s built {s.built_s or 0:.1f}s"
            f" ({s.built_keys:,} keys{log_s})"
        )
    return "; ".join(parts)


def mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def report(
    args: argparse.Namespace,
    quiet: list[Quiet],
    wire: dict[str, Any],
    rb: RebuildPhase | None,
) -> dict[str, Any]:
    """Print the tables; return the summary figures."""
    print(f"\n=== tictac cost, 3 nodes, {args.objects:,} objects of {args.value_bytes} B ===")
    print("\nQuiet windows (per node, node CPU from /proc; exchanges = ones this node started):")
    print(
        f"  {'mode':<4} {'rnd':>3} {'node':<4} {'CPU s/min':>10} {'exch':>5} {'diff':>5}"
        f" {'healed':>6} {'repaired':>8} {'io B/min':>10} {'log rounds':>10}"
    )
    for q in quiet:
        for n in q.nodes:
            print(
                f"  {q.mode:<4} {q.round:>3} {n.node:<4} {n.cpu_s_per_min:>10.3f}"
                f" {n.tt['exchanges']:>5} {n.tt['differing_exchanges']:>5}"
                f" {n.tt['healed_leaves']:>6} {n.tt['repaired']:>8}"
                f" {n.io_bytes_per_min:>10,.0f} {n.log_rounds:>10}"
            )
        print(
            f"  {q.mode:<4} {q.round:>3} all  {q.total('cpu_s_per_min'):>10.3f}"
            f"   window {q.window_s:.0f}s, roots differing in {q.roots_differing_samples}"
            f"/{q.samples} samples, differing exchanges {q.tt_total('differing_exchanges')}"
        )
    by_mode = {m: [q for q in quiet if q.mode == m] for m in ("on", "off", "fast")}
    cpu = {m: mean([q.total("cpu_s_per_min") / 3 for q in qs]) for m, qs in by_mode.items()}
    io = {m: mean([q.total("io_bytes_per_min") / 3 for q in qs]) for m, qs in by_mode.items()}
    ex_per_min = mean([n.tt["exchanges"] * 60 / q.window_s for q in by_mode["on"] for n in q.nodes])
    pairs = wire["pairs"].values()
    per_exchange = mean([p["request_bytes"] + p["reply_bytes"] for p in pairs])
    req = mean([p["request_bytes"] for p in pairs])
    rep = mean([p["reply_bytes"] for p in pairs])
    cut = max(p["cut_segments"] for p in pairs)
    print(
        f"\nExchange on the wire (COMPUTED from the ring, hash match"
        f" {wire['ring_hash_matches']}): request {req:.0f} B + reply {rep:.0f} B ="
        f" {per_exchange:.0f} B per quiet exchange; shared ranges per pair"
        f" {max(p['shared_ranges'] for p in pairs)}, cut segments {cut}"
        " (keys of cut segments are read from the store each exchange)"
    )
    note = bigger_ring_note(args.objects)
    print(
        f"  for scale, computed: a 5-node ring (n_val 3, 64 tokens) n1->n2 shares"
        f" {note['shared_ranges']} ranges cutting {note['cut_segments']} segments:"
        f" ~{note['keys_read_per_exchange_side']:,} keys read per exchange per side at"
        f" {args.objects:,} objects; request {note['request_bytes']:,} B"
    )
    all_startups = [s for q in quiet for s in q.startup] + (rb.startup if rb else [])
    built = [s.built_s for s in all_startups if s.built_s is not None]
    log_built = [s.log_build_s for s in all_startups if s.log_build_s is not None]
    print(
        f"\nStart-up build (tictac_build_keys_per_s default 50,000; 3 nodes start together),"
        f" {len(built)} node starts: spawn->built median {statistics.median(built):.1f}s"
        f" (min {min(built):.1f}, max {max(built):.1f});"
        f" first log line->built-log median {statistics.median(log_built) if log_built else 0:.1f}s"
    )
    for q in quiet:
        print(f"  {q.mode} r{q.round}: {fmt_startup(q.startup)}")
    if rb:
        print(f"  rebuild: {fmt_startup(rb.startup)}")
    summary: dict[str, Any] = {
        "objects": args.objects,
        "cpu_s_per_min_per_node_on": round(cpu["on"], 4),
        "cpu_s_per_min_per_node_off": round(cpu["off"], 4),
        "tictac_cpu_s_per_min_per_node": round(cpu["on"] - cpu["off"], 4),
        "io_bytes_per_min_per_node_on_minus_off": round(io["on"] - io["off"]),
        "exchanges_per_min_per_node": round(ex_per_min, 2),
        "bytes_per_exchange_computed": round(per_exchange),
        # Each byte once: every node's started exchanges, request and reply.
        "exchange_bytes_per_min_cluster_computed": round(3 * ex_per_min * per_exchange),
        # A node sends and receives its own exchanges and serves its peers' (as many on
        # average): in + out at a node is about twice its started exchanges' bytes.
        "exchange_bytes_in_out_per_min_per_node_computed": round(2 * ex_per_min * per_exchange),
        "startup_build_s_median": round(statistics.median(built), 1),
        "differing_exchanges_idle": sum(q.tt_total("differing_exchanges") for q in quiet),
        "roots_differing_samples": sum(q.roots_differing_samples for q in quiet),
    }
    if by_mode["fast"]:
        fast_ex = mean(
            [n.tt["exchanges"] * 60 / q.window_s for q in by_mode["fast"] for n in q.nodes]
        )
        extra = cpu["fast"] - cpu["off"]
        per_ex_ms = extra / fast_ex * 1e3 if fast_ex else float("nan")
        summary.update(
            fast_interval_s=args.fast_interval_s,
            fast_exchanges_per_min_per_node=round(fast_ex, 1),
            fast_cpu_s_per_min_per_node=round(cpu["fast"], 4),
            cpu_ms_per_exchange_both_sides=round(per_ex_ms, 3),
            projected_cpu_s_per_min_per_node_on=round(per_ex_ms * ex_per_min / 1e3, 4),
            projected_cpu_s_per_min_per_node_default_60s=round(per_ex_ms * 1.0 / 1e3, 5),
        )
        print(
            f"\nAmplified (tictac_exchange_interval_s={args.fast_interval_s:g}): node CPU"
            f" {cpu['fast']:.3f} s/min a node at {fast_ex:.0f} exchanges/min started, off"
            f" {cpu['off']:.3f}: {per_ex_ms:.2f} ms node CPU per exchange (its side and the"
            f" peer's, as a node serves as many as it starts); at {ex_per_min:.1f}/min that is"
            f" {per_ex_ms * ex_per_min / 1e3:.4f} s/min a node, at the default 60 s interval"
            f" {per_ex_ms / 1e3:.5f} s/min"
        )
    print(
        f"\nSummary per node: node CPU on {cpu['on']:.3f} s/min, off {cpu['off']:.3f} s/min,"
        f" tictac = on - off = {cpu['on'] - cpu['off']:+.3f} s/min;"
        f" {ex_per_min:.1f} exchanges/min started, {per_exchange:.0f} B each (computed):"
        f" {3 * ex_per_min * per_exchange:,.0f} B/min on the wire for the cluster,"
        f" {2 * ex_per_min * per_exchange:,.0f} B/min in + out at a node (started + served);"
        f" measured rchar+wchar on - off {io['on'] - io['off']:+,.0f} B/min a node"
        " (rough: all I/O)"
    )
    if rb:
        print(
            f"\nRebuild phase ({', '.join(rb.settings)}), busy after the start"
            f" {rb.post_start_busy_s:.0f}s, then a window of {rb.window_s:.0f}s"
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
        summary.update(
            rebuild_keys_per_s_limit=args.rebuild_keys_per_s,
            rebuild_keys_per_s_median=round(statistics.median(rates), 1) if rates else None,
            rebuild_keys_per_s_max=round(max(rates), 1) if rates else None,
            rebuild_cpu_s_per_min_per_node_inside=round(mean(busy), 4),
            rebuild_cpu_s_per_min_per_node_outside=round(mean(idle), 4),
            rebuild_cpu_s_per_min_per_node_extra=round(mean(busy) - mean(idle), 4),
        )
        print(
            f"  rebuild pace: median {summary['rebuild_keys_per_s_median']} keys/s, max"
            f" {summary['rebuild_keys_per_s_max']} (limit {args.rebuild_keys_per_s:g});"
            f" node CPU inside {mean(busy):.3f} s/min vs outside {mean(idle):.3f}:"
            f" rebuild {mean(busy) - mean(idle):+.3f} s/min per node"
        )
    print("\nsummary: " + json.dumps(summary))
    return summary


# --- Main ----------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--objects", type=int, default=10_000)
    p.add_argument("--value-bytes", type=int, default=1024)
    p.add_argument("--quiet-s", type=float, default=300, help="each quiet window")
    p.add_argument("--rounds", type=int, default=0, help="on/off pairs (0: 2 to 100k, else 1)")
    p.add_argument("--on-interval-s", type=float, default=5)
    p.add_argument("--off-interval-s", type=float, default=3600)
    p.add_argument(
        "--fast-interval-s", type=float, default=0.25, help="one amplified window (0: none)"
    )
    p.add_argument("--fast-s", type=float, default=120, help="the amplified window")
    p.add_argument("--settle-s", type=float, default=20, help="after the nodes are idle")
    p.add_argument("--idle-cpu", type=float, default=0.05, help="of a core: idle below it")
    p.add_argument("--idle-window-s", type=float, default=5)
    p.add_argument("--idle-timeout-s", type=float, default=0, help="0: 120 + objects/2000")
    p.add_argument("--sample-s", type=float, default=5, help="root comparisons in quiet windows")
    p.add_argument("--rebuild-interval-s", type=float, default=60)
    p.add_argument("--rebuild-keys-per-s", type=float, default=2000)
    p.add_argument("--rebuilds", type=int, default=0, help="per node (0: 2 if quick, else 1)")
    p.add_argument("--poll-s", type=float, default=0.25, help="polls in the rebuild phase")
    p.add_argument("--no-rebuild", action="store_true")
    p.add_argument("--load-connections", type=int, default=32)
    p.add_argument("--load-aae-interval-s", type=float, default=0.1, help="until caught up")
    p.add_argument("--load-timeout", type=float, default=0, help="seconds (0: 120 + objects/400)")
    p.add_argument("--catchup-timeout-s", type=float, default=0, help="0: 300 + objects/2000")
    p.add_argument("--compaction-timeout-s", type=float, default=180)
    p.add_argument("--build-timeout-s", type=float, default=0, help="0: 180 + objects/2000")
    p.add_argument("--keep-dir", action="store_true")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    if args.objects < 1 or args.quiet_s <= 0:
        p.error("--objects and --quiet-s must be positive")
    args.rounds = args.rounds or (2 if args.objects <= 100_000 else 1)
    args.catchup_timeout_s = args.catchup_timeout_s or 300 + args.objects / 2000
    args.build_timeout_s = args.build_timeout_s or 180 + args.objects / 2000
    args.idle_timeout_s = args.idle_timeout_s or 120 + args.objects / 2000
    args.base_set = []
    return args


def main() -> int:
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGTERM, _sigterm)
    started = now_text()
    t_start = time.monotonic()
    load_avg = os.getloadavg()
    print(
        f"tictac_cost {started}: {args.objects:,} objects, {args.rounds} on/off round(s),"
        f" quiet {args.quiet_s:g}s each; load average at start {load_avg[0]:.2f}"
        f" on {os.cpu_count()} cores (the machine is shared)"
    )
    root = Path(tempfile.mkdtemp(prefix="tictac-cost-"))
    on_set = [*args.base_set, f"tictac_exchange_interval_s={args.on_interval_s:g}"]
    # While loading, the log exchange walks a backlog of entries the peers already hold
    # at aae_interval_s a round of 1,000 (1 s by default: slower than the load writes,
    # so a 1M load would leave it behind for many minutes): faster here, to reach the
    # quiet state sooner. The measured windows run with the default.
    load_set = [*on_set, f"aae_interval_s={args.load_aae_interval_s:g}"]
    cluster = LocalCluster(root, 3, settings=load_set)
    quiet: list[Quiet] = []
    rb: RebuildPhase | None = None
    loaded: dict[str, Any] = {}
    wire: dict[str, Any] = {}
    failed = False
    try:
        cluster.start()
        cluster.wait_converged(timeout_s=60)
        urls = ",".join(n.url for n in cluster.nodes)
        blind_puts(cluster.nodes[0].url, BUCKET)
        loaded = load(cluster, urls, BUCKET, args.objects, 0, args)
        print(f"{load_line(loaded)}, at {now_text()}")
        after_load = {n.node_id: aae(n)["tictac"] for n in cluster.nodes}
        t_load = time.monotonic()
        if not loaded["finished"]:
            raise RuntimeError("the load did not finish")
        wait_for(
            lambda: caught_up(cluster.nodes),
            args.catchup_timeout_s,
            "every node's log exchange to be caught up after the load",
            interval_s=1,
        )
        caught = {n.node_id: aae(n)["tictac"] for n in cluster.nodes}
        tt_load = {
            k: {f: int(v[f]) for f in TT_COUNTERS if f != "builds"} for k, v in after_load.items()
        }
        tt_catchup = {k: {f: int(caught[k][f]) - tt_load[k][f] for f in tt_load[k]} for k in caught}
        loaded["tictac_at_load_end"] = tt_load
        loaded["tictac_during_catchup"] = tt_catchup
        loaded["catchup_s"] = round(time.monotonic() - t_load, 1)
        print(f"  log exchange caught up {loaded['catchup_s']}s after the load")
        print(f"  tictac counters at the load's end (writes in flight): {tt_load}")
        print(f"  tictac counters' growth while the log exchange caught up: {tt_catchup}")
        wire = wire_model(cluster)
        for r in range(args.rounds):
            for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                print(f"... quiet {mode} round {r + 1} at {now_text()}")
                q = quiet_window(cluster, mode, r + 1, args)
                quiet.append(q)
                print(
                    f"  {mode}: CPU s/min per node"
                    f" {[n.cpu_s_per_min for n in q.nodes]}, exchanges"
                    f" {[n.tt['exchanges'] for n in q.nodes]}, differing"
                    f" {[n.tt['differing_exchanges'] for n in q.nodes]}; start-up:"
                    f" {fmt_startup(q.startup)}; prep {q.prep}"
                )
        if args.fast_interval_s > 0:
            print(f"... quiet fast (amplified) at {now_text()}")
            q = quiet_window(cluster, "fast", 0, args)
            quiet.append(q)
            print(
                f"  fast: CPU s/min per node {[n.cpu_s_per_min for n in q.nodes]}, exchanges"
                f" {[n.tt['exchanges'] for n in q.nodes]}, differing"
                f" {[n.tt['differing_exchanges'] for n in q.nodes]}"
            )
        if not args.no_rebuild:
            print(f"... rebuild phase at {now_text()}")
            busy = max((q.prep.get("post_start_busy_s", 0.0) for q in quiet), default=0.0)
            rb = rebuild_phase(cluster, args, busy)
    except (Stop, KeyboardInterrupt, WaitTimeout, RuntimeError, *READ_ERRORS) as e:
        failed = True
        print(f"\n!!! {type(e).__name__}: {e}", file=sys.stderr)
        try:
            print("log exchange state:\n" + aae_summary(cluster.running()), file=sys.stderr)
        except READ_ERRORS:
            pass
        print(cluster.logs(tail=20), file=sys.stderr)
    finally:
        cluster.stop()
        if failed or args.keep_dir:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    ended = now_text()
    print(f"ended {ended}, {time.monotonic() - t_start:.0f}s in all")
    summary: dict[str, Any] = {}
    if (
        quiet
        and wire
        and any(q.mode == "on" for q in quiet)
        and any(q.mode == "off" for q in quiet)
    ):
        summary = report(args, quiet, wire, rb)
    if args.json:
        doc = {
            "started": started,
            "ended": ended,
            "args": {k: v for k, v in vars(args).items()},
            "load": loaded,
            "wire": wire,
            "quiet": [asdict(q) for q in quiet],
            "rebuild": asdict(rb) if rb else None,
            "summary": summary,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
