"""GET and PUT throughput and latency of real clusters, measured with wrk, next to the
aiohttp constant-handler ceiling measured in the same run.

    python benchmarks/http_bench.py --nodes 1 3 --keys 10000 --duration 15

Each cluster is started through the CLI in a temporary directory and preloaded with
``--keys`` values of ``--value-bytes``; then wrk runs the GET and the (blind) PUT
workload of ``benchmarks/wrk/*.lua``, its connections spread over the nodes (one wrk
per node), r/w = quorum unless ``--query`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from http.client import HTTPConnection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dynamo.tools.localcluster import LocalCluster, free_ports, wait_for

HERE = Path(__file__).resolve().parent


@dataclass
class WrkResult:
    label: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk",
            shell=True,
            check=False,
            capture_output=True,
        )
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk is missing: apt-get install wrk")
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> tuple[float, float, float, int, int]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return rps, p50, p99, errors, total


def run_wrk(
    label: str,
    urls: list[str],
    script: str,
    connections: int,
    threads: int,
    duration: int,
    env: dict[str, str],
) -> WrkResult:
    """One wrk per URL, connections split between them, run at the same time."""
    procs = []
    share = [
        connections // len(urls) + (1 if i < connections % len(urls) else 0)
        for i in range(len(urls))
    ]
    for url, conns in zip(urls, share, strict=True):
        t = max(1, min(threads, conns) if len(urls) == 1 else 1)
        cmd = ["wrk", f"-t{t}", f"-c{conns}", f"-d{duration}s", "--latency", "-s", script, url]
        procs.append(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, **env})
        )
    rps = errors = total = 0.0
    p50s, p99s = [], []
    for p in procs:
        out, _ = p.communicate(timeout=duration + 60)
        r, p50, p99, e, n = parse_wrk(out)
        rps += r
        errors += e
        total += n
        p50s.append(p50)
        p99s.append(p99)
    return WrkResult(
        label, round(rps, 1), round(max(p50s), 2), round(max(p99s), 2), int(errors), int(total)
    )


def ceiling(connections: int, threads: int, duration: int, use_uvloop: bool) -> WrkResult:
    port = free_ports(1)[0]
    cmd = [sys.executable, str(HERE / "ceiling_server.py"), str(port)]
    if use_uvloop:
        cmd.append("--uvloop")
    proc = subprocess.Popen(cmd)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ok(url + "/const"), 15, "the ceiling server")
        label = "aiohttp constant" + (" (uvloop)" if use_uvloop else "")
        return run_wrk(
            label, [url], str(HERE / "wrk/const.lua"), connections, threads, duration, {}
        )
    finally:
        proc.terminate()
        proc.wait()


def _ok(url: str) -> bool:
    host, port = url.split("//")[1].split("/")[0].split(":")
    c = HTTPConnection(host, int(port), timeout=2)
    try:
        c.request("GET", "/" + url.split("/", 3)[3])
        return c.getresponse().status == 200
    finally:
        c.close()


def set_props(url: str, bucket: str, props: dict[str, object]) -> None:
    host, port = url.split("//")[1].split(":")
    c = HTTPConnection(host, int(port), timeout=10)
    body = json.dumps({"props": props}).encode()
    c.request("PUT", f"/buckets/{bucket}/props", body, {"Content-Type": "application/json"})
    status = c.getresponse().status
    c.close()
    if status != 204:
        raise SystemExit(f"setting props on {url}: {status}")


def preload(urls: list[str], keys: int, value_bytes: int, bucket: str) -> None:
    value = b"x" * value_bytes

    def worker(start: int) -> int:
        url = urls[start % len(urls)]
        host, port = url.split("//")[1].split(":")
        c = HTTPConnection(host, int(port), timeout=30)
        bad = 0
        for i in range(start, keys, 8):
            c.request(
                "PUT",
                f"/buckets/{bucket}/keys/k{i}",
                value,
                {"Content-Type": "application/octet-stream"},
            )
            r = c.getresponse()
            r.read()
            bad += r.status != 204
        c.close()
        return bad

    with ThreadPoolExecutor(8) as pool:
        bad = sum(pool.map(worker, range(8)))
    if bad:
        raise SystemExit(f"preload: {bad} writes failed")


def bench_cluster(nodes: int, args: argparse.Namespace, root: Path) -> list[WrkResult]:
    cluster = LocalCluster(root / f"c{nodes}", nodes, settings=["log_level=WARNING", *args.set])
    try:
        cluster.start()
        cluster.wait_converged(timeout_s=30)
        urls = [n.url for n in cluster.nodes]
        t0 = time.monotonic()
        if not args.allow_mult:
            set_props(urls[0], "bench", {"allow_mult": False})
        preload(urls, args.keys, args.value_bytes, "bench")
        print(
            f"  {nodes} node(s): preloaded {args.keys} keys in {time.monotonic() - t0:.1f}s",
            flush=True,
        )
        env = {
            "KEYS": str(args.keys),
            "VALUE_BYTES": str(args.value_bytes),
            "BUCKET": "bench",
            "QUERY": args.query,
        }
        out = []
        pids = [n.pid for n in cluster.nodes if n.pid]
        for kind in ("get", "put"):
            cpu0 = sum(_cpu_s(p) for p in pids)
            r = run_wrk(
                f"{nodes}-node {kind.upper()}",
                urls,
                str(HERE / f"wrk/{kind}.lua"),
                args.connections,
                args.threads,
                args.duration,
                env,
            )
            # CPU per request across the nodes: the figure that survives a noisy machine.
            cpu_us = (sum(_cpu_s(p) for p in pids) - cpu0) / max(1, r.requests) * 1e6
            print(
                f"  {r.label}: {r.requests_per_s:.0f} req/s, p50 {r.p50_ms} ms,"
                f" p99 {r.p99_ms} ms, errors {r.errors}, node CPU {cpu_us:.0f} us/req",
                flush=True,
            )
            out.append(r)
        rss = [_rss_mb(n.pid) for n in cluster.nodes if n.pid]
        print(f"  RSS per node (MB): {rss}", flush=True)
        return out
    finally:
        cluster.stop()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 3])
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--value-bytes", type=int, default=1024)
    p.add_argument("--duration", type=int, default=15)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--query", default="", help="e.g. ?r=quorum or ?w=all (appended to each request)"
    )
    p.add_argument("--set", action="append", default=[], help="node setting NAME=VALUE")
    p.add_argument("--no-ceiling", action="store_true")
    p.add_argument(
        "--allow-mult",
        action="store_true",
        help="keep siblings of blind PUTs (default: allow_mult=false, as the Riak reference)",
    )
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args()
    ensure_wrk()
    results: list[WrkResult] = []
    print(
        f"machine: {os.cpu_count()} cores; {args.connections} connections, {args.duration}s runs",
        flush=True,
    )
    if not args.no_ceiling:
        for uv in (False, True):
            r = ceiling(args.connections, args.threads, args.duration, uv)
            print(f"  {r.label}: {r.requests_per_s:.0f} req/s, p99 {r.p99_ms} ms", flush=True)
            results.append(r)
    with tempfile.TemporaryDirectory(prefix="dynamo-bench-") as tmp:
        for n in args.nodes:
            results.extend(bench_cluster(n, args, Path(tmp)))
    print()
    print(f"{'workload':<28}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for r in results:
        print(
            f"{r.label:<28}{r.requests_per_s:>10.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.errors:>8}"
        )
    ceil = next((r for r in results if r.label.startswith("aiohttp constant (uvloop)")), None)
    ceil = ceil or next((r for r in results if r.label.startswith("aiohttp")), None)
    if ceil:
        for r in results:
            if "GET" in r.label or "PUT" in r.label:
                print(f"{r.label} / {ceil.label}: {r.requests_per_s / ceil.requests_per_s:.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
