"""``dynamo bench``: load a cluster (running, or started here) and report its figures."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from dynamo.tools.bench.config import (
    DISTS,
    PROTOCOLS,
    WORKLOADS,
    BenchConfig,
    BenchConfigError,
    Target,
    default_procs,
    parse_urls,
)
from dynamo.tools.bench.coordinator import BenchError
from dynamo.tools.bench.report import BenchResult, format_text
from dynamo.tools.bench.runner import run_bench
from dynamo.tools.bench.worker import new_event_loop

DESCRIPTION = """\
Load generator for the Riak-style object API, over HTTP or Riak PB (--protocol). Worker
processes (--procs) each run their share of --connections keep-alive connections on their
own event loop (uvloop when installed), one request in flight per connection; the
coordinator merges their latency histograms and prints progress on stderr each second.
Figures exclude --warmup. Exit status 1 when more than 1% of requests failed (non-2xx
other than 300 siblings, timeouts, connection errors).

  dynamo bench --nodes 3 --workload mixed --duration 30
  dynamo bench --url http://127.0.0.1:8098,http://127.0.0.1:8198 --workload rmw --r 2 --w 2
  dynamo bench --nodes 3 --workload counter --protocol pb   (counter increments)
  dynamo bench --nodes 3 --workload put --indexes 2   (PUTs with two 2i entries each)
  dynamo bench --nodes 3 --workload index-eq --indexes 1 --keys 100000   (2i queries)
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="load a cluster over HTTP and report throughput and latency",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = p.add_argument_group("target (one of)")
    where.add_argument(
        "--url",
        action="append",
        default=[],
        help="a running node, repeatable or comma-separated; connections go round-robin",
    )
    where.add_argument(
        "--nodes", type=int, help="start a local cluster of N nodes in a temp dir for the run"
    )
    where.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a node setting for --nodes (dynamo start --set)",
    )
    d = BenchConfig()
    w = p.add_argument_group("workload")
    w.add_argument(
        "--workload",
        choices=WORKLOADS,
        default=d.workload,
        help="index-eq, index-range: 2i queries of age_int (HTTP; preload with --indexes)",
    )
    w.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=d.protocol,
        help="http, or pb (Riak Protocol Buffers, at the port each node advertises)",
    )
    w.add_argument("--read-ratio", type=float, default=d.read_ratio, help="GET share of mixed")
    w.add_argument("--keys", type=int, default=d.keys, help=f"key space, default {d.keys}")
    w.add_argument("--dist", choices=DISTS, default=d.dist, help="key popularity")
    w.add_argument("--zipf-s", type=float, default=d.zipf_s, help="zipfian exponent")
    w.add_argument("--value-bytes", type=int, default=d.value_bytes)
    w.add_argument(
        "--indexes",
        type=int,
        default=d.indexes,
        help="HTTP: index headers on each PUT of k{i} (preload too), 0..2: age_int i mod 1000,"
        " then email_bin user{i}@example.com; index-eq and index-range query age_int",
    )
    w.add_argument("--bucket", default=d.bucket)
    w.add_argument(
        "--bucket-type",
        default=d.bucket_type,
        help="counter: the counter bucket type (made and activated if missing)",
    )
    w.add_argument("--r", help="?r= on GETs (integer, one, quorum, all)")
    w.add_argument("--w", help="?w= on PUTs")
    w.add_argument("--n", type=int, help="set the bucket's n_val before the run")
    w.add_argument(
        "--preload",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write every key once first (default: on for get, mixed, rmw)",
    )
    r = p.add_argument_group("run")
    r.add_argument("--duration", type=float, default=d.duration_s, help="measured seconds")
    r.add_argument("--warmup", type=float, default=d.warmup_s, help="seconds not measured")
    r.add_argument("--connections", type=int, default=d.connections, help="in all")
    r.add_argument(
        "--procs", type=int, default=default_procs(), help="worker processes (default 2, 1 core: 1)"
    )
    r.add_argument("--timeout", type=float, default=d.timeout_s, help="per request, seconds")
    r.add_argument("--seed", type=int, default=d.seed)
    r.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    r.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=cmd_bench)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    preload = args.preload
    if preload is None:
        preload = args.workload not in ("put", "counter")
    return BenchConfig(
        workload=args.workload,
        protocol=args.protocol,
        read_ratio=args.read_ratio,
        keys=args.keys,
        dist=args.dist,
        zipf_s=args.zipf_s,
        value_bytes=args.value_bytes,
        indexes=args.indexes,
        duration_s=args.duration,
        warmup_s=args.warmup,
        connections=args.connections,
        procs=args.procs,
        r=args.r,
        w=args.w,
        n_val=args.n,
        bucket=args.bucket,
        bucket_type=args.bucket_type,
        preload=preload,
        timeout_s=args.timeout,
        seed=args.seed,
    )


def _run(cfg: BenchConfig, targets: list[Target], quiet: bool) -> BenchResult:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(run_bench(cfg, targets, None if quiet else sys.stderr))


def _with_cluster(cfg: BenchConfig, args: argparse.Namespace) -> BenchResult:
    from dynamo.tools.localcluster import LocalCluster

    with tempfile.TemporaryDirectory(prefix="dynamo-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), args.nodes, settings=["log_level=WARNING", *args.set])
        try:
            cluster.start()
            cluster.wait_converged(timeout_s=60)
            targets = [Target("127.0.0.1", n.http_port, n.pb_port) for n in cluster.nodes]
            return _run(cfg, targets, args.quiet)
        finally:
            cluster.stop()


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        targets = parse_urls(args.url)
        if bool(targets) == (args.nodes is not None):
            raise BenchConfigError("give either --url or --nodes")
        if args.nodes is not None and args.nodes < 1:
            raise BenchConfigError(f"--nodes {args.nodes}: need at least 1")
    except BenchConfigError as e:
        print(f"dynamo bench: {e}", file=sys.stderr)
        return 2
    try:
        result = _with_cluster(cfg, args) if args.nodes else _run(cfg, targets, args.quiet)
    except BenchError as e:
        print(f"dynamo bench: {e}", file=sys.stderr)
        return 1
    print(format_text(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return 1 if result.failed else 0
