"""The whole-cluster simulation: seeds pass, runs repeat exactly, injected bugs are caught."""

from __future__ import annotations

import os

import pytest

from dynamo.simulation.harness import Fault, SimSettings, run, shrink

pytestmark = pytest.mark.sim

SEEDS = int(os.environ.get("DYNAMO_SIM_SEEDS", "200"))


def test_many_seeds_pass() -> None:
    failures = []
    for seed in range(SEEDS):
        outcome = run(seed)
        if not outcome.passed:
            failures.append(outcome.report())
    assert not failures, "\n".join(failures[:3])


def test_a_seed_replays_exactly() -> None:
    a, b = run(11), run(11)
    assert a.schedule == b.schedule
    assert a.history.acked == b.history.acked
    assert a.history.ops == b.history.ops
    assert a.virtual_s == b.virtual_s


@pytest.mark.parametrize("bug", ["ack-before-write", "drop-context-on-forward"])
def test_injected_bugs_are_caught(bug: str) -> None:
    caught = [seed for seed in range(5) if not run(seed, bug=bug).passed]
    assert caught, f"{bug} went unnoticed in seeds 0-4"


def test_a_failure_shrinks_to_a_smaller_schedule_that_still_fails() -> None:
    settings = SimSettings()
    extra = [Fault(2.0, "pause", "n2", 1.0), Fault(5.0, "isolate", "n3", 1.0)]
    outcome = run(3, settings, schedule=extra, bug="drop-context-on-forward")
    assert not outcome.passed
    small = shrink(outcome, settings, "drop-context-on-forward")
    assert len(small) < len(extra)  # the bug needs no fault at all
    assert not run(3, settings, schedule=small, bug="drop-context-on-forward").passed
