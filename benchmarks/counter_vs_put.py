"""Counter increments against plain PUTs of the same keys count, over HTTP and PB, on one
3-node cluster, interleaved so both run in the same sitting: throughput, p99 and the
nodes' CPU microseconds per request.

    python benchmarks/counter_vs_put.py --rounds 3 --duration 15

Each round runs ``dynamo bench`` (``pb_vs_http.bench``: the same load generator) with
``--workload put`` (blind PUTs, ``allow_mult`` false, Riak's reference write, of values as
large as a counter's stored state once three nodes have incremented it) and
``--workload counter`` (``{"increment": 1}`` to a counter of a ``counter`` bucket type:
the coordinator reads its state, applies the increment, and replicates the new state),
alternating which goes first.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys

from pb_vs_http import Row, bench_cluster, measured, medians  # puts the repository on sys.path

from dynamo.tools.bench.config import Target
from dynamo.tools.bench.runner import counter_type
from dynamo.tools.localcluster import http


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=15)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument(
        "--value-bytes", type=int, default=0, help="PUT value size (default: a counter's state)"
    )
    p.add_argument("--connections", type=int, default=8)
    args = p.parse_args()
    rows: dict[tuple[str, str], list[Row]] = {}
    with bench_cluster("counter-vs-put-") as (cluster, urls):
        if not args.value_bytes:
            args.value_bytes = counter_state_bytes(urls.split(","))
        print(f"PUT values of {args.value_bytes} bytes", flush=True)
        pids = [n.pid for n in cluster.nodes if n.pid]
        for r in range(args.rounds):
            order = ("put", "counter") if r % 2 == 0 else ("counter", "put")
            for protocol in ("http", "pb"):
                for workload in order:
                    row = measured(urls, protocol, workload, args, pids)
                    rows.setdefault((workload, protocol), []).append(row)
                    print(f"round {r + 1} {protocol:<4} {workload:<7} {row}", flush=True)
    print("\nmedians (3-node, same sitting):")
    for protocol in ("http", "pb"):
        put, inc = medians(rows[("put", protocol)]), medians(rows[("counter", protocol)])
        print(
            f"  {protocol.upper()}: PUT {put[0]:,.0f} req/s (p99 {put[1]:.1f} ms, {put[2]:.0f} us"
            f" CPU/req), increment {inc[0]:,.0f} req/s (p99 {inc[1]:.1f} ms, {inc[2]:.0f} us"
            f" CPU/req): increment/PUT throughput {inc[0] / put[0]:.2f}x, CPU"
            f" {inc[2] / put[2]:.2f}x"
        )
    return 0


def counter_state_bytes(urls: list[str]) -> int:
    """The stored size of a counter's state after one increment through each node (each
    coordinator adds its actor), as one replica holds it."""
    bucket_type = "counters"
    host, _, port = urls[0].removeprefix("http://").rpartition(":")
    counter_type(Target(host, int(port)), bucket_type)
    json_type = {"Content-Type": "application/json"}
    for url in urls:
        path = f"{url}/types/{bucket_type}/buckets/probe/datatypes/k"
        status, _, text = http("POST", path, b'{"increment": 1}', json_type)
        assert status in (200, 204), (status, text)
    status, _, text = http("GET", f"{urls[0]}/admin/local/probe/k?type={bucket_type}")
    assert status == 200, (status, text)
    siblings = json.loads(text)["siblings"]
    return sum(len(base64.b64decode(s["value_b64"])) for s in siblings)


if __name__ == "__main__":
    sys.exit(main())
