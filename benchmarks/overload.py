"""Load above the concurrency limit: the node answers 503 quickly and its memory stays
bounded.

    python benchmarks/overload.py [--limit 64] [--clients 1000] [--duration 20]

Starts 3 nodes with ``max_concurrent_requests=--limit``, stops two of them with
SIGSTOP so that reads with ``r=all`` on the first node wait for their timeout (3 s),
then keeps ``--clients`` requests in flight against the first node for ``--duration``
seconds. Prints the node's RSS before and after, how many requests were refused
(503 with Retry-After) and how fast, and how many were served.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dynamo.tools.localcluster import LocalCluster, NodeProcess


def rss_mb(n: NodeProcess) -> float:
    for line in Path(f"/proc/{n.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def blast(url: str, clients: int, duration: float) -> tuple[list[float], list[float], int]:
    refused: list[float] = []
    served: list[float] = []
    errors = 0
    end = time.monotonic() + duration
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as s:

        async def client(i: int) -> None:
            nonlocal errors
            while time.monotonic() < end:
                t0 = time.monotonic()
                try:
                    async with s.get(f"{url}/buckets/o/keys/k{i % 100}?r=all") as r:
                        await r.read()
                        dt = time.monotonic() - t0
                        if r.status == 503 and r.headers.get("Retry-After"):
                            refused.append(dt)
                        else:
                            served.append(dt)
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1

        await asyncio.gather(*(client(i) for i in range(clients)))
    return refused, served, errors


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] * 1000


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--limit", type=int, default=64)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--duration", type=float, default=20.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="dynamo-overload-") as tmp:
        c = LocalCluster(
            Path(tmp),
            3,
            settings=[
                f"max_concurrent_requests={args.limit}",
                "request_timeout_ms=3000",
                "phi_threshold=1000000",  # the stopped replicas never look down: reads wait
                "log_level=WARNING",
            ],
        )
        try:
            c.start()
            c.wait_converged()
            before = rss_mb(c[0])
            for n in c.nodes[1:]:
                n.pause()
            refused, served, errors = asyncio.run(blast(c[0].url, args.clients, args.duration))
            after = rss_mb(c[0])
            for n in c.nodes[1:]:
                n.resume()
            peak = before
            for line in Path(f"/proc/{c[0].pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = round(int(line.split()[1]) / 1024, 1)
        finally:
            c.stop()
    print(
        f"limit {args.limit} in flight, {args.clients} clients for {args.duration:.0f}s "
        "against one node whose reads wait 3 s for two stopped replicas"
    )
    print(
        f"refused with 503 + Retry-After: {len(refused)} (p50 {pct(refused, 0.5):.2f} ms,"
        f" p99 {pct(refused, 0.99):.2f} ms, max {pct(refused, 1.0):.2f} ms)"
    )
    print(
        f"answered after waiting for the stopped replicas: {len(served)}"
        f" (p50 {pct(served, 0.5):.0f} ms); client errors: {errors}"
    )
    print(f"node RSS: before {before} MB, after {after} MB, peak {peak} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
