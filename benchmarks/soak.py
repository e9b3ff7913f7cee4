"""Soak: a long run of mixed traffic with a fault every minute, watching for what leaks.

    python benchmarks/soak.py --duration 3600 --warmup 900 --seed 1 \\
        --out-png benchmarks/soak.png --out-json benchmarks/soak.json
    python benchmarks/soak.py --duration 120 --warmup 30 --fault-every 30   # a smoke run
    python benchmarks/soak.py --rejudge benchmarks/soak.json   # verdict and plot again

A local cluster (``LocalCluster``: real node processes through the CLI) takes paced
GET, PUT (with two index entries), DELETE and 2i queries over a bounded key space from a
few client loops, plus a streamed key listing now and then, at a moderate rate that
leaves the machine usable. Every ``--fault-every`` seconds one fault, in turn: ``kill``
(``kill -9``, then restart), ``stop`` (SIGTERM, a clean stop, then restart) and ``pause``
(SIGSTOP for ~10 s, then SIGCONT); each waits until every node sees the node up again.
Restarts rotate over every node but the first, the *witness*: it is only ever paused, so
one process lives through the whole run and shows a per-process leak that restarted
processes (a few minutes old at most) cannot (``--no-witness`` restarts every node).

Every ``--sample-every`` seconds, per node process: RSS, open fds (and of them: sockets,
SST files, files already deleted that the process still holds) and threads from /proc,
its CPU, and from the node's ``GET /stats``: asyncio tasks, RocksDB memtables, table
readers, block cache and live iterators (names in ``NODE_STATS``; absent ones are
reported and left blank).

The verdict, per node and metric, is the *trend*: the least-squares line through every
sample from the end of the warm-up to the last, read at both ends; growth is the second
reading over the first. A trend, not two readings, because memtables, RSS, SST fds and
the C heap are sawtooths (fill and flush, allocate and collect, compact): two readings
compare phases rather than levels, while a leak tilts the line through all of them.
Beside it, two readings that are shown, not judged: the *level* (the 90th percentile of
the samples over the first ``--envelope`` seconds after the warm-up, and over the last
as many) and the raw medians of the first and last minute. (The first rule compared a
running envelope that reached back into the warm-up: on 2026-12-05 it read RSS 136 MiB
where the first ten minutes after the warm-up held 141, and called a flat series +7%.
Windowed levels then read a memtable sawtooth 22 -> 24 MiB as +9%. The trend rule was
fixed before the hour of 04:43 UTC that it then judged.) A metric passes when it grew
by less than 5%, or by at most ``Metric.slack`` (a few for counts, one arena block for
RocksDB bytes: granules, not growth, on a tiny base). Only a node
that kept one process from the warm-up to the end is judged (the witness): a restarted
node's series joins young processes to old ones, so it is drawn and listed, not judged.
RSS is split in what a leak raises (C heap in use, Python's small-object blocks) and
what fragmentation does (C heap freed but held, which ``malloc_trim_interval_s`` gives
back), from the node's ``/stats``.
Any 5xx other than 503 fails the run; 503s, timeouts and refused connections are
expected during a fault (and ``GRACE_S`` after it) and counted apart from those outside
one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
from pb_vs_http import cpu_s  # puts the repository on sys.path
from soak_probe import KINDS, MIX, Tally, classify, disk_bytes, fd_kinds
from soak_verdict import MIB, OUTCOMES, Settings, judged, plot, print_report

from dynamo.tools.localcluster import LocalCluster, NodeProcess
from http_api.client import AsyncClient

BUCKET = "soak"
NODE_SETTINGS = ("log_level=WARNING",)  # production timing (the ``lan`` preset)
FAULT_KINDS = ("kill", "stop", "pause")
INDEX_GROUPS = 100  # group_int values: an equality query finds ~keys/100 keys
REQUEST_TIMEOUT_S = 8.0  # client side; the node is asked to give up at NODE_TIMEOUT_MS
NODE_TIMEOUT_MS = 5000
LIST_TIMEOUT_S = 30.0
STATS_TIMEOUT_S = 4.0
DOWN_S = 5.0  # a killed or stopped node stays down this long: peers notice (phi ~5 s)
RECOVER_TIMEOUT_S = 90.0
GRACE_S = 15.0  # errors this long after a fault healed still count as the fault's
NODE_STATS = (
    "asyncio_tasks",
    "rocksdb_mem_table_bytes",
    "rocksdb_table_readers_bytes",
    "rocksdb_block_cache_bytes",
    "rocksdb_live_iterators",
    "malloc_in_use_bytes",
    "malloc_free_bytes",
    "python_allocated_blocks",
)
CONTEXT_STATS = ("hints_pending", "node_uptime_s")  # kept in the samples, not judged


@dataclass
class FaultRecord:
    n: int
    kind: str
    node: str
    at_s: float
    pid_before: int | None
    pid_after: int | None = None
    recovered_after_s: float | None = None
    exit_code: int | None = None  # of a clean stop
    error: str | None = None


@dataclass
class Soak:
    """One run: the cluster, the traffic, the faults and the samples."""

    cluster: LocalCluster
    s: Settings
    tally: Tally = field(default_factory=Tally)
    faults: list[FaultRecord] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    client: list[dict[str, float]] = field(default_factory=list)
    impaired: dict[str, str] = field(default_factory=dict)  # node -> fault kind, now
    last_heal: float = -math.inf
    started: float = 0.0  # monotonic
    started_at: str = ""
    ended_at: str = ""
    aborted: str | None = None
    _cpu: dict[str, tuple[int, float, float]] = field(default_factory=dict)

    def in_fault(self, now: float) -> bool:
        return bool(self.impaired) or now - self.last_heal < GRACE_S

    # --- The run ---------------------------------------------------------------------------

    async def run(self) -> None:
        s = self.s
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        async with asyncio.timeout(s.duration_s + 900):
            await asyncio.to_thread(self.cluster.start)
            await asyncio.to_thread(self.cluster.wait_converged, 60)
            conn = aiohttp.TCPConnector(limit=64)
            async with aiohttp.ClientSession(connector=conn) as session:
                ids = [n.node_id for n in self.cluster.nodes]
                ops = {
                    n.node_id: AsyncClient(n.url, session=session, timeout_s=REQUEST_TIMEOUT_S)
                    for n in self.cluster.nodes
                }
                slow = {
                    n.node_id: AsyncClient(n.url, session=session, timeout_s=LIST_TIMEOUT_S)
                    for n in self.cluster.nodes
                }
                await ops[ids[0]].set_bucket_props(BUCKET, {"allow_mult": False})
                await self._announce_stats(slow[ids[0]])
                self.started = time.monotonic()
                until = self.started + s.duration_s
                async with asyncio.TaskGroup() as tg:
                    for i in range(s.clients):
                        tg.create_task(self._client_loop(i, ops, until))
                    tg.create_task(self._list_loop(slow, until))
                    tg.create_task(self._fault_loop(until))
                    tg.create_task(self._sample_loop(ops, until))
        self.ended_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    async def _announce_stats(self, client: AsyncClient) -> None:
        stats = await asyncio.wait_for(client.stats(), STATS_TIMEOUT_S)
        missing = [name for name in NODE_STATS if name not in stats]
        print(f"/stats exposes {[n for n in NODE_STATS if n in stats]}; missing {missing}")

    def _target(self, clients: dict[str, AsyncClient], rng: random.Random) -> AsyncClient:
        """A node no fault holds now (a client behind a load balancer would do the same)."""
        healthy = [n for n in clients if n not in self.impaired] or list(clients)
        return clients[rng.choice(healthy)]

    async def _op(self, kind: str, c: AsyncClient, rng: random.Random) -> bool:
        """One request; False when the key was not there."""
        n = rng.randrange(self.s.keys)
        key = f"k{n:05d}"
        if kind == "get":
            obj = await c.get(BUCKET, key, timeout_ms=NODE_TIMEOUT_MS)
            return bool(obj.live)
        if kind == "put":
            value = rng.randbytes(rng.randint(256, 1024))
            idx: list[tuple[str, str | int]] = [
                ("group_int", n % INDEX_GROUPS),
                ("shard_bin", f"s{n % 16:02d}"),
            ]
            await c.put(BUCKET, key, value, indexes=idx, timeout_ms=NODE_TIMEOUT_MS)
            return True
        if kind == "delete":
            return await c.delete(BUCKET, key, timeout_ms=NODE_TIMEOUT_MS)
        if kind == "index":
            g = n % INDEX_GROUPS
            if rng.random() < 0.5:
                res = await c.index(BUCKET, "group_int", g, timeout_ms=NODE_TIMEOUT_MS)
            else:
                res = await c.index(
                    BUCKET, "group_int", g, g + 2, max_results=100, timeout_ms=NODE_TIMEOUT_MS
                )
            return bool(res.keys)
        keys = await c.list_keys(BUCKET, stream=True)
        return bool(keys)

    async def _timed(self, kind: str, c: AsyncClient, rng: random.Random, limit_s: float) -> None:
        t0 = time.monotonic()
        try:
            found = await asyncio.wait_for(self._op(kind, c, rng), limit_s + 2)
            outcome, why = ("ok" if found else "not_found"), ""
        except Exception as e:  # every failure is counted by kind, none stops the soak
            outcome, why = classify(e), f"{type(e).__name__}: {e}"[:300]
        now = time.monotonic()
        self.tally.record(kind, outcome, now - t0, self.in_fault(now), why)

    async def _client_loop(self, i: int, clients: dict[str, AsyncClient], until: float) -> None:
        """Paced: ``rate / clients`` ops/s; a slow op drops the backlog, never bursts."""
        rng = random.Random(f"{self.s.seed}-client-{i}")
        interval = self.s.clients / self.s.rate
        kinds, weights = list(MIX), list(MIX.values())
        next_at = time.monotonic()
        while (now := time.monotonic()) < until:
            if next_at > now:
                await asyncio.sleep(next_at - now)
            next_at = max(next_at + interval, time.monotonic() - 1.0)
            kind = rng.choices(kinds, weights)[0]
            await self._timed(kind, self._target(clients, rng), rng, REQUEST_TIMEOUT_S)

    async def _list_loop(self, clients: dict[str, AsyncClient], until: float) -> None:
        rng = random.Random(f"{self.s.seed}-list")
        while time.monotonic() + self.s.list_every_s < until:
            await asyncio.sleep(self.s.list_every_s)
            await self._timed("list", self._target(clients, rng), rng, LIST_TIMEOUT_S)

    # --- Faults ----------------------------------------------------------------------------

    def _fault_target(self, n: int) -> NodeProcess:
        """Pauses rotate over every node; restarts over every node but the witness, mixed
        so that each node sees both kinds of restart."""
        nodes = self.cluster.nodes
        kind = FAULT_KINDS[n % len(FAULT_KINDS)]
        if kind == "pause":
            return nodes[(n // len(FAULT_KINDS)) % len(nodes)]
        pool = nodes[1:] if self.s.witness else nodes
        r = sum(1 for f in self.faults if f.kind != "pause")
        return pool[(r + r // len(pool)) % len(pool)]

    async def _fault_loop(self, until: float) -> None:
        n = 0
        while True:
            at = self.started + (n + 1) * self.s.fault_every_s
            if at > until - max(30.0, self.s.fault_every_s / 2):
                return
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            await self._fault(n)
            n += 1

    async def _fault(self, n: int) -> None:
        kind = FAULT_KINDS[n % len(FAULT_KINDS)]
        node = self._fault_target(n)
        t0 = time.monotonic()
        rec = FaultRecord(n, kind, node.node_id, round(t0 - self.started, 1), node.pid)
        self.faults.append(rec)
        self.impaired[node.node_id] = kind
        try:
            if kind == "kill":
                await asyncio.to_thread(node.kill9)
                await asyncio.sleep(DOWN_S)
                await asyncio.to_thread(self.cluster.start, node)
            elif kind == "stop":
                rec.exit_code = await asyncio.to_thread(node.stop, 30)
                await asyncio.sleep(DOWN_S)
                await asyncio.to_thread(self.cluster.start, node)
            else:
                node.pause()
                await asyncio.sleep(self.s.pause_s)
                node.resume()
            await asyncio.to_thread(self.cluster.wait_up_everywhere, node, True, RECOVER_TIMEOUT_S)
            rec.recovered_after_s = round(time.monotonic() - t0, 1)
        except Exception as e:  # recorded; what is down or paused is brought back at once
            rec.error = f"{type(e).__name__}: {e}"[:300]
            await asyncio.to_thread(self._revive)
        finally:
            rec.pid_after = node.pid
            self.impaired.pop(node.node_id, None)
            self.last_heal = time.monotonic()
        print(
            f"[{rec.at_s:6.0f}s] fault {n} {kind} {node.node_id}: pid {rec.pid_before} ->"
            f" {rec.pid_after}, recovered {rec.recovered_after_s}s"
            + (f", exit {rec.exit_code}" if kind == "stop" else "")
            + (f" ERROR {rec.error}" if rec.error else ""),
            flush=True,
        )

    def _revive(self) -> None:
        for node in self.cluster.nodes:
            try:
                if node.paused:
                    node.resume()
                if not node.running():
                    self.cluster.start(node)
            except Exception as e:
                print(f"could not revive {node.node_id}: {e}", flush=True)

    # --- Samples ---------------------------------------------------------------------------

    async def _sample_loop(self, clients: dict[str, AsyncClient], until: float) -> None:
        k = 0
        while True:
            at = self.started + k * self.s.sample_every_s
            if at > until:
                return
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            t_s = round(time.monotonic() - self.started, 1)
            stats = await asyncio.gather(*(self._stats(n, clients) for n in self.cluster.nodes))
            for node, st in zip(self.cluster.nodes, stats, strict=True):
                row = self._proc_sample(node, t_s)
                if row is not None:
                    row.update({name: st.get(name) for name in NODE_STATS + CONTEXT_STATS})
                    self.samples.append(row)
            self.client.append({"t_s": t_s, **self.tally.take_interval()})
            if k % max(1, round(60 / self.s.sample_every_s)) == 0:
                self._progress(t_s)
            k += 1

    async def _stats(self, node: NodeProcess, clients: dict[str, AsyncClient]) -> dict[str, Any]:
        if node.paused or not node.running():
            return {}
        try:
            return await asyncio.wait_for(clients[node.node_id].stats(), STATS_TIMEOUT_S)
        except Exception:  # a node restarting or stopped: the /proc figures still count
            return {}

    def _proc_sample(self, node: NodeProcess, t_s: float) -> dict[str, Any] | None:
        pid = node.pid
        if pid is None or not node.running():
            return None
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            fds = fd_kinds(pid)
            cpu = cpu_s(pid)
        except OSError:  # it just exited
            return None
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if "VmRSS" not in fields:  # a zombie, not yet reaped
            return None
        prev = self._cpu.get(node.node_id)
        cpu_pct = None
        if prev is not None and prev[0] == pid and t_s > prev[1]:
            cpu_pct = round(100 * (cpu - prev[2]) / (t_s - prev[1]), 1)
        self._cpu[node.node_id] = (pid, t_s, cpu)
        return {
            "t_s": t_s,
            "node": node.node_id,
            "pid": pid,
            "paused": node.paused,
            "rss_bytes": int(fields["VmRSS"].split()[0]) * 1024,
            **fds,
            "threads": int(fields["Threads"]),
            "cpu_s": round(cpu, 2),
            "cpu_pct": cpu_pct,
            **disk_bytes(node.data_dir),
        }

    def _progress(self, t_s: float) -> None:
        recent = self.client[-6:]
        rate = sum(c["ok"] + c["errors"] for c in recent) / (len(recent) * self.s.sample_every_s)
        errs = {o: sum(self.tally.counts[k][o] for k in KINDS) for o in OUTCOMES[2:]}
        nodes = " ".join(
            f"{r['node']}:{r['rss_bytes'] / MIB:.0f}M/{r['fds']}fd/{r.get('asyncio_tasks')}t"
            for r in self.samples
            if r["t_s"] == t_s
        )
        print(
            f"[{t_s:6.0f}s] {rate:5.0f} ops/s, faults {len(self.faults)},"
            f" errors { ({o: n for o, n in errs.items() if n}) } | {nodes}",
            flush=True,
        )

    def report(self) -> dict[str, Any]:
        rep: dict[str, Any] = {
            "settings": {
                k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.s).items()
            },
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "aborted": self.aborted,
            "missing_stats": [
                name for name in NODE_STATS if all(r.get(name) is None for r in self.samples)
            ],
            "ops": self.tally.counts,
            "expected_errors_outside_faults": self.tally.outside_faults,
            "error_examples": self.tally.examples,
            "faults": [asdict(f) for f in self.faults],
            "client": self.client,
            "samples": self.samples,
        }
        return judged(rep, self.s)


def parse(argv: list[str] | None) -> tuple[Path | None, Settings]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    d = Settings()
    p.add_argument("--nodes", type=int, default=d.nodes)
    p.add_argument("--duration", type=float, default=d.duration_s, help="seconds")
    p.add_argument("--warmup", type=float, default=d.warmup_s, help="seconds")
    p.add_argument("--fault-every", type=float, default=d.fault_every_s, help="seconds")
    p.add_argument("--sample-every", type=float, default=d.sample_every_s, help="seconds")
    p.add_argument("--envelope", type=float, default=d.envelope_s, help="seconds")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--rate", type=float, default=d.rate, help="ops/s in all")
    p.add_argument("--clients", type=int, default=d.clients)
    p.add_argument("--keys", type=int, default=d.keys)
    p.add_argument("--no-witness", action="store_true", help="restart every node")
    p.add_argument("--out-png", type=Path, default=d.out_png)
    p.add_argument("--out-json", type=Path, default=d.out_json)
    p.add_argument(
        "--rejudge", type=Path, help="no run: the verdict and plot again from this JSON's samples"
        " (with its settings but --envelope), written to --out-json and --out-png",
    )  # fmt: skip
    a = p.parse_args(argv)
    return a.rejudge, Settings(
        nodes=a.nodes, duration_s=a.duration, warmup_s=a.warmup, fault_every_s=a.fault_every,
        sample_every_s=a.sample_every, envelope_s=a.envelope, seed=a.seed, rate=a.rate,
        clients=a.clients, keys=a.keys, witness=not a.no_witness, out_png=a.out_png,
        out_json=a.out_json,
    )  # fmt: skip


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def rejudge(path: Path, cli: Settings) -> dict[str, Any]:
    rep: dict[str, Any] = json.loads(path.read_text())
    kept = {k: v for k, v in rep["settings"].items() if k not in ("out_png", "out_json")}
    s = Settings(**{**kept, "envelope_s": cli.envelope_s, "out_png": cli.out_png,
                    "out_json": cli.out_json})  # fmt: skip
    return judged(rep, s)


def main(argv: list[str] | None = None) -> int:
    again, s = parse(argv)
    if again is not None:
        rep = rejudge(again, s)
        s.out_json.write_text(json.dumps(rep, indent=1) + "\n")
        plot(rep, s.out_png)
        print_report(rep)
        return 0 if rep["passed"] else 1
    print(f"soak seed {s.seed}: {s}", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # ``timeout`` stops us: the nodes go too
    with tempfile.TemporaryDirectory(prefix="dynamo-soak-") as tmp:
        cluster = LocalCluster(Path(tmp), s.nodes, settings=NODE_SETTINGS)
        soak = Soak(cluster, s)
        try:
            asyncio.run(soak.run())
        except (Exception, KeyboardInterrupt) as e:
            soak.aborted = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        finally:
            cluster.stop()
            soak.ended_at = soak.ended_at or time.strftime("%Y-%m-%dT%H:%M:%S%z")
        rep = soak.report()
        if not rep["passed"]:
            print(cluster.logs(tail=20))
    s.out_json.write_text(json.dumps(rep, indent=1) + "\n")
    plot(rep, s.out_png)
    print_report(rep)
    print(f"wrote {s.out_json} and {s.out_png}")
    return 0 if rep["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
