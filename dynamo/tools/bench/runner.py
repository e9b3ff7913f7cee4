"""A whole bench run against running nodes: check them, set ``n_val``, preload, run the
workers, summarize. Admin calls go through a thread so the loop stays free."""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.parse
from http.client import HTTPException
from typing import Any, TextIO

from dynamo.tools.bench.config import BenchConfig, Target
from dynamo.tools.bench.connection import MODE_PRELOAD, Workload
from dynamo.tools.bench.coordinator import BenchError, run_workers
from dynamo.tools.bench.keys import UniformKeys
from dynamo.tools.bench.report import BenchResult, machine_info, summarize
from dynamo.tools.bench.worker import loop_name, make_worker
from dynamo.tools.localcluster import http
from http_api.admin import AdminClient, AdminError

PROPS_TIMEOUT_S = 30.0
PRELOAD_MIN_TIMEOUT_S = 60.0


def _props_url(target: Target, bucket: str) -> str:
    return f"{target.url}/buckets/{urllib.parse.quote(bucket, safe='')}/props"


async def check_targets(targets: list[Target]) -> None:
    """Every node answers ``GET /ping``."""
    for t in targets:
        try:
            status, _, body = await asyncio.to_thread(http, "GET", t.url + "/ping", None, None, 5)
        except (OSError, HTTPException) as e:
            raise BenchError(f"cannot reach {t.url}: {e}")
        if status != 200:
            raise BenchError(f"{t.url}/ping answered {status} {body[:100]!r}")


async def with_pb_ports(targets: list[Target]) -> list[Target]:
    """The targets with the PB port each node advertises (``/admin/members``)."""
    out = []
    for t in targets:
        if t.pb_port:
            out.append(t)
            continue
        status, _, body = await asyncio.to_thread(
            http, "GET", t.url + "/admin/members", None, None, 5
        )
        if status != 200:
            raise BenchError(f"{t.url}/admin/members answered {status} {body[:100]!r}")
        data = json.loads(body)
        me: dict[str, Any] = next((m for m in data["members"] if m["node"] == data["node"]), {})
        addr = me.get("pb_addr")
        if not addr:
            raise BenchError(f"{t.url} serves no PB (its pb_port is 0): use --protocol http")
        out.append(Target(t.host, t.port, int(str(addr).rpartition(":")[2])))
    return out


async def set_n_val(targets: list[Target], bucket: str, n_val: int) -> None:
    """Set the bucket's ``n_val`` and wait until every node reports it."""
    body = json.dumps({"props": {"n_val": n_val}}).encode()
    status, _, text = await asyncio.to_thread(
        http,
        "PUT",
        _props_url(targets[0], bucket),
        body,
        {"Content-Type": "application/json"},
        10,
    )
    if status != 204:
        raise BenchError(f"setting n_val={n_val} on bucket {bucket!r}: {status} {text[:200]!r}")
    deadline = time.monotonic() + PROPS_TIMEOUT_S
    for t in targets:
        while True:
            status, _, text = await asyncio.to_thread(
                http, "GET", _props_url(t, bucket), None, None, 5
            )
            if status == 200 and json.loads(text)["props"].get("n_val") == n_val:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"{t.url} does not report n_val={n_val} after gossip")
            await asyncio.sleep(0.1)


def counter_type(target: Target, name: str) -> None:
    """The counter bucket type ``name``: made and activated unless it is already there."""
    admin = AdminClient(target.url)
    try:
        status = admin.get(f"/admin/bucket-types/{urllib.parse.quote(name, safe='')}")
    except AdminError as e:
        if e.status != 404:
            raise BenchError(f"bucket type {name!r}: {e}")
        admin.request("POST", f"/admin/bucket-types/{name}", {"props": {"datatype": "counter"}})
        status = {"active": False, "props": {"datatype": "counter"}}
    if status.get("props", {}).get("datatype") != "counter":
        raise BenchError(f"bucket type {name!r} does not hold counters: use --bucket-type")
    if not status.get("active"):
        admin.activate_bucket_type(name, wait_s=60)


async def preload(cfg: BenchConfig, targets: list[Target]) -> dict[str, Any]:
    """Write every key once, from this process, over ``cfg.connections`` connections."""
    slots = [targets[c % len(targets)] for c in range(cfg.connections)]
    workload = Workload(
        MODE_PRELOAD,
        UniformKeys(cfg.keys, random.Random(0)),
        random.Random(0),
        preload_keys=iter(range(cfg.keys)),
    )
    worker = make_worker(cfg, slots, workload)
    t0 = time.monotonic()
    async with worker.running():
        try:
            tally = await worker.preload(max(PRELOAD_MIN_TIMEOUT_S, cfg.keys / 100))
        except TimeoutError:
            raise BenchError(f"preload of {cfg.keys} keys did not finish: {worker.tally.errors}")
    seconds = time.monotonic() - t0
    return {"keys": cfg.keys, "seconds": round(seconds, 2), "errors": tally.error_count}


async def run_bench(
    cfg: BenchConfig, targets: list[Target], progress: TextIO | None = None
) -> BenchResult:
    """Check, set up, preload and run; the summarized result."""
    if not targets:
        raise BenchError("no targets: give --url or --nodes")
    await check_targets(targets)
    if cfg.protocol == "pb":
        targets = await with_pb_ports(targets)
    if cfg.workload == "counter":
        await asyncio.to_thread(counter_type, targets[0], cfg.bucket_type)
    if cfg.n_val is not None:
        await set_n_val(targets, cfg.bucket, cfg.n_val)
    loaded: dict[str, Any] = {}
    if cfg.preload:
        loaded = await preload(cfg, targets)
        if progress is not None:
            print(
                f"bench preloaded {loaded['keys']} keys in {loaded['seconds']:.1f}s"
                f" ({loaded['keys'] / max(loaded['seconds'], 1e-9):,.0f}/s),"
                f" errors {loaded['errors']}",
                file=progress,
                flush=True,
            )
        if loaded["errors"] > cfg.keys * 0.01:
            raise BenchError(f"preload: {loaded['errors']} of {cfg.keys} writes failed")
    outcome = await run_workers(cfg, targets, progress)
    return summarize(
        cfg,
        targets,
        outcome.run,
        outcome.warmup,
        outcome.window_s,
        outcome.cpu_s,
        machine_info(loop_name()),
        loaded,
    )
