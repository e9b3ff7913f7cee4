"""The same workload through Riak PB and through HTTP against one 3-node cluster,
interleaved, so both sides run in the same sitting: throughput, p99, and the nodes' CPU
microseconds per request (the figure that survives a noisy machine).

    python benchmarks/pb_vs_http.py --rounds 3 --duration 15

Each round runs ``dynamo bench`` (the same load generator for both protocols: worker
processes, one request in flight per connection) for GET, then PUT, over HTTP and over
PB, alternating which protocol goes first. Keys are preloaded once; the bucket has
``allow_mult`` false, so blind PUTs replace the value (Riak's reference workload). The nodes' CPU is
read from /proc around each run (warmup included) and divided by every request the run
made.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dynamo.tools.localcluster import LocalCluster, http  # noqa: E402


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench(urls: str, protocol: str, workload: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [
            sys.executable, "-m", "dynamo.tools.cli", "bench", "--url", urls,
            "--protocol", protocol, "--workload", workload, "--keys", str(args.keys),
            "--value-bytes", str(args.value_bytes), "--duration", str(args.duration),
            "--warmup", "2", "--connections", str(args.connections), "--no-preload",
            "--quiet", "--json", out.name,
        ]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True, timeout=args.duration * 4 + 120)
        data: dict[str, Any] = json.loads(Path(out.name).read_text())
        return data


class Row(NamedTuple):
    """One run: throughput, p99 and the nodes' CPU per request (warm-up included)."""

    req_s: float
    p99_ms: float
    cpu_us: float
    errors: int

    def __str__(self) -> str:
        return (
            f"{self.req_s:>8,.0f} req/s  p99 {self.p99_ms:.2f} ms  node CPU"
            f" {self.cpu_us:.0f} us/req  errors {self.errors}"
        )


def measured(
    urls: str, protocol: str, workload: str, args: argparse.Namespace, pids: list[int]
) -> Row:
    """One ``bench`` run with the nodes' (``pids``) CPU time around it."""
    c0 = sum(cpu_s(pid) for pid in pids)
    res = bench(urls, protocol, workload, args)
    used = sum(cpu_s(pid) for pid in pids) - c0
    total = res["requests"] + res["warmup"].get("requests", 0)
    return Row(
        float(res["requests_per_s"]),
        float(res["latency_ms"]["p99"]),
        used / max(1, total) * 1e6,
        int(res["error_count"]),
    )


def medians(rows: list[Row]) -> list[float]:
    return [statistics.median(x) for x in list(zip(*rows, strict=True))[:3]]


@contextmanager
def bench_cluster(prefix: str) -> Iterator[tuple[LocalCluster, str]]:
    """A 3-node cluster in a temporary directory and its comma-separated URLs, with
    bucket ``bench`` set to blind PUTs that replace (``allow_mult`` false), as in Riak's
    reference workload: with siblings each run's PUTs would meet a larger object."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        cluster = LocalCluster(Path(tmp), 3, settings=["log_level=WARNING"])
        try:
            cluster.start()
            cluster.wait_converged(timeout_s=60)
            urls = ",".join(n.url for n in cluster.nodes)
            props = json.dumps({"props": {"allow_mult": False}}).encode()
            status, _, _ = http(
                "PUT", urls.split(",")[0] + "/buckets/bench/props", props,
                {"Content-Type": "application/json"},
            )  # fmt: skip
            assert status == 204, status
            yield cluster, urls
        finally:
            cluster.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=15)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--value-bytes", type=int, default=1024)
    p.add_argument("--connections", type=int, default=8)
    args = p.parse_args()
    rows: dict[tuple[str, str], list[Row]] = {}
    with bench_cluster("pb-vs-http-") as (cluster, urls):
        preload = [
            sys.executable, "-m", "dynamo.tools.cli", "bench", "--url", urls, "--preload",
            "--workload", "get", "--keys", str(args.keys), "--duration", "1",
            "--warmup", "0", "--value-bytes", str(args.value_bytes), "--quiet",
        ]  # fmt: skip
        subprocess.run(preload, check=True, capture_output=True, timeout=300)
        pids = [n.pid for n in cluster.nodes if n.pid]
        for r in range(args.rounds):
            order = ("http", "pb") if r % 2 == 0 else ("pb", "http")
            for workload in ("get", "put"):
                for protocol in order:
                    row = measured(urls, protocol, workload, args, pids)
                    rows.setdefault((workload, protocol), []).append(row)
                    print(f"round {r + 1} {workload:<3} {protocol:<4} {row}", flush=True)
    print("\nmedians (3-node, same sitting):")
    for workload in ("get", "put"):
        http_rows, pb_rows = rows[(workload, "http")], rows[(workload, "pb")]
        h, b = medians(http_rows), medians(pb_rows)
        print(
            f"  {workload.upper()}: HTTP {h[0]:,.0f} req/s ({h[2]:.0f} us CPU/req), PB"
            f" {b[0]:,.0f} req/s ({b[2]:.0f} us CPU/req): PB/HTTP throughput {b[0] / h[0]:.2f}x,"
            f" CPU {b[2] / h[2]:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
