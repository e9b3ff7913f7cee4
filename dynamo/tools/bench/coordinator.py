"""The coordinator: spawns the worker processes, starts them together, merges the tallies
they send each second and prints a progress line on stderr.

Messages (pickled over one pipe per worker), worker to coordinator:
``("ready", i)``, ``("tally", i, phase, interval_s, tally)``, ``("done", i, window_s, cpu_s)``,
``("failed", i, traceback)``; coordinator to worker: ``("start", monotonic_time)``,
``("abort",)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TextIO

from dynamo.tools.bench.config import BenchConfig, Target
from dynamo.tools.bench.tally import Tally
from dynamo.tools.bench.worker import WorkerSpec, worker_main

READY_TIMEOUT_S = 60.0
START_DELAY_S = 0.2
FINISH_GRACE_S = 30.0


class BenchError(RuntimeError):
    """The run could not be carried out (a worker failed, a phase timed out)."""


@dataclass
class RunOutcome:
    """What the workers measured, merged."""

    run: Tally = field(default_factory=Tally)
    warmup: Tally = field(default_factory=Tally)
    window_s: float = 0.0  # the longest worker's measured window
    cpu_s: float = 0.0  # CPU seconds of all workers during the measured window


class Progress:
    """The live line: last second's rate, p99 so far in this phase, errors so far."""

    def __init__(self, out: TextIO | None, procs: int) -> None:
        self.out = out
        self.tty = bool(out is not None and out.isatty())
        self.rates = [0.0] * procs
        self.phase = "start"
        self.t0 = time.monotonic()
        self.wrote = False

    def update(self, index: int, phase: str, interval_s: float, tally: Tally) -> None:
        self.phase = phase
        self.rates[index] = tally.responses / interval_s if interval_s > 0 else 0.0

    def line(self, so_far: Tally) -> str:
        p99_ms = so_far.latency().percentile_ns(0.99) / 1e6
        return (
            f"bench {time.monotonic() - self.t0:6.1f}s {self.phase:<6} "
            f"{sum(self.rates):>9,.0f} req/s  p99 {p99_ms:7.2f} ms  "
            f"errors {so_far.error_count}"
        )

    def show(self, so_far: Tally) -> None:
        if self.out is None:
            return
        text = self.line(so_far)
        if self.tty:
            self.out.write("\r" + text + "\x1b[K")
        else:
            self.out.write(text + "\n")
        self.out.flush()
        self.wrote = True

    def end(self) -> None:
        if self.out is not None and self.tty and self.wrote:
            self.out.write("\n")
            self.out.flush()


async def run_workers(
    cfg: BenchConfig, targets: Sequence[Target], progress: TextIO | None
) -> RunOutcome:
    """Spawn ``cfg.procs`` workers, run warmup and run, return the merged figures."""
    ctx = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    pipes: list[Connection] = []
    procs: list[multiprocessing.process.BaseProcess] = []

    def readable(index: int, conn: Connection) -> None:
        try:
            while conn.poll():
                inbox.put_nowait(conn.recv())
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            inbox.put_nowait(("eof", index))

    try:
        for i in range(cfg.procs):
            parent, child = ctx.Pipe()
            spec = WorkerSpec(i, cfg, tuple(targets))
            p = ctx.Process(
                target=worker_main, args=(spec, child), name=f"bench-worker-{i}", daemon=True
            )
            p.start()
            child.close()
            pipes.append(parent)
            procs.append(p)
            loop.add_reader(parent.fileno(), readable, i, parent)
        return await _collect(cfg, pipes, inbox, Progress(progress, cfg.procs))
    finally:
        for conn in pipes:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(conn.fileno())
            with contextlib.suppress(OSError):
                conn.send(("abort",))
        await asyncio.to_thread(_reap, procs)
        for conn in pipes:
            conn.close()


def _reap(procs: list[multiprocessing.process.BaseProcess]) -> None:
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.terminate()
            p.join(5)


async def _next(inbox: asyncio.Queue[tuple[Any, ...]], deadline: float) -> tuple[Any, ...] | None:
    """The next message, or None at ``deadline`` (monotonic)."""
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            return await inbox.get()
    except TimeoutError:
        return None


def _failure(msg: tuple[Any, ...]) -> BenchError | None:
    if msg[0] == "failed":
        return BenchError(f"bench worker {msg[1]} failed:\n{msg[2]}")
    if msg[0] == "eof":
        return BenchError(f"bench worker {msg[1]} exited before the end of the run")
    return None


async def _collect(
    cfg: BenchConfig,
    pipes: list[Connection],
    inbox: asyncio.Queue[tuple[Any, ...]],
    progress: Progress,
) -> RunOutcome:
    ready: set[int] = set()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while len(ready) < len(pipes):
        msg = await _next(inbox, deadline)
        if msg is None:
            raise BenchError(f"bench workers not ready after {READY_TIMEOUT_S:.0f}s")
        if (err := _failure(msg)) is not None:
            raise err
        if msg[0] == "ready":
            ready.add(msg[1])
    start_at = time.monotonic() + START_DELAY_S
    for conn in pipes:
        conn.send(("start", start_at))
    progress.t0 = start_at

    out = RunOutcome()
    done: set[int] = set()
    end = start_at + cfg.warmup_s + cfg.duration_s + FINISH_GRACE_S
    next_tick = start_at + 1.1  # just after the workers' once-a-second reports
    while len(done) < len(pipes):
        msg = await _next(inbox, min(next_tick, end))
        if msg is None:
            if time.monotonic() >= end:
                raise BenchError("bench workers did not finish in time")
            progress.show(out.run if progress.phase == "run" else out.warmup)
            next_tick += 1.0
            continue
        if msg[0] == "eof" and msg[1] in done:
            continue
        if (err := _failure(msg)) is not None:
            raise err
        if msg[0] == "tally":
            _, index, phase, interval_s, wire = msg
            tally = Tally.from_wire(wire)
            (out.run if phase == "run" else out.warmup).merge(tally)
            progress.update(index, phase, interval_s, tally)
        elif msg[0] == "done":
            _, index, window_s, cpu_s = msg
            done.add(index)
            out.window_s = max(out.window_s, float(window_s))
            out.cpu_s += float(cpu_s)
    progress.show(out.run)
    progress.end()
    return out
