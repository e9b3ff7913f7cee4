"""Secondary indexes (Riak 2i) on one 3-node cluster: what a query costs, and what index
entries add to a write. Throughput, p99, and the nodes' CPU microseconds per request (the
figure that survives a noisy machine).

    python benchmarks/index_bench.py --objects 10000 --rounds 3 --duration 15
    python benchmarks/index_bench.py --objects 1000000 --rounds 1 --duration 20 --json 1m.json

1. Load: ``dynamo bench``'s own preload writes ``k0..k{N-1}`` (``--objects``) to bucket
   ``bench`` once each over ``--load-connections`` connections, every PUT with two index
   entries: ``age_int`` ``i mod 1000`` and ``email_bin`` ``user{i}@example.com``. The
   nodes' coordinated-PUT counters are polled for progress; a load that outlives
   ``--load-timeout`` is stopped and the run goes on with what was written (said so).
2. Result counts: a few queries answered once, with the number of keys each returned
   (an exact term is on about N/1000 objects; a range page holds 100).
3. Rounds (``--rounds``), each in the same sitting: ``index-eq`` (``GET
   /buckets/bench/index/age_int/{i mod 1000}``) and ``index-range`` (``.../{a}/999
   ?max_results=100``), then PUTs with two index entries against PUTs with none, on
   buckets ``put-2i`` and ``put-0i`` (each preloaded with ``--put-keys`` objects carrying
   as many entries, so every measured PUT replaces one), alternating which goes first.

All buckets have ``allow_mult`` false (blind PUTs replace, Riak's reference workload). The
nodes' CPU is read from /proc around each run (warmup included) and divided by every
request the run made. Every subprocess has a timeout; the cluster stops in any case.
``--json FILE`` saves every run's figures and the bench's own results.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pb_vs_http import Row, bench_cluster, cpu_s, medians  # puts the repository on sys.path

from dynamo.tools.localcluster import LocalCluster, http

BUCKET = "bench"  # the loaded objects, which the queries read
TERMS = 1000  # age_int is i mod TERMS
PAGE = 100  # max_results of an index-range query
PROGRESS_EVERY_S = 30.0
QUERIES = ("index-eq", "index-range")
PUTS = ("put 2i", "put 0i")


def now_text() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


def bench_cmd(urls: str, json_path: str, options: list[str]) -> list[str]:
    """``dynamo bench`` against ``urls``, writing its result to ``json_path``."""
    cli = [sys.executable, "-m", "dynamo.tools.cli", "bench", "--url", urls, "--quiet"]
    return [*cli, "--json", json_path, *options]


def dynamo_bench(urls: str, options: list[str], timeout_s: float) -> dict[str, Any]:
    """One ``dynamo bench`` run: its JSON result (also when over 1% of its requests
    failed, which the figures show)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = bench_cmd(urls, out.name, options)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        text = Path(out.name).read_text()
    if not text:
        raise RuntimeError(f"dynamo bench {' '.join(options)} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(text)
    return result


def run_options(args: argparse.Namespace, workload: str, bucket: str, keys: int) -> list[str]:
    return [
        "--workload", workload, "--bucket", bucket, "--keys", str(keys),
        "--value-bytes", str(args.value_bytes), "--duration", str(args.duration),
        "--warmup", str(args.warmup), "--connections", str(args.connections),
    ]  # fmt: skip


def timed_run(
    urls: str, options: list[str], args: argparse.Namespace, pids: list[int]
) -> tuple[Row, dict[str, Any]]:
    """A run without preload, with the nodes' CPU around it; its row and raw result."""
    c0 = sum(cpu_s(pid) for pid in pids)
    res = dynamo_bench(urls, [*options, "--no-preload"], (args.warmup + args.duration) * 4 + 120)
    node_cpu_s = sum(cpu_s(pid) for pid in pids) - c0
    made = res["requests"] + res["warmup"]["requests"]
    row = Row(
        req_s=float(res["requests_per_s"]),
        p99_ms=float(res["latency_ms"]["p99"]),
        cpu_us=node_cpu_s / max(1, made) * 1e6,
        errors=int(res["error_count"]),
    )
    return row, res


def coordinated_puts(cluster: LocalCluster) -> int:
    return sum(int(n.stats()["node_puts_total"]) for n in cluster.nodes)


def load(
    cluster: LocalCluster,
    urls: str,
    bucket: str,
    objects: int,
    indexes: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Write ``k0..k{objects-1}`` once each with ``indexes`` index entries, through the
    bench's preload (then one second of the same PUTs); progress on stdout."""
    options = [
        "--workload", "put", "--preload", "--indexes", str(indexes), "--bucket", bucket,
        "--keys", str(objects), "--value-bytes", str(args.value_bytes),
        "--connections", str(args.load_connections), "--duration", "1", "--warmup", "0",
    ]  # fmt: skip
    timeout_s = args.load_timeout or 120 + objects / 400
    puts0, t0 = coordinated_puts(cluster), time.monotonic()
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = bench_cmd(urls, out.name, options)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            while proc.poll() is None and time.monotonic() < t0 + timeout_s:
                try:
                    proc.wait(timeout=min(PROGRESS_EVERY_S, t0 + timeout_s - time.monotonic()))
                except subprocess.TimeoutExpired:
                    written, s = coordinated_puts(cluster) - puts0, time.monotonic() - t0
                    print(f"  load {bucket}: {written:,} PUTs in {s:.0f}s ({written / s:,.0f}/s)")
        finally:
            if proc.poll() is None:
                proc.kill()
            _, stderr = proc.communicate(timeout=30)
        text = Path(out.name).read_text()
    wall_s = time.monotonic() - t0
    written = coordinated_puts(cluster) - puts0
    out_of: dict[str, Any] = {"bucket": bucket, "objects": objects, "wall_s": round(wall_s, 1)}
    if not text:  # killed at the timeout, or the bench failed
        print(f"  load of {bucket} did not finish: {stderr.decode()[-1000:]}")
        return {**out_of, "finished": False, "seconds": wall_s, "puts": written, "errors": None}
    pre = json.loads(text)["preload"]
    return {**out_of, "finished": True, "puts": objects, **pre}  # pre: keys, seconds, errors


def load_line(loaded: dict[str, Any]) -> str:
    rate = loaded["puts"] / max(loaded["seconds"], 1e-9)
    end = "" if loaded["finished"] else " (NOT FINISHED: stopped at the load timeout)"
    return (
        f"loaded {loaded['puts']:,} objects into {loaded['bucket']} in {loaded['seconds']:.1f}s"
        f" ({rate:,.0f}/s), errors {loaded['errors']}{end}"
    )


def blind_puts(url: str, bucket: str) -> None:
    props = json.dumps({"props": {"allow_mult": False}}).encode()
    headers = {"Content-Type": "application/json"}
    status, _, text = http("PUT", f"{url}/buckets/{bucket}/props", props, headers)
    if status != 204:
        raise RuntimeError(f"props of {bucket}: {status} {text[:200]!r}")


def expected_eq(objects: int, term: int) -> int:
    """How many of ``k0..k{objects-1}`` carry ``age_int`` ``term``."""
    return objects // TERMS + (1 if term < objects % TERMS else 0)


def result_counts(url: str, objects: int) -> list[dict[str, Any]]:
    """A few queries, once each: keys returned, how many the load should give, time."""
    probes = [(f"{t}", expected_eq(objects, t)) for t in (0, 500, 999)]
    for a in (0, 500, 995):
        in_range = sum(expected_eq(objects, t) for t in range(a, TERMS))
        probes.append((f"{a}/{TERMS - 1}?max_results={PAGE}", min(PAGE, in_range)))
    out = []
    for path, expected in probes:
        t0 = time.perf_counter()
        status, _, body = http("GET", f"{url}/buckets/{BUCKET}/index/age_int/{path}", timeout=120)
        ms = round((time.perf_counter() - t0) * 1e3, 1)
        data = json.loads(body) if status == 200 else {}
        keys, more = len(data.get("keys", [])), "continuation" in data
        out.append(dict(query=path, status=status, keys=keys, expected=expected, ms=ms, more=more))
    return out


def table(rows: dict[str, list[Row]]) -> list[str]:
    lines = [f"  {'':<12} {'req/s':>9} {'p99 ms':>8} {'node CPU us/req':>16} {'errors':>7}"]
    for name, runs in rows.items():
        req_s, p99, cpu = medians(runs)
        errors = sum(r.errors for r in runs)
        lines.append(f"  {name:<12} {req_s:>9,.0f} {p99:>8.2f} {cpu:>16,.0f} {errors:>7}")
    (with_req, _, with_cpu), (none_req, _, none_cpu) = (medians(rows[p]) for p in PUTS)
    lines.append(
        f"  PUT with 2 index entries / none: throughput {with_req / none_req:.2f}x,"
        f" node CPU per request {with_cpu / none_cpu:.2f}x"
    )
    return lines


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--objects", type=int, default=10_000, help="objects loaded with 2 indexes")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=15, help="measured seconds a run")
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--connections", type=int, default=8, help="of each measured run")
    p.add_argument("--load-connections", type=int, default=32)
    p.add_argument("--load-timeout", type=float, default=0, help="seconds (0: 120 + objects/400)")
    p.add_argument("--put-keys", type=int, default=10_000, help="objects of each PUT bucket")
    p.add_argument("--value-bytes", type=int, default=1024)
    p.add_argument("--json", metavar="FILE", help="save every run's figures")
    args = p.parse_args()
    if args.rounds < 1 or args.objects < 1 or args.put_keys < 1:
        p.error("--rounds, --objects and --put-keys need at least 1")
    return args


def main() -> int:
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    started = now_text()
    print(f"index_bench {started}: {args.objects:,} objects, {args.rounds} round(s)")
    rows: dict[str, list[Row]] = {name: [] for name in (*QUERIES, *PUTS)}
    raw: dict[str, list[dict[str, Any]]] = {name: [] for name in rows}
    runs = {
        "index-eq": run_options(args, "index-eq", BUCKET, args.objects),
        "index-range": run_options(args, "index-range", BUCKET, args.objects),
        "put 2i": [*run_options(args, "put", "put-2i", args.put_keys), "--indexes", "2"],
        "put 0i": [*run_options(args, "put", "put-0i", args.put_keys), "--indexes", "0"],
    }
    with bench_cluster("index-bench-") as (cluster, urls):
        url = urls.split(",")[0]
        loads = [load(cluster, urls, BUCKET, args.objects, 2, args)]
        print(f"{load_line(loads[0])}, at {now_text()}")
        for n in (2, 0):
            blind_puts(url, f"put-{n}i")
            loads.append(load(cluster, urls, f"put-{n}i", args.put_keys, n, args))
            print(load_line(loads[-1]))
        counts = result_counts(url, args.objects)
        for c in counts:
            more = ", continuation" if c["more"] else ""
            print(
                f"  age_int/{c['query']}: {c['status']}, {c['keys']} keys"
                f" (expected {c['expected']}){more}, {c['ms']:.1f} ms"
            )
        pids = [n.pid for n in cluster.nodes if n.pid]
        for r in range(args.rounds):
            for pair in (QUERIES, PUTS):
                for name in reversed(pair) if r % 2 else pair:
                    row, res = timed_run(urls, runs[name], args, pids)
                    rows[name].append(row)
                    raw[name].append({"row": row._asdict(), "at": now_text(), "bench": res})
                    print(f"round {r + 1} {name:<11} {row}")
    ended = now_text()
    print(f"\nmedians of {args.rounds} round(s), 3 nodes, {args.objects:,} objects, {started}")
    print("\n".join(table(rows)))
    print(f"ended {ended}")
    if args.json:
        figures = {
            "started": started,
            "ended": ended,
            "args": vars(args),
            "loads": loads,
            "result_counts": counts,
            "runs": raw,
            "medians": {
                k: dict(zip(Row._fields, medians(v), strict=False)) for k, v in rows.items()
            },
        }
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
