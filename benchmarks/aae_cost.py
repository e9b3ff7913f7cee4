"""Anti-entropy cost on real node processes: quiet cost vs stored data, catch-up vs missed writes.

Run: ``.venv/bin/python benchmarks/aae_cost.py [--quiet-keys 1000 100000] [--window 60]
[--missed 1000 2000 4000 8000] [--json FILE]``

Two measurements, each case on a fresh 3-node ``LocalCluster`` in a temporary directory:

1. **Quiet cost vs stored data** (default settings, so ``aae_quiet_interval_s=5``): load K
   keys of ``--value-bytes`` with ``w=all`` (threads with keep-alive connections spread over
   the nodes), wait until every node has applied every peer's whole log (each peer
   ``complete``, ``lag`` 0 and the watermark at the peer's current head in ``/admin/aae``),
   let it settle ``--settle`` seconds, then over ``--window`` seconds take per-node deltas of
   the anti-entropy counters (rounds, objects and bytes sent + received; the same counters as
   ``aae_*_total`` in ``/stats``, read from ``/admin/aae`` which is not cached) and of the
   node process's CPU seconds (utime + stime from ``/proc/<pid>/stat``; the whole node:
   gossip, RocksDB, HTTP and all). ``/proc/<pid>/io`` rchar + wchar (every read/write
   syscall, sockets and files) is shown as a rough all-traffic figure. The claim: a quiet
   cluster with 100k keys costs the same bytes and CPU in anti-entropy as one with 1k keys.

2. **Catch-up after N missed writes** (``hinted_handoff=false``, ``aae_quiet_interval_s=0.5``):
   SIGSTOP the third node, wait until the others see it down, write N new keys with ``w=1``
   through the two live nodes, SIGCONT it and time until its ``objects_changed`` counter
   (``aae_objects_changed_total``) has grown by N: every missed key merged by anti-entropy.
   The counter is read before SIGSTOP (a stopped node does not answer; it cannot change
   while stopped) and polled every 0.1 s from ``/admin/aae`` (``/stats`` is cached for
   1 s). ``first`` is the time until the first merge (the resumed node must see its peers
   up again before it runs rounds with them). The claim: catch-up time grows linearly in N.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from costlib.cluster import scratch, stop_on_sigterm
from costlib.http_load import LoadError, put_keys
from costlib.node import READ_ERRORS, aae_status, aae_summary, caught_up, proc_cpu_s, proc_io_bytes
from costlib.report import linear_fit, machine, table

from dynamo.tools.localcluster import NodeProcess, WaitTimeout, wait_for

BUCKET = "aae"


# --- Node readings ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeReading:
    rounds: int
    objects: int  # sent + received
    objects_in: int  # received
    bytes: int  # sent + received
    changed: int
    cpu_s: float
    io_bytes: int

    @staticmethod
    def take(node: NodeProcess) -> NodeReading:
        pid = node.pid
        if pid is None or not node.running():
            raise RuntimeError(f"{node.node_id} is not running: see {node.log_path}")
        s = aae_status(node)
        peers = s["peers"].values()
        return NodeReading(
            rounds=int(s["rounds"]),
            objects=int(s["objects_sent"]) + sum(int(p["objects_in"]) for p in peers),
            objects_in=sum(int(p["objects_in"]) for p in peers),
            bytes=int(s["bytes_sent"]) + sum(int(p["bytes_in"]) for p in peers),
            changed=int(s["objects_changed"]),
            cpu_s=proc_cpu_s(pid),
            io_bytes=proc_io_bytes(pid),
        )


# --- Cases ------------------------------------------------------------------------------------


@dataclass(slots=True)
class QuietNode:
    node: str
    rounds: int
    objects: int
    bytes: int
    cpu_s: float
    cpu_s_per_min: float
    io_bytes: int


@dataclass(slots=True)
class QuietResult:
    keys: int
    load_s: float = 0.0
    load_rate: float = 0.0
    load_reconnects: int = 0
    catchup_s: float = 0.0  # from the end of the load until every node was caught up
    window_s: float = 0.0
    nodes: list[QuietNode] = field(default_factory=list)
    error: str | None = None
    data_dir: str | None = None

    def total(self, name: str) -> float:
        return float(sum(getattr(n, name) for n in self.nodes))


@dataclass(slots=True)
class CatchupResult:
    missed: int
    write_s: float = 0.0
    down_s: float = 0.0  # from SIGSTOP until both other nodes saw it down
    first_s: float | None = None  # from SIGCONT until the first key was merged
    done_s: float | None = None  # from SIGCONT until all ``missed`` keys were merged
    changed: int = 0  # growth of the resumed node's objects_changed when done
    received: int = 0  # objects the resumed node received by anti-entropy meanwhile
    rounds: int = 0  # rounds the resumed node ran meanwhile
    samples: list[tuple[float, int]] = field(default_factory=list)  # (s, merged) per poll
    error: str | None = None
    data_dir: str | None = None

    @property
    def rate(self) -> float | None:
        return self.missed / self.done_s if self.done_s else None


CASE_ERRORS = (WaitTimeout, LoadError, RuntimeError, *READ_ERRORS)


def quiet_case(keys: int, args: argparse.Namespace) -> QuietResult:
    res = QuietResult(keys=keys)
    with scratch(f"aae_quiet_{keys}_", 3, args.quiet_set, args.keep_dirs) as s:
        cluster = s.cluster
        try:
            cluster.start()
            cluster.wait_converged(timeout_s=60)
            value = os.urandom(args.value_bytes)
            lr = put_keys(cluster.nodes, BUCKET, "k", keys, value, "all", args.load_threads)
            res.load_s, res.load_rate, res.load_reconnects = lr.seconds, lr.rate, lr.reconnects
            t0 = time.monotonic()
            wait_for(
                lambda: caught_up(cluster.nodes),
                args.catchup_timeout,
                "every node's anti-entropy to be caught up",
                interval_s=0.5,
            )
            res.catchup_s = time.monotonic() - t0
            time.sleep(args.settle)
            before = {n.node_id: NodeReading.take(n) for n in cluster.nodes}
            w0 = time.monotonic()
            time.sleep(args.window)
            after = {n.node_id: NodeReading.take(n) for n in cluster.nodes}
            res.window_s = time.monotonic() - w0
            for n in cluster.nodes:
                b, a = before[n.node_id], after[n.node_id]
                cpu = a.cpu_s - b.cpu_s
                res.nodes.append(
                    QuietNode(
                        node=n.node_id,
                        rounds=a.rounds - b.rounds,
                        objects=a.objects - b.objects,
                        bytes=a.bytes - b.bytes,
                        cpu_s=round(cpu, 3),
                        cpu_s_per_min=round(cpu * 60 / res.window_s, 3),
                        io_bytes=a.io_bytes - b.io_bytes,
                    )
                )
            if not caught_up(cluster.nodes):
                print(
                    f"note: K={keys}: not caught up at the end of the window:\n"
                    + aae_summary(cluster.nodes),
                    file=sys.stderr,
                )
        except CASE_ERRORS as e:
            res.error = s.fail(e)
    res.data_dir = s.kept
    return res


def catchup_case(missed: int, args: argparse.Namespace) -> CatchupResult:
    res = CatchupResult(missed=missed)
    with scratch(f"aae_catchup_{missed}_", 3, args.catchup_set, args.keep_dirs) as s:
        cluster = s.cluster
        victim = cluster[2]
        live = [cluster[0], cluster[1]]
        try:
            cluster.start()
            cluster.wait_converged(timeout_s=60)
            wait_for(lambda: caught_up(cluster.nodes), 60, "anti-entropy state on every node", 0.2)
            before = NodeReading.take(victim)
            t0 = time.monotonic()
            victim.pause()
            cluster.wait_up_everywhere(victim, up=False, timeout_s=120)
            res.down_s = time.monotonic() - t0
            value = os.urandom(args.value_bytes)
            lr = put_keys(live, BUCKET, "m", missed, value, "1", args.load_threads)
            res.write_s = lr.seconds
            target = before.changed + missed
            # (seconds since SIGCONT, keys merged so far), one per poll
            samples: list[tuple[float, int]] = []

            def progress() -> NodeReading | None:
                r = NodeReading.take(victim)
                samples.append((round(time.monotonic() - start, 3), r.changed - before.changed))
                return r if r.changed >= target else None

            start = time.monotonic()
            victim.resume()
            done = wait_for(
                progress,
                args.catchup_timeout,
                f"{victim.node_id} to merge {missed} missed keys",
                interval_s=0.1,
            )
            res.samples = samples
            res.done_s = samples[-1][0]
            res.first_s = next(t for t, c in samples if c > 0)
            res.changed = done.changed - before.changed
            res.received = done.objects_in - before.objects_in
            res.rounds = done.rounds - before.rounds
        except CASE_ERRORS as e:
            res.error = s.fail(e)
            try:
                r = NodeReading.take(victim)
                print(f"{victim.node_id} reading at failure: {r}", file=sys.stderr)
            except (RuntimeError, *READ_ERRORS):
                pass
    res.data_dir = s.kept
    return res


# --- Output -----------------------------------------------------------------------------------


def quiet_tables(results: Sequence[QuietResult]) -> str:
    rows = []
    per_node = []
    for r in results:
        if r.error:
            rows.append([f"{r.keys:,}", "FAILED: " + r.error, *[""] * 9])
            continue
        mins = r.window_s / 60
        rows.append(
            [
                f"{r.keys:,}",
                f"{r.load_s:.1f}",
                f"{r.load_rate:,.0f}",
                f"{r.catchup_s:.1f}",
                f"{r.window_s:.1f}",
                f"{r.total('rounds'):.0f}",
                f"{r.total('objects'):.0f}",
                f"{r.total('bytes'):,.0f}",
                f"{r.total('cpu_s'):.2f}",
                f"{r.total('cpu_s') / mins / len(r.nodes):.2f}",
                f"{r.total('io_bytes') / mins / len(r.nodes) / 1024:,.1f}",
            ]
        )
        for n in r.nodes:
            per_node.append(
                [
                    f"{r.keys:,}",
                    n.node,
                    str(n.rounds),
                    str(n.objects),
                    f"{n.bytes:,}",
                    f"{n.cpu_s:.2f}",
                    f"{n.cpu_s_per_min:.2f}",
                    f"{n.io_bytes / 1024:,.1f}",
                ]
            )
    summary = table(
        (
            "K keys",
            "load s",
            "writes/s",
            "catch-up s",
            "window s",
            "AAE rounds",
            "AAE objs s+r",
            "AAE bytes s+r",
            "CPU s (3 nodes)",
            "CPU s/min/node",
            "syscall KiB/min/node",
        ),
        rows,
    )
    if not per_node:
        return summary
    detail = table(
        ("K keys", "node", "rounds", "objs s+r", "bytes s+r", "CPU s", "CPU s/min", "io KiB"),
        per_node,
    )
    return summary + "\n\nper node over the window:\n" + detail


def catchup_table(results: Sequence[CatchupResult]) -> str:
    rows = []
    for r in results:
        if r.error or r.done_s is None:
            rows.append([f"{r.missed:,}", "FAILED: " + str(r.error), *[""] * 8])
            continue
        first = r.first_s if r.first_s is not None else r.done_s
        merge = r.done_s - first
        # keys merged after the first poll that saw any, over the time since that poll
        at_first = next((c for t, c in r.samples if t == first), 0)
        rows.append(
            [
                f"{r.missed:,}",
                f"{r.write_s:.1f}",
                f"{r.down_s:.1f}",
                f"{first:.2f}",
                f"{r.done_s:.2f}",
                f"{r.rate or 0:,.0f}",
                f"{(r.missed - at_first) / merge:,.0f}" if merge > 0 else "(1 poll)",
                str(r.changed),
                str(r.received),
                str(r.rounds),
            ]
        )
    out = table(
        (
            "N missed",
            "write s",
            "down s",
            "first merge s",
            "all merged s",
            "keys/s",
            "keys/s after 1st poll",
            "changed",
            "received",
            "rounds",
        ),
        rows,
    )
    ok = [(r.missed, r.done_s) for r in results if r.done_s is not None and not r.error]
    if len(ok) >= 2:
        slope, intercept, r2 = linear_fit([float(x) for x, _ in ok], [y for _, y in ok])
        out += (
            f"\nleast squares: all merged s = {intercept:.2f} + {slope * 1000:.3f} * N/1000"
            f"  (R^2 = {r2:.4f})"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quiet-keys", type=int, nargs="*", default=[1_000, 100_000])
    parser.add_argument("--window", type=float, default=60.0, help="quiet window, seconds")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds after catch-up before the window"
    )
    parser.add_argument("--missed", type=int, nargs="*", default=[1_000, 2_000, 4_000, 8_000])
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--load-threads", type=int, default=12)
    parser.add_argument(
        "--catchup-timeout", type=float, default=600.0, help="deadline of each AAE wait, seconds"
    )
    parser.add_argument(
        "--quiet-set", action="append", default=[], help="extra node setting for part 1"
    )
    parser.add_argument(
        "--catchup-set",
        action="append",
        default=None,
        help="node settings for part 2 (default: hinted_handoff=false aae_quiet_interval_s=0.5)",
    )
    parser.add_argument("--keep-dirs", action="store_true", help="keep the cluster directories")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args()
    stop_on_sigterm()
    if args.catchup_set is None:
        args.catchup_set = ["hinted_handoff=false", "aae_quiet_interval_s=0.5"]

    info = machine()
    params = {
        "nodes": 3,
        "quiet_keys": args.quiet_keys,
        "window_s": args.window,
        "settle_s": args.settle,
        "missed": args.missed,
        "value_bytes": args.value_bytes,
        "load_threads": args.load_threads,
        "catchup_timeout_s": args.catchup_timeout,
        "quiet_settings": args.quiet_set or ["(defaults: aae_quiet_interval_s=5)"],
        "catchup_settings": args.catchup_set,
    }
    print(
        f"machine: {info['cores']} cores ({info['cores_usable']} usable), {info['cpu_model']}, "
        f"{info['platform']}, Python {info['python']}"
    )
    print("parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()), flush=True)

    quiet: list[QuietResult] = []
    for k in args.quiet_keys:
        print(f"... quiet: {k:,} keys", flush=True)
        quiet.append(quiet_case(k, args))
    catchup: list[CatchupResult] = []
    for n in args.missed:
        print(f"... catch-up: {n:,} missed writes", flush=True)
        catchup.append(catchup_case(n, args))

    if quiet:
        print("\n1. Quiet cost vs stored data (deltas over the window, after catch-up)")
        print(quiet_tables(quiet))
    if catchup:
        print("\n2. Catch-up after N missed writes (from SIGCONT)")
        print(catchup_table(catchup))
    kept = [r.data_dir for r in quiet] + [r.data_dir for r in catchup]
    for d in kept:
        if d:
            print(f"kept: {d}")
    if args.json:
        doc = {
            "machine": info,
            "params": params,
            "quiet": [asdict(r) for r in quiet],
            "catchup": [{**asdict(r), "keys_per_s": r.rate} for r in catchup],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
