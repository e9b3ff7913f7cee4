"""The virtual-time loop the simulation runs on: time moves as on a real loop."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from dynamo.tools.simulation import harness
from dynamo.tools.simulation.loop import Deadlock, Livelock, VirtualTimeLoop

pytestmark = pytest.mark.sim
T = TypeVar("T")


def on_loop(main: Coroutine[Any, Any, T]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


def test_sleeping_costs_no_real_time_and_moves_the_clock() -> None:
    async def main() -> float:
        await asyncio.sleep(3600)  # virtual time: returns at once, the clock jumps
        return asyncio.get_running_loop().time()

    assert on_loop(main()) == 3600


def test_waiting_until_an_instant_in_steps_shorter_than_a_tick_ends() -> None:
    """Seed 4081 hung here: anti-entropy waited for ``due - now`` = 4.7e-11 s, asyncio
    ran that timer at once (it is within the clock's resolution), and on virtual time
    the clock never moved, so the wait started again, forever."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        due = 10.175616432494747
        await asyncio.sleep(10.175616432447516)  # virtual: jump to seed 4081's instant
        while (wait := due - loop.time()) > 0:
            try:
                await asyncio.wait_for(wake.wait(), wait)
            except TimeoutError:
                pass
        return loop.time()

    assert on_loop(main()) >= 10.175616432494747


def test_a_task_that_never_waits_is_reported_not_run_forever() -> None:
    async def spin() -> None:
        while True:
            await asyncio.sleep(0)

    with pytest.raises(Livelock, match=r"virtual time stuck at 0\.000000s"):
        on_loop(spin())


def test_nothing_to_wait_for_is_a_deadlock() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(Deadlock):
        on_loop(main())


def test_a_run_that_spins_fails_with_its_seed_and_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    async def spinning(*args: object) -> harness.Outcome:
        while True:
            await asyncio.sleep(0)

    monkeypatch.setattr(harness, "_scenario", spinning)
    outcome = harness.run(4081)
    assert not outcome.passed
    assert outcome.schedule == harness.make_schedule(random.Random(4081), harness.SimSettings())
    assert "Livelock" in outcome.report()
