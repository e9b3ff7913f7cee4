"""One process's share of the load: its connections, their reconnects and timeouts, and
the phases of a run (start, warmup, run), reporting one ``Tally`` per second.

``Worker`` runs on any event loop (the coordinator uses one to preload); ``worker_main``
is the entry of a spawned worker process and talks to the coordinator over a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from time import perf_counter_ns
from typing import Any

from dynamo.tools.bench.config import BenchConfig, Target
from dynamo.tools.bench.connection import BenchConnection, RequestFactory, Workload
from dynamo.tools.bench.http1 import RequestFactory as HttpRequests
from dynamo.tools.bench.keys import key_chooser
from dynamo.tools.bench.pb import PbRequestFactory
from dynamo.tools.bench.tally import CONNECT, TIMEOUT, Tally

RECONNECT_PAUSE_S = 0.05
SWEEP_INTERVAL_S = 0.1
REPORT_INTERVAL_S = 1.0

Report = Callable[[str, float, Tally], None]


async def sleep_until(t: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``t``."""
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


@dataclass(frozen=True, slots=True)
class PhaseTimes:
    window_s: float  # measured seconds (after warmup)
    cpu_s: float  # this process's CPU seconds in that window


class Worker:
    """Connections to ``targets`` (one per entry) driven by ``workload``."""

    def __init__(
        self,
        targets: Sequence[Target],
        factories: dict[Target, RequestFactory],
        workload: Workload,
        timeout_s: float,
        pb: bool = False,
    ) -> None:
        self.targets = list(targets)
        self.pb = pb  # connect to the targets' PB ports
        self.factories = factories
        self.workload = workload
        self.timeout_ns = int(timeout_s * 1e9)
        self.connect_timeout_s = timeout_s
        self.tally = Tally()
        self.started = False
        self.stopping = False
        self.conns: set[BenchConnection] = set()
        self.ready = asyncio.Event()  # every connection tried once
        self.drained = asyncio.Event()  # the workload ran out and nothing is in flight
        self._stop = asyncio.Event()
        self._tried = 0

    # --- ConnectionOwner -------------------------------------------------------------------

    def connection_made(self, conn: BenchConnection) -> None:
        self.conns.add(conn)
        if self.stopping:
            if conn.transport is not None:
                conn.transport.close()
        elif self.started:
            conn.send_next()

    def connection_lost(self, conn: BenchConnection) -> None:
        self.conns.discard(conn)
        self._check_drained()

    def connection_idle(self, conn: BenchConnection) -> None:
        self._check_drained()

    def _check_drained(self) -> None:
        if self.workload.exhausted and not any(c.sent_ns for c in self.conns):
            self.drained.set()

    # --- lifecycle -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Worker]:
        """Connect (and keep reconnecting) every slot until the block ends."""
        async with asyncio.TaskGroup() as tg:
            for target in self.targets:
                tg.create_task(self._slot(target))
            tg.create_task(self._sweep())
            try:
                yield self
            finally:
                self.stop()

    def go(self) -> None:
        """Start sending, on every open connection; counts start afresh."""
        self.started = True
        self.tally = Tally()
        for conn in list(self.conns):
            conn.send_next()

    def stop(self) -> None:
        self.stopping = True
        self._stop.set()
        for conn in list(self.conns):
            conn.sent_ns = 0  # abandoned, not an error
            if conn.transport is not None:
                conn.transport.close()

    def swap_tally(self) -> Tally:
        old, self.tally = self.tally, Tally()
        return old

    async def _slot(self, target: Target) -> None:
        loop = asyncio.get_running_loop()
        factory = self.factories[target]
        first = True
        while not self._stop.is_set():
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    _, conn = await loop.create_connection(
                        lambda: BenchConnection(self, factory, self.workload),
                        target.host,
                        target.pb_port if self.pb else target.port,
                    )
            except (OSError, TimeoutError):
                conn = None
                self.tally.error(CONNECT)
            if first:
                first = False
                self._tried += 1
                if self._tried == len(self.targets):
                    self.ready.set()
            if conn is not None:
                await conn.closed
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECONNECT_PAUSE_S):
                        await self._stop.wait()

    async def _sweep(self) -> None:
        """Every 100 ms, fail requests in flight longer than the timeout."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SWEEP_INTERVAL_S):
                    await self._stop.wait()
            now = perf_counter_ns()
            for conn in list(self.conns):
                if conn.sent_ns and now - conn.sent_ns > self.timeout_ns:
                    conn.fail(TIMEOUT)

    # --- phases ----------------------------------------------------------------------------

    async def preload(self, timeout_s: float) -> Tally:
        """Run a workload that ends (``MODE_PRELOAD``) to its end; its tally."""
        self.go()
        self._check_drained()
        async with asyncio.timeout(timeout_s):
            await self.drained.wait()
        return self.swap_tally()

    async def timed(
        self, start_at: float, warmup_s: float, duration_s: float, report: Report
    ) -> PhaseTimes:
        """Load from ``start_at`` (monotonic) through warmup and run, reporting each second
        and at each phase's end ``report(phase, interval_s, tally)``."""
        await sleep_until(start_at)
        self.go()
        last = time.monotonic()
        phase = "warmup" if warmup_s > 0 else "run"
        run_start = start_at + warmup_s
        phase_end = run_start if phase == "warmup" else run_start + duration_s
        next_tick = start_at + REPORT_INTERVAL_S
        run_t0, cpu0 = last, time.process_time()
        while True:
            t = min(next_tick, phase_end)
            await sleep_until(t)
            now = time.monotonic()
            report(phase, now - last, self.swap_tally())
            last = now
            if t == next_tick:
                next_tick += REPORT_INTERVAL_S
            if t == phase_end:
                if phase == "run":
                    break
                phase, phase_end = "run", run_start + duration_s
                run_t0, cpu0 = now, time.process_time()
        times = PhaseTimes(window_s=last - run_t0, cpu_s=time.process_time() - cpu0)
        self.stop()
        return times


def make_worker(cfg: BenchConfig, targets: Sequence[Target], workload: Workload) -> Worker:
    value = b"x" * cfg.value_bytes
    counter = cfg.bucket_type if cfg.workload == "counter" else None
    factories: dict[Target, RequestFactory] = {}
    for t in set(targets):
        if cfg.protocol == "pb":
            factories[t] = PbRequestFactory(cfg.bucket, cfg.r, cfg.w, value, counter)
        else:
            factories[t] = HttpRequests(
                t.host_header,
                cfg.bucket,
                cfg.get_query,
                cfg.put_query,
                value,
                counter,
                indexes=cfg.indexes,
                index_query=cfg.index_query,
            )
    return Worker(targets, factories, workload, cfg.timeout_s, pb=cfg.protocol == "pb")


# --- the worker process ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    index: int
    config: BenchConfig
    targets: tuple[Target, ...]  # every node; this process uses its share

    def my_targets(self) -> list[Target]:
        """One entry per connection: connection c goes to node c mod nodes."""
        n = len(self.targets)
        return [self.targets[c % n] for c in self.config.connections_of(self.index)]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's when installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def loop_name() -> str:
    try:
        from importlib.metadata import version

        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return f"uvloop {version('uvloop')}"


async def _recv(conn: Connection) -> Any:
    """The next message on ``conn`` without blocking the loop."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def readable() -> None:
        if fut.done():
            return
        try:
            fut.set_result(conn.recv())
        except (EOFError, OSError) as e:
            fut.set_exception(e)

    loop.add_reader(conn.fileno(), readable)
    try:
        return await fut
    finally:
        loop.remove_reader(conn.fileno())


async def _process_main(spec: WorkerSpec, conn: Connection) -> None:
    cfg = spec.config
    rng = random.Random(cfg.seed * 1000 + spec.index)
    keys = key_chooser(cfg.dist, cfg.keys, cfg.zipf_s, rng)
    worker = make_worker(cfg, spec.my_targets(), Workload(cfg.workload, keys, rng, cfg.read_ratio))

    def report(phase: str, interval_s: float, tally: Tally) -> None:
        conn.send(("tally", spec.index, phase, interval_s, tally.to_wire()))

    async with worker.running():
        await worker.ready.wait()
        conn.send(("ready", spec.index))
        msg = await _recv(conn)
        if msg[0] != "start":
            return
        times = await worker.timed(float(msg[1]), cfg.warmup_s, cfg.duration_s, report)
    conn.send(("done", spec.index, times.window_s, times.cpu_s))


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """Entry point of a worker process."""
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(_process_main(spec, conn))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass  # the coordinator went away
    except BaseException:
        with contextlib.suppress(OSError):
            conn.send(("failed", spec.index, traceback.format_exc()))
    finally:
        conn.close()
