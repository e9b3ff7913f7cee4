"""``dynamo chaos``: a bounded cart workload on a real local cluster under faults,
then heal, wait for convergence, check, report.

Nodes talk to each other through the fault proxy (``dynamo.tools.chaos.proxy``), so
links can be cut, slowed or made lossy without root; processes are killed,
stopped and wiped for real. Clients talk HTTP to the nodes directly.

With ``lab`` (root), the nodes run instead on hosts of a network lab (namespaces on a
bridge, ``dynamo.tools.lab``), ``processes`` node processes per host behind the host's
one client address, and the faults are the lab's (``lab_faults``): silent partitions,
asymmetric and flapping links, whole hosts lost or paused.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

import aiohttp

from dynamo.tools import carts
from dynamo.tools.chaos import datatypes_work, index_check
from dynamo.tools.chaos.faults import KINDS, FaultLog, Faults
from dynamo.tools.chaos.lab_faults import LabFaults
from dynamo.tools.chaos.proxy import LinkMesh
from dynamo.tools.localcluster import LocalCluster
from http_api.admin import AdminClient, get_json
from http_api.client import AsyncClient
from http_api.errors import ServiceError, Unavailable
from http_api.types import Datatype

log = logging.getLogger(__name__)
T = TypeVar("T")

BUCKET = "carts"
NODE_SETTINGS = (
    "request_timeout_ms=4000",
    "rpc_timeout_ms=2000",
    "aae_quiet_interval_s=1",
    "handoff_interval_s=0.5",
    "log_level=WARNING",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaosSettings:
    nodes: int = 5
    duration_s: float = 60.0
    seed: int = 0
    clients: int = 8
    keys: int = 16
    max_impaired: int = 0  # 0: a minority, (nodes - 1) // 2
    kinds: tuple[str, ...] = KINDS
    converge_s: float = 120.0
    urls: tuple[str, ...] = ()  # target running nodes: workload and checks, no faults
    data_dir: Path | None = None
    lab: bool = False  # hosts in a network lab (root): ``nodes`` hosts...
    processes: int = 1  # ...of this many node processes each
    workload: str = "carts"  # or "counters", "sets": data types (datatypes_work)


@dataclass
class Report:
    settings: ChaosSettings
    history: carts.History
    verdict: carts.Verdict
    faults: FaultLog
    converged_after_s: float | None
    unconverged: list[str] = field(default_factory=list)
    index_queries: int = 0  # checked after healing (carts), every mismatch a server error

    @property
    def passed(self) -> bool:
        return self.verdict.passed and self.converged_after_s is not None

    def text(self) -> str:
        h, v, s = self.history, self.verdict, self.settings
        conv = f"{self.converged_after_s:.1f}s" if self.converged_after_s is not None else "never"
        lines = [
            f"chaos run: {'PASS' if self.passed else 'FAIL'} (seed {s.seed})",
            f"  nodes {s.nodes}, clients {s.clients}, keys {s.keys}, duration {s.duration_s:.0f}s",
            f"  ops {h.ops}, acknowledged {h.acknowledged}, indeterminate {h.indeterminate_count},"
            f" refused {h.refused}, reads failed {h.reads_failed}",
            f"  lost {v.lost_count}, server errors {len(v.bugs)}, max siblings {h.max_siblings},"
            f" siblings that were not concurrent {len(v.not_concurrent)}",
            f"  converged {conv} after healing; index queries checked {self.index_queries}",
            f"  faults applied {len(self.faults.applied)}: "
            + ", ".join(f"{k} {n}" for k, n in sorted(self.faults.counts().items())),
        ]
        for key, ids in sorted(v.lost.items()):
            lines.append(f"  LOST {key}: {sorted(ids)[:10]}")
        lines += [f"  DIVERGED {k}" for k in self.unconverged[:10]]
        lines += [f"  SERVER ERROR {b}" for b in v.bugs[:5]]
        return "\n".join(lines)


class Progress:
    """One live line on a terminal (plain lines every 10 s otherwise)."""

    def __init__(self, out: TextIO, total_s: float) -> None:
        self.out = out
        self.total_s = total_s
        self.tty = out.isatty()
        self.last = 0.0

    def show(
        self, elapsed: float, history: carts.History, faults: Faults | LabFaults | None
    ) -> None:
        if not self.tty and elapsed - self.last < 10:
            return
        self.last = elapsed
        width = 30
        done = min(width, int(width * elapsed / self.total_s))
        impaired = ",".join(
            f"{n}:{k}" for n, k in sorted((faults.impaired if faults else {}).items())
        )
        n_faults = len(faults.log.applied) if faults else 0
        line = (
            f"[{'#' * done}{'.' * (width - done)}] {elapsed:4.0f}/{self.total_s:.0f}s"
            f" ops {history.ops} acked {history.acknowledged}"
            f" indet {history.indeterminate_count} faults {n_faults} {impaired}"
        )
        self.out.write(("\r" + line.ljust(110)) if self.tty else line + "\n")
        self.out.flush()

    def done(self) -> None:
        if self.tty:
            self.out.write("\n")


class Workload:
    def __init__(self, urls: list[str], session: aiohttp.ClientSession) -> None:
        self.clients = {u: AsyncClient(u, session=session, timeout_s=6.0) for u in urls}
        self.live: list[str] = list(urls)

    async def call(self, url: str, fn: Callable[[AsyncClient], Awaitable[T]]) -> T:
        """``fn`` on the client of ``url``, its failures as the checkers classify them."""
        try:
            return await fn(self.clients[url])
        except Unavailable as e:
            raise carts.Indeterminate(str(e))
        except ServiceError as e:
            if e.status >= 500:
                raise carts.ServerBug(f"{e.status} {e.message}")
            raise carts.Refused(f"{e.status} {e.message}")
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise carts.Indeterminate(f"{type(e).__name__}: {e}")

    async def get(self, key: str, url: str) -> tuple[list[bytes], bytes | None]:
        obj = await self.call(url, lambda c: c.get(BUCKET, key, timeout_ms=4000))
        return [s.content.value for s in obj.live], obj.context

    async def put(self, key: str, value: bytes, context: bytes | None, url: str) -> None:
        await self.call(
            url,
            lambda c: c.put(
                BUCKET, key, value, content_type="application/json", context=context,
                w="quorum", timeout_ms=4000, indexes=index_check.entries(value),
            ),
        )  # fmt: skip


async def run(settings: ChaosSettings, out: TextIO = sys.stderr) -> Report:
    rng = random.Random(settings.seed)
    keys = [f"cart{i}" for i in range(settings.keys)]
    history = carts.History()
    with tempfile.TemporaryDirectory(prefix="dynamo-chaos-") as tmp:
        root = settings.data_dir or Path(tmp)
        cluster: LocalCluster | None = None
        mesh: LinkMesh | None = None
        faults: Faults | None = None
        if settings.lab:
            return await _run_lab(settings, rng, keys, history, root, out)
        try:
            if settings.urls:
                urls = list(settings.urls)
            else:
                cluster = LocalCluster(root, settings.nodes, settings=NODE_SETTINGS)
                mesh = LinkMesh(
                    {n.node_id: n.peer_addr for n in cluster.nodes}, random.Random(rng.random())
                )
                await mesh.start()
                for n in cluster.nodes:
                    routes = ",".join(f"{a}={v}" for a, v in mesh.routes_for(n.node_id).items())
                    cluster.per_node[n.node_id] = [f"peer_routes={routes}"]
                await asyncio.to_thread(cluster.start)
                await asyncio.to_thread(cluster.wait_converged, 60)
                urls = [n.url for n in cluster.nodes]
                max_imp = settings.max_impaired or max(1, (settings.nodes - 1) // 2)
                faults = Faults(
                    cluster,
                    mesh,
                    random.Random(rng.random()),
                    max_impaired=max_imp,
                    kinds=settings.kinds,
                )
            report = await _drive(settings, rng, keys, history, urls, urls, faults, out)
        finally:
            if mesh is not None:
                await mesh.close()
            if cluster is not None:
                await asyncio.to_thread(cluster.stop)
        return report


async def _run_lab(
    settings: ChaosSettings,
    rng: random.Random,
    keys: list[str],
    history: carts.History,
    root: Path,
    out: TextIO,
) -> Report:
    from dynamo.tools.hosts import HostCluster, LabSpawner, lab_addrs
    from dynamo.tools.lab import Lab

    with Lab(settings.nodes) as lab:
        hosts = HostCluster(
            root, lab_addrs(lab), settings.processes, LabSpawner(lab), NODE_SETTINGS
        )
        try:
            await asyncio.to_thread(hosts.start)
            await asyncio.to_thread(hosts.wait_converged, 120)
            max_imp = settings.max_impaired or max(1, (settings.nodes - 1) // 2)
            faults = LabFaults(
                hosts, lab, random.Random(rng.random()), max_impaired=max_imp, kinds=settings.kinds
            )
            return await _drive(
                settings, rng, keys, history, hosts.client_urls(), hosts.node_urls(), faults, out
            )
        finally:
            await asyncio.to_thread(hosts.stop)


async def _drive(
    settings: ChaosSettings,
    rng: random.Random,
    keys: list[str],
    history: carts.History,
    urls: list[str],
    admin_urls: list[str],
    faults: Faults | LabFaults | None,
    out: TextIO,
) -> Report:
    """The workload over ``urls`` under ``faults``, then the checks (``admin_urls``: one
    per node process, for reading each replica's own copy)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + settings.duration_s
    progress = Progress(out, settings.duration_s)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        work = Workload(urls, session)

        ledger = datatypes_work.Ledger()
        if settings.workload != "carts":
            name, kind = datatypes_work.TYPES[settings.workload]
            await asyncio.to_thread(_make_type, admin_urls[0], name, kind)

        def client(c: int) -> Any:
            crng = random.Random(rng.random())

            async def get(key: str) -> tuple[list[bytes], bytes | None]:
                return await work.get(key, crng.choice(urls))

            async def put(key: str, value: bytes, context: bytes | None) -> None:
                await work.put(key, value, context, crng.choice(urls))

            async def update(btype: str, key: str, op: dict[str, Any], ctx: bytes | None) -> None:
                def send(c: AsyncClient) -> Awaitable[Any]:
                    bucket = datatypes_work.BUCKET
                    return c.update_datatype(btype, bucket, key, op, context=ctx, w="quorum")

                await work.call(crng.choice(urls), send)

            async def fetch(btype: str, key: str) -> Datatype:
                def send(c: AsyncClient) -> Awaitable[Datatype]:
                    return c.fetch_datatype(btype, datatypes_work.BUCKET, key)

                return await work.call(crng.choice(urls), send)

            async def pause() -> None:
                await asyncio.sleep(crng.uniform(0.0, 0.05))

            def going() -> bool:
                return loop.time() < end

            if settings.workload == "counters":
                return datatypes_work.counter_client(
                    history, ledger, c, keys, crng, update, going, pause
                )
            if settings.workload == "sets":
                return datatypes_work.set_client(
                    history, ledger, c, keys, crng, update, fetch, going, pause
                )
            return carts.cart_client(history, c, keys, crng, get, put, going, pause)

        tasks = [asyncio.ensure_future(client(c)) for c in range(settings.clients)]
        fault_task = asyncio.ensure_future(faults.run(end - 3)) if faults else None
        while not all(t.done() for t in tasks):
            progress.show(loop.time() - start, history, faults)
            await asyncio.sleep(0.5)
        progress.show(settings.duration_s, history, faults)
        progress.done()
        await asyncio.gather(*tasks)
        if fault_task is not None:
            fault_task.cancel()
            await asyncio.gather(fault_task, return_exceptions=True)
        if faults is not None:
            await faults.heal_all()
        healed = loop.time()
        converged_after: float | None = None
        unconverged: list[str] = list(keys)
        btype = datatypes_work.TYPES.get(settings.workload, ("default", ""))[0]
        bucket = BUCKET if settings.workload == "carts" else datatypes_work.BUCKET
        while loop.time() - healed < settings.converge_s:
            unconverged = await asyncio.to_thread(_divergent, admin_urls, keys, bucket, btype)
            if not unconverged:
                converged_after = loop.time() - healed
                break
            await asyncio.sleep(1.0)
        final: dict[str, Any] = {}
        for key in keys:
            try:
                final[key] = await _final(work.clients[urls[0]], settings.workload, key)
            except (ServiceError, aiohttp.ClientError, TimeoutError) as e:
                history.bugs.append(f"final read of {key} failed: {e}")
        indexed: index_check.IndexCheck | None = None
        if settings.workload == "carts":
            try:
                indexed = await index_check.check(work.clients[urls[0]], BUCKET, keys)
            except (ServiceError, aiohttp.ClientError, TimeoutError) as e:
                history.bugs.append(f"index queries after healing failed: {e}")
            else:
                history.bugs += [f"index query {m}" for m in indexed.mismatches]
    divergent = unconverged if converged_after is None else []
    if settings.workload == "carts":
        verdict = carts.check(history, final, divergent)
    else:
        verdict = datatypes_work.check(settings.workload, history, ledger, final, divergent)
    return Report(
        settings=settings,
        history=history,
        verdict=verdict,
        faults=faults.log if faults else FaultLog(),
        converged_after_s=converged_after,
        unconverged=unconverged if converged_after is None else [],
        index_queries=indexed.queries if indexed is not None else 0,
    )


async def _final(client: AsyncClient, workload: str, key: str) -> Any:
    """A key's final value, read from every replica."""
    if workload == "carts":
        obj = await client.get(BUCKET, key, r="all", timeout_ms=8000)
        return set().union(*(carts.decode_set(s.content.value) for s in obj.live))
    btype = datatypes_work.TYPES[workload][0]
    got = await client.fetch_datatype(btype, datatypes_work.BUCKET, key, r="all", timeout_ms=8000)
    return got.value if got.found else (0 if workload == "counters" else [])


def _make_type(url: str, name: str, kind: str) -> None:
    """The workload's bucket type, made and activated as an operator would."""
    admin = AdminClient(url)
    admin.request("POST", f"/admin/bucket-types/{name}", {"props": {"datatype": kind}})
    admin.activate_bucket_type(name, wait_s=60)


def _divergent(
    urls: list[str], keys: list[str], bucket: str = BUCKET, btype: str = "default"
) -> list[str]:
    """Keys whose primaries do not hold the same copy (context and sibling vtags)."""
    out = []
    by_node = {}
    for u in urls:
        try:
            by_node[get_json(u + "/stats", timeout=5)["nodename"]] = u
        except (OSError, ValueError):
            return list(keys)
    for key in keys:
        try:
            where = f"{bucket}/{key}?type={btype}"
            primaries = get_json(f"{urls[0]}/admin/preflist/{where}", timeout=5)["primaries"]
            copies = set()
            for p in primaries:
                local = get_json(f"{by_node[p]}/admin/local/{where}", timeout=5)
                vtags = tuple(sorted(s["vtag"] for s in local.get("siblings", [])))
                copies.add((local.get("context"), vtags))
        except (OSError, ValueError, KeyError):
            out.append(key)
            continue
        if len(copies) != 1:
            out.append(key)
    return out


def main_run(settings: ChaosSettings) -> int:
    t0 = time.monotonic()
    report = asyncio.run(run(settings))
    print(report.text())
    print(f"  wall time {time.monotonic() - t0:.0f}s")
    return 0 if report.passed else 1
