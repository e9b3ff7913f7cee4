"""A whole cluster in one process: real ``Node`` objects on in-memory stores and a
simulated network, on virtual time, under a seeded fault schedule.

``run(seed)`` builds the cluster, runs the cart workload while the schedule's
faults happen, heals everything, waits for the replicas to converge, and
checks the history (``dynamo.tools.carts.check``). Same seed, same run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from dynamo.kv import object as objects
from dynamo.net import methods
from dynamo.net.methods import ForwardedPut
from dynamo.net.schema import V1
from dynamo.net.session import PROTOCOL_VERSION
from dynamo.node.assembly import Node
from dynamo.node.config import NodeConfig, with_preset
from dynamo.node.env import Env
from dynamo.storage.memory import Disk, MemStore
from dynamo.tools import carts
from dynamo.tools.chaos import datatypes_work
from dynamo.tools.simulation.clients import DATATYPE_BUCKET, SimClients
from dynamo.tools.simulation.loop import Deadlock, Livelock, VirtualTimeLoop
from dynamo.tools.simulation.network import NetConfig, Network, SimRpc
from http_api.errors import Conflict, ServiceError
from http_api.types import GetOptions, typed_bucket
from ring.position import storage_key

T = TypeVar("T")
EPOCH = 1_800_000_000.0  # the simulated wall clock starts here
BUCKET = b"carts"

KINDS = ("crash", "power_loss", "pause", "isolate", "split", "wipe", "lossy")


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault episode: ``kind`` on ``node`` from ``at`` for ``length`` seconds."""

    at: float
    kind: str
    node: str
    length: float

    def __str__(self) -> str:
        return f"t={self.at:.2f}s {self.kind} {self.node} for {self.length:.2f}s"


@dataclass(frozen=True, slots=True)
class SimSettings:
    nodes: int = 4
    keys: int = 4
    clients: int = 3
    duration_s: float = 20.0  # workload and faults
    converge_s: float = 60.0  # after healing, how long replicas may take to agree
    faults: int = 5
    net: NetConfig = field(
        default_factory=lambda: NetConfig(delay_s=(0.0005, 0.01), loss=0.01, duplicate=0.01)
    )
    node: tuple[tuple[str, Any], ...] = ()  # NodeConfig settings over the simulation's own
    first_release: tuple[str, ...] = ()  # nodes that speak the first release's protocol (v1)
    workload: str = "carts"  # or "counters", "sets" (dynamo.tools.chaos.datatypes_work)


def make_schedule(rng: random.Random, settings: SimSettings) -> list[Fault]:
    """Episodes one after another (at most one node impaired at a time)."""
    out: list[Fault] = []
    t = rng.uniform(1.0, 3.0)
    for _ in range(settings.faults):
        length = rng.uniform(1.0, 5.0)
        if t + length > settings.duration_s:
            break
        node = f"n{rng.randrange(settings.nodes) + 1}"
        out.append(Fault(round(t, 3), rng.choice(KINDS), node, round(length, 3)))
        t += length + rng.uniform(0.5, 3.0)
    return out


@dataclass
class Outcome:
    seed: int
    schedule: list[Fault]
    history: carts.History
    verdict: carts.Verdict
    converged_after_s: float | None
    virtual_s: float

    @property
    def passed(self) -> bool:
        return self.verdict.passed and self.converged_after_s is not None

    def report(self) -> str:
        v = self.verdict
        lines = [
            f"seed {self.seed}: {'PASS' if self.passed else 'FAIL'}"
            f" ops={self.history.ops} acked={self.history.acknowledged}"
            f" indeterminate={self.history.indeterminate_count} lost={v.lost_count}"
            f" max_siblings={self.history.max_siblings}"
            f" converged_after={self.converged_after_s} virtual={self.virtual_s:.1f}s",
        ]
        if not self.passed:
            lines += [f"  fault: {f}" for f in self.schedule]
            lines += [f"  lost {k}: {sorted(ids)}" for k, ids in v.lost.items()]
            lines += [f"  divergent: {v.divergent}"] if v.divergent else []
            lines += [f"  bug: {b}" for b in v.bugs[:5]]
            lines += [
                f"  siblings {a} and {b}: one had read the other" for a, b in v.not_concurrent[:5]
            ]
        return "\n".join(lines)


class SimCluster:
    def __init__(self, seed: int, settings: SimSettings, *, bug: str | None = None) -> None:
        self.seed = seed
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        self.rng = random.Random(seed)
        self.net = Network(random.Random(seed ^ 0x5EED), settings.net)
        self.ids = [f"n{i + 1}" for i in range(settings.nodes)]
        self.disks: dict[str, Disk] = {n: Disk() for n in self.ids}
        self.nodes: dict[str, Node] = {}
        self.work: dict[str, set[asyncio.Task[Any]]] = {n: set() for n in self.ids}
        self.skew: dict[str, float] = dict.fromkeys(self.ids, 0.0)  # seconds off true time
        self.bug = bug

    def config(self, node_id: str) -> NodeConfig:
        settings: dict[str, Any] = dict(
            preset="test",
            node_id=node_id,
            data_dir=Path("/nonexistent") / node_id,
            host=node_id,
            peer_port=1,
            seeds=tuple(f"{n}:1" for n in self.ids if n != node_id),
            tokens_per_node=16,
        )
        settings.update(self.settings.node)
        return with_preset(settings)

    def env(self, node_id: str) -> Env:
        rng = random.Random(f"{self.seed}/{node_id}/{len(self.work[node_id])}/{self.loop.time()}")
        return Env(
            monotonic=self.loop.time,
            wallclock=lambda: EPOCH + self.loop.time() + self.skew[node_id],
            rng=rng,
        )

    def jump(self, node_id: str, seconds: float) -> None:
        """Set a node's wall clock ``seconds`` off true time (NTP stepping it, a VM
        resumed): its monotonic clock runs on undisturbed."""
        self.skew[node_id] = seconds

    async def start(self, node_id: str) -> None:
        cfg = self.config(node_id)
        env = self.env(node_id)
        store = MemStore(node_id, self.disks[node_id], env.rng)
        version = V1 if node_id in self.settings.first_release else PROTOCOL_VERSION
        rpc = SimRpc(node_id, cfg.peer_addr, self.net, max_version=version)
        node = Node(cfg, env=env, store=store, rpc=rpc)
        if self.bug:
            inject_bug(node, self.bug)
        self.nodes[node_id] = node
        await node.start(http=False)

    async def start_all(self) -> None:
        """Start every node, and return once each sees all of them in its ring."""
        for n in self.ids:
            await self.start(n)
        while any(len(node.cluster.ring) < len(self.ids) for node in self.nodes.values()):
            await asyncio.sleep(0.1)

    def stop_all(self) -> None:
        for n in list(self.nodes):
            self.crash(n, power_loss=False)

    def up(self) -> list[str]:
        return [n for n in self.ids if n in self.nodes]

    def addr(self, node_id: str) -> str:
        return f"{node_id}:1"

    def crash(self, node_id: str, power_loss: bool) -> None:
        node = self.nodes.pop(node_id, None)
        if node is None:
            return
        assert isinstance(node.rpc, SimRpc)
        assert isinstance(node.db, MemStore)
        node.rpc.crash()
        doomed = [*node._tasks, *node.coordinator.background, *self.work[node_id]]
        for t in sorted(doomed, key=_creation_order):  # sets iterate in address order
            t.cancel()
        if node.cluster._task is not None:
            node.cluster._task.cancel()
        self.disks[node_id] = node.db.crash(power_loss)

    def wipe(self, node_id: str) -> None:
        self.disks[node_id] = Disk()

    async def on(self, node_id: str, aw: Awaitable[T]) -> T:
        """Run ``aw`` as work of a node's process: it dies with the node."""
        task = asyncio.ensure_future(aw)
        self.work[node_id].add(task)
        try:
            return await task
        finally:
            self.work[node_id].discard(task)

    def caught_up(self) -> bool:
        """Every running node has every hint delivered and every peer's log applied."""
        for node in self.nodes.values():
            if node.db.hint_counts():
                return False
            for peer, p in node.ownership.aae.peers.items():
                if peer in self.nodes and (p.lag or not p.complete):
                    return False
        return True


BUGS = ("ack-before-write", "drop-context-on-forward", "no-hint-expiry", "no-marker-read")


def _creation_order(task: asyncio.Task[Any]) -> int:
    name = task.get_name()
    return int(name.rpartition("-")[2]) if name.rpartition("-")[2].isdigit() else 0


def inject_bug(node: Node, bug: str) -> None:
    """Break a node on purpose, to show the checks catch it (tests and ``dynamo sim --bug``)."""
    coordinator = node.coordinator
    if bug == "ack-before-write":
        original_put = coordinator.put

        async def ack_first(*args: Any, **kwargs: Any) -> Any:
            async def later() -> None:
                await asyncio.sleep(0.2)
                await original_put(*args, **kwargs)

            task = asyncio.ensure_future(later())
            coordinator.background.add(task)  # it dies with the node, like buffered writes
            task.add_done_callback(coordinator.background.discard)
            return None

        coordinator.put = ack_first  # type: ignore[method-assign]
    elif bug == "drop-context-on-forward":
        original = node.coordinator.forwarding.handle_coord_put

        async def no_context(req: ForwardedPut, peer: str) -> bytes | None:
            return await original(dataclasses.replace(req, context=None), peer)

        node.rpc.register(methods.COORD_PUT, no_context)
    elif bug == "no-hint-expiry":  # hints live forever, as before issue 18
        node.replica.hint_expired = lambda stored_at_ms: False  # type: ignore[method-assign]
    elif bug == "no-marker-read":  # a primary holding only a marker answers "not found"
        replica = node.replica
        read_raw = replica.read_raw

        def notfound_on_markers(objkey: bytes, hint_for: str | None = None) -> bytes | None:
            return replica.store.get_raw(objkey) if hint_for is None else read_raw(objkey, hint_for)

        replica.read_raw = notfound_on_markers  # type: ignore[method-assign]
    else:
        raise ValueError(f"unknown bug {bug!r}: use one of {', '.join(BUGS)}")


async def _scenario(
    seed: int, settings: SimSettings, schedule: list[Fault] | None, bug: str | None
) -> Outcome:
    sim = SimCluster(seed, settings, bug=bug)
    rng = sim.rng
    schedule = make_schedule(rng, settings) if schedule is None else schedule
    for n in sim.ids:
        await sim.start(n)
    loop = sim.loop
    # Let the cluster form before the workload.
    while any(len(node.cluster.ring) != settings.nodes for node in sim.nodes.values()):
        await asyncio.sleep(0.1)
        if loop.time() > 30:
            break
    start = loop.time()
    end = start + settings.duration_s
    history = carts.History()
    keys = [f"k{i}" for i in range(settings.keys)]

    work = SimClients(sim, rng, BUCKET, EPOCH)
    ledger = datatypes_work.Ledger()
    bucket = BUCKET
    if settings.workload != "carts":
        name, kind = datatypes_work.TYPES[settings.workload]
        await make_type(sim, name, kind)
        bucket = typed_bucket(name.encode(), DATATYPE_BUCKET)

    async def pause() -> None:
        await asyncio.sleep(rng.uniform(0.01, 0.1))

    def client(c: int) -> Awaitable[None]:
        crng = random.Random(seed * 1000 + c)
        going = lambda: loop.time() < end  # noqa: E731
        if settings.workload == "counters":
            return datatypes_work.counter_client(
                history, ledger, c, keys, crng, work.update, going, pause
            )
        if settings.workload == "sets":
            return datatypes_work.set_client(
                history, ledger, c, keys, crng, work.update, work.fetch, going, pause
            )
        return carts.cart_client(history, c, keys, crng, work.get, work.put, going, pause)

    clients = [asyncio.ensure_future(client(c)) for c in range(settings.clients)]
    for fault in schedule:
        await asyncio.sleep(max(0.0, start + fault.at - loop.time()))
        await apply_fault(sim, fault)
        await asyncio.sleep(fault.length)
        await heal_fault(sim, fault)
    await asyncio.gather(*clients)
    # Heal everything, then wait for convergence.
    sim.net.groups.clear()
    sim.net.config = replace(sim.net.config, loss=0.0)
    for n in sim.ids:
        if n in sim.net.paused:
            sim.net.resume(sim.addr(n))
        if n not in sim.nodes:
            await sim.start(n)
    healed = loop.time()
    converged_at: float | None = None
    final: dict[str, Any] = {}
    divergent: list[str] = []
    while loop.time() - healed < settings.converge_s:
        await asyncio.sleep(0.5)
        divergent = _divergent(sim, keys, bucket)
        if not divergent and sim.caught_up():
            converged_at = loop.time() - healed
            break
    node = sim.nodes[sim.ids[0]]
    for key in keys:
        try:
            if settings.workload == "carts":
                res = await node.fetch(BUCKET, key.encode(), GetOptions(r="all"))
                final[key] = set().union(*(carts.decode_set(s.content.value) for s in res.live))
            else:
                got = await node.fetch_datatype(bucket, key.encode(), GetOptions(r="all"))
                final[key] = got.value
        except ServiceError as e:
            history.bugs.append(f"final read of {key}: {e}")
    if settings.workload == "carts":
        verdict = carts.check(history, final, divergent)
    else:
        verdict = datatypes_work.check(settings.workload, history, ledger, final, divergent)
    for n in list(sim.nodes):
        sim.crash(n, power_loss=False)
    await asyncio.sleep(0)
    return Outcome(seed, schedule, history, verdict, converged_at, loop.time())


async def make_type(sim: SimCluster, name: str, kind: str) -> None:
    """Create a bucket type on one node and activate it once gossip has spread it."""
    node = sim.nodes[sim.ids[0]]
    await node.create_bucket_type(name, {"datatype": kind})
    while True:
        try:
            await node.activate_bucket_type(name)
        except Conflict:
            await asyncio.sleep(0.1)
            continue
        break
    while not all(n.cluster.types.get(name) for n in sim.nodes.values()):
        await asyncio.sleep(0.1)


def _divergent(sim: SimCluster, keys: list[str], bucket: bytes = BUCKET) -> list[str]:
    out = []
    for key in keys:
        pos, objkey = storage_key(bucket, key.encode())
        ring = next(iter(sim.nodes.values())).cluster.ring
        copies = set()
        for p in ring.primaries(pos, 3):
            node = sim.nodes.get(p)
            raw = node.db.get_raw(objkey) if node is not None else None
            copies.add(objects.history_bytes(raw) if raw is not None else b"")
        if len(copies) > 1:
            out.append(key)
    return out


async def apply_fault(sim: SimCluster, f: Fault) -> None:
    addr = sim.addr(f.node)
    if f.kind in ("crash", "power_loss", "wipe"):
        if f.kind == "wipe" and not sim.caught_up():
            return  # never wipe the last copies of something
        sim.crash(f.node, power_loss=f.kind == "power_loss")
        if f.kind == "wipe":
            sim.wipe(f.node)
    elif f.kind == "pause":
        sim.net.paused.add(addr)
    elif f.kind == "isolate":
        sim.net.groups = [{addr}, {sim.addr(n) for n in sim.ids if n != f.node}]
    elif f.kind == "split":
        others = [n for n in sim.ids if n != f.node]
        minority = {f.node, others[0]} if len(sim.ids) >= 4 else {f.node}
        sim.net.groups = [
            {sim.addr(n) for n in minority},
            {sim.addr(n) for n in sim.ids if n not in minority},
        ]
    elif f.kind == "lossy":
        sim.net.config = replace(sim.net.config, loss=0.2)


async def heal_fault(sim: SimCluster, f: Fault) -> None:
    if f.kind in ("crash", "power_loss", "wipe"):
        if f.node not in sim.nodes:
            await sim.start(f.node)
    elif f.kind == "pause":
        sim.net.resume(sim.addr(f.node))
    elif f.kind in ("isolate", "split"):
        sim.net.groups = []
    elif f.kind == "lossy":
        sim.net.config = replace(sim.net.config, loss=sim.settings.net.loss)


def run(
    seed: int,
    settings: SimSettings | None = None,
    schedule: list[Fault] | None = None,
    bug: str | None = None,
) -> Outcome:
    """One seeded run on a fresh virtual-time loop. A run that deadlocks or spins
    without letting time pass fails with that as its bug, rather than hanging."""
    settings = settings or SimSettings()
    try:
        return on_virtual_time(lambda: _scenario(seed, settings, schedule, bug))
    except (Deadlock, Livelock) as e:
        planned = make_schedule(random.Random(seed), settings) if schedule is None else schedule
        verdict = carts.Verdict(bugs=[f"{type(e).__name__}: {e}"])
        return Outcome(seed, planned, carts.History(), verdict, None, 0.0)


def on_virtual_time(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` on a fresh virtual-time loop; what it leaves running is cancelled."""
    logging.getLogger().setLevel(logging.CRITICAL)
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        shut_down(loop)


SHUTDOWN_ROUNDS = 100  # cancel-and-wait rounds before what is left is given up on


def shut_down(loop: VirtualTimeLoop) -> None:
    """Cancel everything a run left on ``loop``, let it finish, and close the loop.

    This also holds when the run was aborted midway (a test's timeout fires inside
    the loop): every task is cancelled and awaited, round after round, since a task
    may start others while it unwinds, and what is garbage afterwards is collected
    here, so nothing of the aborted run (a pending task, a coroutine never
    awaited) surfaces later in another test.
    """
    for _ in range(SHUTDOWN_ROUNDS):
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if not tasks:
            break
        for t in tasks:
            t.cancel()
        try:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        except (Deadlock, Livelock):
            continue  # a task waits on something that will never come: cancel it again
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    gc.collect()


def shrink(
    outcome: Outcome,
    settings: SimSettings,
    bug: str | None = None,
    check: Callable[[Outcome], bool] | None = None,
) -> list[Fault]:
    """The smallest sub-schedule (one fault removed at a time) that still fails."""
    failing = check or (lambda o: not o.passed)
    schedule = list(outcome.schedule)
    changed = True
    while changed:
        changed = False
        for i in range(len(schedule)):
            candidate = schedule[:i] + schedule[i + 1 :]
            if failing(run(outcome.seed, settings, candidate, bug)):
                schedule = candidate
                changed = True
                break
    return schedule
