"""One host, one node process against ``dynamo start --processes 2``: throughput and the
CPU microseconds per request summed over every process of the host (the figure that
does not depend on how fast the machine is today).

    python benchmarks/processes.py --duration 15 --rounds 2

The host runs ``dynamo start --processes K`` (K = 1, then 2, alternating per round);
``dynamo bench`` loads the host's one client address (shared by its processes with
SO_REUSEPORT, so the kernel spreads the connections). The bucket has ``n_val`` 1, so
each request is served by one replica in both layouts: with two processes, a request
reaching the process that does not own its key costs a node-to-node hop, which is the
price of using the second core.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dynamo.tools.hosts import (  # noqa: E402
    HostCluster,
    LocalSpawner,
    free_local_base,
    local_addrs,
    put_props,
)
from dynamo.tools.localcluster import wait_for  # noqa: E402
from http_api.admin import get_json  # noqa: E402


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and every live descendant."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo += [int(c) for c in children]
    return total


def run_one(processes: int, workload: str, args: argparse.Namespace) -> dict[str, Any]:
    base = free_local_base(1, processes)
    with tempfile.TemporaryDirectory(prefix="procs-") as tmp:
        addrs = local_addrs(1, base)
        hosts = HostCluster(Path(tmp), addrs, processes, LocalSpawner(), ["log_level=WARNING"])
        url = hosts.client_url(0)
        try:
            hosts.start()
            hosts.wait_converged(60)
            put_props(url, "bench", {"n_val": 1, "allow_mult": False})
            wait_for(
                lambda: all(
                    get_json(f"{u}/buckets/bench/props")["props"]["n_val"] == 1
                    for u in hosts.node_urls(0)
                ),
                30,
                "n_val 1 everywhere",
            )
            pid = hosts.procs[0].pid
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                c0 = tree_cpu_s(pid)
                cmd = [
                    sys.executable, "-m", "dynamo.tools.cli", "bench", "--url", url,
                    "--workload", workload, "--keys", "10000", "--duration", str(args.duration),
                    "--warmup", "2", "--connections", str(args.connections), "--quiet",
                    "--json", out.name,
                ]  # fmt: skip
                subprocess.run(cmd, check=True, capture_output=True, timeout=600)
                used = tree_cpu_s(pid) - c0
                res: dict[str, Any] = json.loads(Path(out.name).read_text())
            total = res["requests"] + res["warmup"].get("requests", 0) + 10_000  # + preload
            res["host_cpu_us_per_request"] = used / total * 1e6
            return res
        finally:
            hosts.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--duration", type=float, default=15)
    p.add_argument("--connections", type=int, default=16)
    args = p.parse_args()
    rows: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        for workload in ("get", "put"):
            for k in (1, 2) if r % 2 == 0 else (2, 1):
                res = run_one(k, workload, args)
                row = (float(res["requests_per_s"]), float(res["host_cpu_us_per_request"]))
                rows.setdefault((workload, k), []).append(row)
                print(
                    f"round {r + 1} {workload} processes={k}: {row[0]:,.0f} req/s,"
                    f" p99 {res['latency_ms']['p99']} ms, host CPU {row[1]:.0f} us/req,"
                    f" errors {res['error_count']}",
                    flush=True,
                )
    print(f"\nmedians, one host, {os.cpu_count()} cores:")
    for workload in ("get", "put"):
        one = [statistics.median(x) for x in zip(*rows[(workload, 1)], strict=True)]
        two = [statistics.median(x) for x in zip(*rows[(workload, 2)], strict=True)]
        print(
            f"  {workload.upper()}: 1 process {one[0]:,.0f} req/s ({one[1]:.0f} us CPU/req),"
            f" 2 processes {two[0]:,.0f} req/s ({two[1]:.0f} us CPU/req):"
            f" {two[0] / one[0]:.2f}x throughput, {two[1] / one[1]:.2f}x CPU per request"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
