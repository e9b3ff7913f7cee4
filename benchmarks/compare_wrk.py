"""wrk and ``dynamo bench`` side by side: the same GET and PUT workloads, connections and
duration, one tool after the other, against the same target.

    python benchmarks/compare_wrk.py --nodes 1 --duration 10 --connections 8
    python benchmarks/compare_wrk.py --nodes 3
    python benchmarks/compare_wrk.py --constant     # a trivial server: the clients' ceiling

The cluster is started through the CLI in a temporary directory and preloaded with
``--keys`` values (``http_bench.preload``); wrk runs ``benchmarks/wrk/{get,put}.lua``, one
wrk per node with the connections split (``http_bench.run_wrk``), and ``dynamo bench``
spreads the same connections over the same nodes round-robin, without warmup, as wrk.
Blind PUTs pile up siblings (``allow_mult``) and slow every later PUT run, so each PUT run
writes a fresh bucket of its own; ``--rounds 2`` swaps which tool goes first. Each tool's
CPU per request is shown too: wrk's from its rusage, dynamo bench's as its workers
measure it over the measured window.
``--constant`` targets ``dynamo.tools.bench.testing`` instead, a raw asyncio server whose
per-request cost is a few microseconds, to show which client saturates first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_bench import ensure_wrk, preload, run_wrk

from dynamo.tools.localcluster import LocalCluster, free_ports, wait_for

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class Figures:
    tool: str
    workload: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    client_cpu_us_per_request: float | None = None


def bench_command(
    args: argparse.Namespace, urls: list[str], kind: str, bucket: str, out: Path
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "dynamo.tools.cli",
        "bench",
        "--url",
        ",".join(urls),
        "--workload",
        kind,
        "--connections",
        str(args.connections),
        "--procs",
        str(args.procs),
        "--duration",
        str(args.duration),
        "--warmup",
        "0",
        "--keys",
        str(args.keys),
        "--value-bytes",
        str(args.value_bytes),
        "--bucket",
        bucket,
        "--no-preload",
        "--quiet",
        "--json",
        str(out),
    ]
    if kind == "get" and args.r:
        cmd += ["--r", args.r]
    if kind == "put" and args.w:
        cmd += ["--w", args.w]
    return cmd


def run_dynamo_bench(args: argparse.Namespace, urls: list[str], kind: str, bucket: str) -> Figures:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        cmd = bench_command(args, urls, kind, bucket, out)
        print("  $ " + " ".join(cmd[1:]), flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if not out.exists():
            raise SystemExit(f"dynamo bench failed ({proc.returncode}):\n{proc.stderr}")
        r = json.loads(out.read_text())
    return Figures(
        "dynamo bench",
        kind.upper(),
        r["requests_per_s"],
        r["latency_ms"]["p50"],
        r["latency_ms"]["p99"],
        r["error_count"],
        r["requests"],
        r["client_cpu_us_per_request"],
    )


def run_wrk_once(args: argparse.Namespace, urls: list[str], kind: str, bucket: str) -> Figures:
    query = f"?r={args.r}" if kind == "get" and args.r else ""
    query = f"?w={args.w}" if kind == "put" and args.w else query
    env = {
        "KEYS": str(args.keys),
        "VALUE_BYTES": str(args.value_bytes),
        "BUCKET": bucket,
        "QUERY": query,
    }
    script = str(HERE / f"wrk/{kind}.lua")
    share = ", ".join(urls)
    print(
        f"  $ wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency"
        f" -s {script} {share}  (one wrk per node, connections split)",
        flush=True,
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    w = run_wrk(kind.upper(), urls, script, args.connections, args.threads, args.duration, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk was waited for: its CPU
    cpu_s = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    per_request = round(cpu_s * 1e6 / w.requests, 2) if w.requests else 0.0
    return Figures(
        "wrk", kind.upper(), w.requests_per_s, w.p50_ms, w.p99_ms, w.errors, w.requests, per_request
    )


@contextmanager
def target(args: argparse.Namespace, root: Path) -> Iterator[list[str]]:
    """The URLs of the node(s) under test, preloaded, for the duration of the block."""
    if args.constant:
        port = free_ports(1)[0]
        cmd = [sys.executable, "-m", "dynamo.tools.bench.testing", str(port)]
        cmd += ["--body-bytes", str(args.value_bytes)]
        proc = subprocess.Popen(cmd, cwd=ROOT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: _listening(port), 15, "the constant server")
            yield [url]
        finally:
            proc.terminate()
            proc.wait()
        return
    cluster = LocalCluster(root, args.nodes, settings=["log_level=WARNING", *args.set])
    try:
        cluster.start()
        cluster.wait_converged(timeout_s=60)
        urls = [n.url for n in cluster.nodes]
        t0 = time.monotonic()
        preload(urls, args.keys, args.value_bytes, "bench")
        print(f"preloaded {args.keys} keys in {time.monotonic() - t0:.1f}s", flush=True)
        yield urls
    finally:
        cluster.stop()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--constant", action="store_true", help="target a trivial server instead")
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--value-bytes", type=int, default=1024)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--procs", type=int, default=2, help="dynamo bench processes")
    p.add_argument("--r", help="?r= on GETs")
    p.add_argument("--w", help="?w= on PUTs")
    p.add_argument("--workloads", default="get,put")
    p.add_argument("--rounds", type=int, default=1, help="repeat, swapping which tool goes first")
    p.add_argument("--set", action="append", default=[], help="node setting NAME=VALUE")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args()
    ensure_wrk()
    what = "a constant server" if args.constant else f"{args.nodes} node(s)"
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; {what};"
        f" {args.connections} connections, {args.duration}s per run",
        flush=True,
    )
    results: list[Figures] = []
    kinds = args.workloads.split(",")
    with (
        tempfile.TemporaryDirectory(prefix="dynamo-compare-") as tmp,
        target(args, Path(tmp)) as urls,
    ):
        for round_no in range(args.rounds):
            tools = (run_wrk_once, run_dynamo_bench)
            for kind in kinds:
                for run in tools if round_no % 2 == 0 else tools[::-1]:
                    # Blind PUTs pile up siblings (allow_mult), which slows later PUT runs:
                    # each PUT run starts on a fresh bucket of its own.
                    bucket = "bench" if kind == "get" else f"put{round_no}_{run.__name__}"
                    f = run(args, urls, kind, bucket)
                    print(
                        f"  {f.tool} {f.workload}: {f.requests_per_s:,.0f} req/s,"
                        f" p50 {f.p50_ms:.2f} ms, p99 {f.p99_ms:.2f} ms, errors {f.errors}",
                        flush=True,
                    )
                    results.append(f)
    print()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(
        f"{'workload':<9}{'tool':<14}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'CPU us/req':>12}"
    )
    for f in results:
        print(
            f"{f.workload:<9}{f.tool:<14}{f.requests_per_s:>10,.0f}{f.p50_ms:>9.2f}"
            f"{f.p99_ms:>9.2f}{f.errors:>8}{f.client_cpu_us_per_request or 0.0:>12.1f}"
        )
    for kind in kinds:
        w = [f for f in results if f.tool == "wrk" and f.workload == kind.upper()]
        b = [f for f in results if f.tool == "dynamo bench" and f.workload == kind.upper()]
        w_rps, b_rps = _mean([f.requests_per_s for f in w]), _mean([f.requests_per_s for f in b])
        w_p99, b_p99 = _mean([f.p99_ms for f in w]), _mean([f.p99_ms for f in b])
        b_cpu = _mean([f.client_cpu_us_per_request or 0.0 for f in b])
        w_cpu = _mean([f.client_cpu_us_per_request or 0.0 for f in w])
        print(
            f"{kind.upper()}: wrk {w_rps:,.0f} req/s p99 {w_p99:.2f} ms;"
            f" dynamo bench {b_rps:,.0f} req/s p99 {b_p99:.2f} ms;"
            f" ratio (bench / wrk) {b_rps / w_rps:.2f}x throughput,"
            f" {b_p99 / w_p99 if w_p99 else float('nan'):.2f}x p99;"
            f" client CPU per request: wrk {w_cpu:.1f} us, bench {b_cpu:.1f} us"
        )
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(f) for f in results], indent=2) + "\n")
    return 0


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


if __name__ == "__main__":
    sys.exit(main())
