"""Cost as the work grows: throughput, p99 and RSS per node at 10k, 100k and 1M keys;
and throughput of 1, 3 and 5 nodes.

    python benchmarks/scale.py --keys 10000 100000 1000000 --nodes-sweep 1 3 5

Each point starts a fresh cluster through the CLI, preloads the keys (1 KiB values,
``dynamo bench --preload``), runs a GET and a PUT load with ``dynamo bench`` and reads
each node's RSS from /proc. Buckets use allow_mult=false (blind PUTs replace).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dynamo.tools.localcluster import LocalCluster

DYNAMO = [sys.executable, "-m", "dynamo.tools.cli"]


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def allow_mult_off(url: str) -> None:
    host, port = url.split("//")[1].split(":")
    c = HTTPConnection(host, int(port), timeout=10)
    c.request(
        "PUT",
        "/buckets/bench/props",
        b'{"props": {"allow_mult": false}}',
        {"Content-Type": "application/json"},
    )
    assert c.getresponse().status == 204
    c.close()


def bench(
    urls: list[str], workload: str, keys: int, duration: float, preload: bool
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [
            *DYNAMO,
            "bench",
            "--url",
            ",".join(urls),
            "--workload",
            workload,
            "--keys",
            str(keys),
            "--value-bytes",
            "1024",
            "--duration",
            str(duration),
            "--warmup",
            "2",
            "--connections",
            "8",
            "--json",
            out.name,
            "--quiet",
            "--preload" if preload else "--no-preload",
        ]
        subprocess.run(cmd, check=False, timeout=duration + keys / 500 + 300)
        data: dict[str, Any] = json.loads(Path(out.name).read_text() or "{}")
        return data


def point(nodes: int, keys: int, duration: float, root: Path) -> dict[str, Any]:
    cluster = LocalCluster(root / f"n{nodes}-k{keys}", nodes, settings=["log_level=WARNING"])
    try:
        cluster.start()
        cluster.wait_converged(timeout_s=60)
        urls = [n.url for n in cluster.nodes]
        allow_mult_off(urls[0])
        t0 = time.monotonic()
        get = bench(urls, "get", keys, duration, preload=True)
        load_s = time.monotonic() - t0 - duration - 2
        rss_after_get = [rss_mb(n.pid) for n in cluster.nodes]
        put = bench(urls, "put", keys, duration, preload=False)
        rss = [rss_mb(n.pid) for n in cluster.nodes]
        disk = [
            round(sum(f.stat().st_size for f in n.data_dir.rglob("*") if f.is_file()) / 2**20)
            for n in cluster.nodes
        ]
        return {
            "nodes": nodes,
            "keys": keys,
            "preload_s": round(load_s, 1),
            "get": summary(get),
            "put": summary(put),
            "rss_mb_after_get": rss_after_get,
            "rss_mb": rss,
            "disk_mb": disk,
        }
    finally:
        cluster.stop()


def summary(r: dict[str, Any]) -> dict[str, Any]:
    lat = r.get("latency_ms", {})
    return {
        "req_s": round(r.get("requests_per_s", 0.0), 1),
        "p50_ms": lat.get("p50"),
        "p99_ms": lat.get("p99"),
        "errors": r.get("error_count", 0),
        "preload_s": r.get("preload", {}).get("seconds"),
    }


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--keys", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--nodes", type=int, default=3, help="cluster size for the key sweep")
    p.add_argument("--nodes-sweep", type=int, nargs="*", default=[1, 3, 5])
    p.add_argument("--sweep-keys", type=int, default=10_000)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--json", help="write every point here")
    args = p.parse_args()
    print(
        f"machine: {os.cpu_count()} cores; 1 KiB values, 8 connections, {args.duration:.0f}s runs",
        flush=True,
    )
    points = []
    with tempfile.TemporaryDirectory(prefix="dynamo-scale-") as tmp:
        for keys in args.keys:
            pt = point(args.nodes, keys, args.duration, Path(tmp))
            points.append(pt)
            print(json.dumps(pt), flush=True)
        for nodes in args.nodes_sweep:
            pt = point(nodes, args.sweep_keys, args.duration, Path(tmp))
            points.append(pt)
            print(json.dumps(pt), flush=True)
    print()
    print(
        f"{'nodes':>5}{'keys':>10}{'GET/s':>9}{'GET p99':>9}{'PUT/s':>9}{'PUT p99':>9}"
        f"  RSS MB per node"
    )
    for pt in points:
        g, w = pt["get"], pt["put"]
        print(
            f"{pt['nodes']:>5}{pt['keys']:>10}{g['req_s']:>9.0f}{g['p99_ms'] or 0:>9.2f}"
            f"{w['req_s']:>9.0f}{w['p99_ms'] or 0:>9.2f}  {pt['rss_mb']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(points, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
