"""What the tictac anti-entropy backstop costs on a quiet cluster (``--nodes``, 3), and while it
rebuilds: node CPU seconds per minute (from /proc), exchanges and bytes per minute,
the start-up build time, and a rebuild's pace against its rate limit.

    python benchmarks/tictac_cost.py --objects 10000
    python benchmarks/tictac_cost.py --objects 1000000 --json 1m.json
    python benchmarks/tictac_cost.py --nodes 5 --objects 10000

One ``LocalCluster`` of ``--nodes`` nodes (n_val the default, 3) in a temporary
directory, the same data throughout. The node processes run ``python -m dynamo.tools.cli``
from this process's working directory and environment (their cwd and PYTHONPATH are
printed): run it from a snapshot of the code to measure that snapshot.

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
   pending compactions are let drain, maintenance's cleanup pass is let end (a started
   node walks every key once, "a restart may follow a ring change we did not finish",
   at most 10k keys/s; at 1M keys it costs ~2.2 s/min a node for ~90 s after the build,
   below ``--idle-cpu`` yet ~20x the exchanges at 5 s: windows opened during it gave 3-4
   ms of node CPU per exchange at 1M keys, 0.6-0.8 ms once it is over, as at 10k): until
   every node's ``/stats`` ``cleanup_passes_total`` is >= 1 (``--cleanup-timeout-s``;
   ``--cleanup-s`` from the spawn is an optional extra minimum; passes that fall inside
   a window are shown), the nodes are checked
   idle (each under ``--idle-cpu`` of a core over ``--idle-window-s``), ``--settle-s``
   more. Then ``--quiet-s`` without client traffic, taking per node the delta of utime
   + stime of the node process (``/proc/<pid>/stat``: the whole node, the log exchange,
   gossip and RocksDB included), of ``/proc/<pid>/io`` rchar + wchar (every socket and
   file read/write: a rough all-traffic figure), and of the ``tictac`` counters of
   ``/admin/aae``; node CPU per whole minute is shown too (a leftover transient shows as
   a first minute above the rest). ``tictac.parts_read`` (cut-segment parts read from
   the store) is shown before each window (since the start; each growth seen while
   waiting for the cleanup pass, with the node's exchanges then) and inside it (0 once
   every part is kept). Every ``--sample-s`` the nodes' tree roots are compared when
   nodes <= n_val (every node holds every key, so equal roots mean equal trees; with
   more nodes the trees hold different keys and only differing exchanges tell).
   Tictac's cost is on minus off. Then one amplified window of
   ``--fast-s`` at ``--fast-interval-s`` (0.25 s: ~20x the exchanges) gives node CPU per
   exchange as (fast - off) / exchanges, which the tick-grained on-minus-off difference
   is too small to give well; likewise rchar+wchar per exchange, (fast - off) / (2 x
   exchanges) (each exchange's bytes written by one node and read by the other).
3. Bytes an exchange moves are COMPUTED, not measured (``/stats`` counts node-to-node
   calls, not their bytes): the ring is rebuilt from ``/admin/ring`` (its hash checked),
   each ordered pair's shared ranges at the default n_val give the "tree" request, and
   the reply is 256 branch hashes; both are encoded as the RPC frames them (msgpack
   ``[kind, id, method, body]``), a hash at 9 bytes (msgpack uint64) and a branch the
   shared ranges do not reach, or that holds no key of them, at 1 (0): the reply's
   expected size at ``--objects`` uniform positions (see ``costlib/tictac_wire.py``).
   The figure is the mean over the pairs that share ranges (a node picks its peer
   uniformly). An exchange that finds nothing different is exactly that request and
   that reply. TCP/IP headers are not counted. Segments a shared-range boundary cuts
   (none when nodes <= n_val) are hashed from their keys, read from the store at the
   first exchange with a peer (started or served) and then kept up to date by the tree:
   their number per pair, and per node over all its peers, is shown.
4. Rebuild: restarted with ``tictac_rebuild_interval_s`` = ``--rebuild-interval-s`` (60,
   or the longest cleanup pass of the quiet windows + 30 s if that is longer, so the
   first rebuild starts after the cleanup pass; readings start when every node's
   ``cleanup_passes_total`` is >= 1 and the nodes are idle) and
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
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from costlib.cluster import Stop, scratch, stop_on_sigterm
from costlib.node import READ_ERRORS, aae_status, caught_up
from costlib.report import mean
from costlib.tictac_node import TT_COUNTERS, fmt_startup
from costlib.tictac_quiet import Quiet, quiet_window
from costlib.tictac_rebuild import RebuildPhase, rebuild_phase, report_rebuilds
from costlib.tictac_wire import bigger_ring_note, exchanging_pairs, wire_model
from index_bench import blind_puts, load, load_line, now_text

from dynamo.tools.localcluster import LocalCluster, WaitTimeout, wait_for

BUCKET = "bench"


# --- Output --------------------------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    quiet: list[Quiet],
    wire: dict[str, Any],
    rb: RebuildPhase | None,
) -> dict[str, Any]:
    """Print the tables; return the summary figures."""
    nn = args.nodes
    print(
        f"\n=== tictac cost, {nn} nodes (n_val {wire['n_val']}), {args.objects:,} objects"
        f" of {args.value_bytes} B ==="
    )
    print(
        "\nQuiet windows (per node, node CPU from /proc; exchanges = ones this node started;"
        " pre = since the node's start, before the window; parts = tictac.parts_read,"
        " cut-segment parts read from the store; cln = cleanup passes in the window):"
    )
    print(
        f"  {'mode':<4} {'rnd':>3} {'node':<4} {'CPU s/min':>10} {'exch':>5} {'diff':>5}"
        f" {'healed':>6} {'repaired':>8} {'io B/min':>10} {'log rounds':>10}"
        f" {'pre exch':>8} {'pre parts':>9} {'parts':>5} {'cln':>3}"
    )
    expected = wire["parts_expected"]
    for q in quiet:
        print(
            f"  {q.mode} r{q.round}: restarted {q.started}, window {q.window_started} to"
            f" {q.window_ended}"
        )
        for n in q.nodes:
            print(
                f"  {q.mode:<4} {q.round:>3} {n.node:<4} {n.cpu_s_per_min:>10.3f}"
                f" {n.tt['exchanges']:>5} {n.tt['differing_exchanges']:>5}"
                f" {n.tt['healed_leaves']:>6} {n.tt['repaired']:>8}"
                f" {n.io_bytes_per_min:>10,.0f} {n.log_rounds:>10}"
                f" {n.before['exchanges']:>8} {n.before['parts_read']:>9}"
                f" {n.tt['parts_read']:>5} {n.stats['cleanup_passes_total']:>3}"
            )
        roots = (
            f"roots differing in {q.roots_differing_samples}/{q.samples} samples"
            if q.roots_compared
            else f"roots not compared ({nn} nodes > n_val: trees hold different keys)"
        )
        print(
            f"  {q.mode:<4} {q.round:>3} all  {q.total('cpu_s_per_min'):>10.3f}"
            f"   window {q.window_s:.0f}s from {q.prep.get('window_after_spawn_s', 0):.0f}s after"
            f" the start (cleanup passes done {q.prep.get('cleanup_done_after_spawn_s')} s"
            f" after it), by minute {q.cpu_by_minute} a node; {roots}, differing exchanges"
            f" {q.tt_total('differing_exchanges')}"
        )
        if q.parts_events:
            seen: dict[str, list[str]] = {}
            for e in q.parts_events:
                seen.setdefault(e["node"], []).append(
                    f"{e['parts_read']}@{e['at_s']:g}s/{e['exchanges']}x"
                )
            print(
                "    parts_read growth before the window (total @ s after the spawn /"
                " exchanges the node had started then): "
                + "; ".join(f"{k} {' '.join(v)}" for k, v in sorted(seen.items()))
            )
    print(f"  parts each node should read once (computed from the ring): {expected}")
    by_mode = {m: [q for q in quiet if q.mode == m] for m in ("on", "off", "fast")}
    cpu = {m: mean([q.total("cpu_s_per_min") / nn for q in qs]) for m, qs in by_mode.items()}
    io = {m: mean([q.total("io_bytes_per_min") / nn for q in qs]) for m, qs in by_mode.items()}
    ex_per_min = mean([n.tt["exchanges"] * 60 / q.window_s for q in by_mode["on"] for n in q.nodes])
    pairs = exchanging_pairs(wire)
    per_exchange = mean([p["request_bytes"] + p["reply_bytes"] for p in pairs])
    req = mean([p["request_bytes"] for p in pairs])
    rep = mean([p["reply_bytes"] for p in pairs])
    rep_full = mean([p["reply_bytes_all_nonzero"] for p in pairs])
    cut = [p["cut_segments"] for p in pairs]
    shared = [p["shared_ranges"] for p in pairs]
    print(
        f"\nExchange on the wire (COMPUTED from the ring, hash match"
        f" {wire['ring_hash_matches']}; mean over the {len(pairs)} of {len(wire['pairs'])}"
        f" ordered pairs that share ranges): request {req:.0f} B + reply {rep:.0f} B"
        f" (expected; {rep_full:.0f} B if every branch were nonzero) ="
        f" {per_exchange:.0f} B per quiet exchange; shared ranges per pair"
        f" {min(shared)}-{max(shared)}, cut segments per pair {min(cut)}-{max(cut)}"
        " (a cut segment's keys are read from the store once, then kept by the tree)"
    )
    for name, p in wire["pairs"].items():
        print(
            f"  {name}: {p['shared_ranges']} ranges ({p['ring_share']:.3f} of the ring),"
            f" {p['branches_reached']} branches reached, {p['cut_segments']} cut segments;"
            f" request {p['request_bytes']} B, reply {p['reply_bytes']} B"
        )
    if max(cut) == 0:
        note = bigger_ring_note(args.objects)
        print(
            f"  for scale, computed: a 5-node ring (n_val 3, 64 tokens) n1->n2 shares"
            f" {note['shared_ranges']} ranges cutting {note['cut_segments']} segments:"
            f" ~{note['keys_in_cut_segments_per_side']:,} keys in them per side (read once) at"
            f" {args.objects:,} objects; request {note['request_bytes']:,} B"
        )
    all_startups = [s for q in quiet for s in q.startup] + (rb.startup if rb else [])
    built = [s.built_s for s in all_startups if s.built_s is not None]
    log_built = [s.log_build_s for s in all_startups if s.log_build_s is not None]
    print(
        f"\nStart-up build (tictac_build_keys_per_s default 50,000; {nn} nodes start together),"
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
        "nodes": nn,
        "n_val": wire["n_val"],
        "cpu_s_per_min_per_node_on": round(cpu["on"], 4),
        "cpu_s_per_min_per_node_off": round(cpu["off"], 4),
        "tictac_cpu_s_per_min_per_node": round(cpu["on"] - cpu["off"], 4),
        "io_bytes_per_min_per_node_on": round(io["on"]),
        "io_bytes_per_min_per_node_off": round(io["off"]),
        "io_bytes_per_min_per_node_on_minus_off": round(io["on"] - io["off"]),
        "exchanges_per_min_per_node": round(ex_per_min, 2),
        "bytes_per_exchange_computed": round(per_exchange),
        # Each byte once: every node's started exchanges, request and reply.
        "exchange_bytes_per_min_cluster_computed": round(nn * ex_per_min * per_exchange),
        # A node sends and receives its own exchanges and serves its peers' (as many on
        # average): in + out at a node is about twice its started exchanges' bytes.
        "exchange_bytes_in_out_per_min_per_node_computed": round(2 * ex_per_min * per_exchange),
        "startup_build_s_median": round(statistics.median(built), 1),
        "differing_exchanges_idle": sum(q.tt_total("differing_exchanges") for q in quiet),
        "roots_differing_samples": sum(q.roots_differing_samples for q in quiet),
        "parts_expected_per_node": expected,
        "parts_read_in_windows": sum(q.tt_total("parts_read") for q in quiet),
        "cleanup_passes_in_windows": sum(
            n.stats["cleanup_passes_total"] for q in quiet for n in q.nodes
        ),
    }
    io_per_ex = (io["on"] - io["off"]) / (2 * ex_per_min) if ex_per_min else float("nan")
    summary["io_bytes_per_exchange_measured_on"] = round(io_per_ex)
    if by_mode["fast"]:
        fast_ex = mean(
            [n.tt["exchanges"] * 60 / q.window_s for q in by_mode["fast"] for n in q.nodes]
        )
        extra = cpu["fast"] - cpu["off"]
        per_ex_ms = extra / fast_ex * 1e3 if fast_ex else float("nan")
        fast_io = (io["fast"] - io["off"]) / (2 * fast_ex) if fast_ex else float("nan")
        summary.update(
            fast_io_bytes_per_min_per_node=round(io["fast"]),
            io_bytes_per_exchange_measured_fast=round(fast_io),
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
            f" {per_ex_ms / 1e3:.5f} s/min; rchar+wchar {io['fast']:,.0f} B/min a node:"
            f" (fast - off) / (2 x exchanges) = {fast_io:,.0f} B per exchange measured,"
            f" {per_exchange:.0f} computed"
        )
    print(
        f"\nSummary per node: node CPU on {cpu['on']:.3f} s/min, off {cpu['off']:.3f} s/min,"
        f" tictac = on - off = {cpu['on'] - cpu['off']:+.3f} s/min;"
        f" {ex_per_min:.1f} exchanges/min started, {per_exchange:.0f} B each (computed):"
        f" {nn * ex_per_min * per_exchange:,.0f} B/min on the wire for the cluster,"
        f" {2 * ex_per_min * per_exchange:,.0f} B/min in + out at a node (started + served);"
        f" measured rchar+wchar on - off {io['on'] - io['off']:+,.0f} B/min a node"
        f" (rough: all I/O), {io_per_ex:,.0f} B per exchange (each exchange's bytes are"
        " written by one node and read by the other: on - off over 2 x exchanges)"
    )
    if rb:
        summary.update(report_rebuilds(rb, args))
    print("\nsummary: " + json.dumps(summary))
    return summary


def process_origin(pid: int | None) -> str:
    """Where a node process runs from: its working directory and PYTHONPATH (``-m``
    imports from the working directory first)."""
    if pid is None:
        return "not running"
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError as e:
        return f"pid {pid}: {e}"
    path = next((v[11:].decode() for v in env if v.startswith(b"PYTHONPATH=")), "")
    return f"pid {pid}, cwd {cwd}, PYTHONPATH {path or '(none)'}"


# --- Main ----------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--objects", type=int, default=10_000)
    p.add_argument("--nodes", type=int, default=3, help="cluster size (n_val stays the default)")
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
    p.add_argument(
        "--cleanup-s",
        type=float,
        default=0,
        help="an extra minimum from a start's spawn to the window (the wait is on the nodes'"
        " cleanup_passes_total)",
    )
    p.add_argument("--cleanup-timeout-s", type=float, default=0, help="0: 300 + objects/1000")
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
    if args.objects < 1 or args.quiet_s <= 0 or args.nodes < 1:
        p.error("--objects, --nodes and --quiet-s must be positive")
    args.rounds = args.rounds or (2 if args.objects <= 100_000 else 1)
    args.catchup_timeout_s = args.catchup_timeout_s or 300 + args.objects / 2000
    args.build_timeout_s = args.build_timeout_s or 180 + args.objects / 2000
    args.idle_timeout_s = args.idle_timeout_s or 120 + args.objects / 2000
    # Maintenance's cleanup pass after a start walks every key a node holds, 500 a chunk
    # with 50 ms between chunks: at least objects/10,000 seconds.
    args.cleanup_timeout_s = args.cleanup_timeout_s or 300 + args.objects / 1000
    args.cleanup_seen_s = 0.0  # the longest spawn -> every node's pass done (quiet windows)
    args.compare_roots = True  # nodes <= n_val: every tree holds every key (set from the ring)
    args.parts_expected = {}  # each node's cut-segment parts (set from the ring)
    args.base_set = []
    return args


@dataclass(slots=True)
class Run:
    """What a run measured, so far as it got."""

    loaded: dict[str, Any] = field(default_factory=dict)
    wire: dict[str, Any] = field(default_factory=dict)
    quiet: list[Quiet] = field(default_factory=list)
    rb: RebuildPhase | None = None


def measure(cluster: LocalCluster, args: argparse.Namespace, run: Run) -> None:
    """Load, then the quiet windows, the amplified one and the rebuild phase."""
    cluster.start()
    cluster.wait_converged(timeout_s=60)
    for n in cluster.nodes:
        print(f"  {n.node_id}: {process_origin(n.pid)}")
    urls = ",".join(n.url for n in cluster.nodes)
    blind_puts(cluster.nodes[0].url, BUCKET)
    run.loaded = loaded = load(cluster, urls, BUCKET, args.objects, 0, args)
    print(f"{load_line(loaded)}, at {now_text()}")
    after_load = {n.node_id: aae_status(n)["tictac"] for n in cluster.nodes}
    t_load = time.monotonic()
    if not loaded["finished"]:
        raise RuntimeError("the load did not finish")
    wait_for(
        lambda: caught_up(cluster.nodes),
        args.catchup_timeout_s,
        "every node's log exchange to be caught up after the load",
        interval_s=1,
    )
    caught = {n.node_id: aae_status(n)["tictac"] for n in cluster.nodes}
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
    run.wire = wire_model(cluster, args.objects)
    args.compare_roots = args.nodes <= run.wire["n_val"]
    args.parts_expected = run.wire["parts_expected"]
    for r in range(args.rounds):
        for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
            print(f"... quiet {mode} round {r + 1} at {now_text()}")
            q = quiet_window(cluster, mode, r + 1, args)
            run.quiet.append(q)
            print(
                f"  {mode}: CPU s/min per node"
                f" {[n.cpu_s_per_min for n in q.nodes]}, exchanges"
                f" {[n.tt['exchanges'] for n in q.nodes]}, differing"
                f" {[n.tt['differing_exchanges'] for n in q.nodes]}; CPU s/min a node by"
                f" minute {q.cpu_by_minute}; start-up:"
                f" {fmt_startup(q.startup)}; prep {q.prep}"
            )
    if args.fast_interval_s > 0:
        print(f"... quiet fast (amplified) at {now_text()}")
        q = quiet_window(cluster, "fast", 0, args)
        run.quiet.append(q)
        print(
            f"  fast: CPU s/min per node {[n.cpu_s_per_min for n in q.nodes]}, exchanges"
            f" {[n.tt['exchanges'] for n in q.nodes]}, differing"
            f" {[n.tt['differing_exchanges'] for n in q.nodes]}; by minute {q.cpu_by_minute}"
        )
    if not args.no_rebuild:
        print(f"... rebuild phase at {now_text()}")
        run.rb = rebuild_phase(cluster, args)


def main() -> int:
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    stop_on_sigterm()
    started = now_text()
    t_start = time.monotonic()
    load_avg = os.getloadavg()
    print(
        f"tictac_cost {started}: {args.nodes} nodes, {args.objects:,} objects,"
        f" {args.rounds} on/off round(s),"
        f" quiet {args.quiet_s:g}s each; load average at start {load_avg[0]:.2f}"
        f" on {os.cpu_count()} cores (the machine is shared)"
    )
    on_set = [*args.base_set, f"tictac_exchange_interval_s={args.on_interval_s:g}"]
    # While loading, the log exchange walks a backlog of entries the peers already hold
    # at aae_interval_s a round of 1,000 (1 s by default: slower than the load writes,
    # so a 1M load would leave it behind for many minutes): faster here, to reach the
    # quiet state sooner. The measured windows run with the default.
    load_set = [*on_set, f"aae_interval_s={args.load_aae_interval_s:g}"]
    run = Run()
    with scratch("tictac-cost-", args.nodes, load_set, args.keep_dir) as s:
        try:
            measure(s.cluster, args, run)
        except (Stop, KeyboardInterrupt, WaitTimeout, RuntimeError, *READ_ERRORS) as e:
            s.fail(e, tail=20)
    if s.kept:
        print(f"kept {s.kept}")
    ended = now_text()
    print(f"ended {ended}, {time.monotonic() - t_start:.0f}s in all")
    quiet, rb, wire = run.quiet, run.rb, run.wire
    summary: dict[str, Any] = {}
    modes = {q.mode for q in quiet}
    if wire and {"on", "off"} <= modes:
        summary = report(args, quiet, wire, rb)
    if args.json:
        doc = {
            "started": started,
            "ended": ended,
            "args": {k: v for k, v in vars(args).items()},
            "load": run.loaded,
            "wire": wire,
            "quiet": [asdict(q) for q in quiet],
            "rebuild": asdict(rb) if rb else None,
            "summary": summary,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if s.failed else 0


if __name__ == "__main__":
    sys.exit(main())
