"""The long-outage scenario of deleted keys: seeds pass, and it catches what it guards."""

from __future__ import annotations

import os

import pytest

from dynamo.tools.simulation.outage import VARIANTS, run_outage

pytestmark = pytest.mark.sim

SEEDS = int(os.environ.get("DYNAMO_SIM_OUTAGE_SEEDS", "60"))
CHUNK = 10  # as in test_simulation: a slow day costs time, not a failure


@pytest.mark.parametrize(
    "first", range(0, SEEDS, CHUNK), ids=lambda f: f"seeds{f}-{min(f + CHUNK, SEEDS) - 1}"
)
def test_outage_seeds_pass(first: int) -> None:
    failures = [
        o.report()
        for o in (run_outage(s) for s in range(first, min(first + CHUNK, SEEDS)))
        if not o.passed
    ]
    assert not failures, "\n".join(failures[:3])


@pytest.mark.parametrize(
    ("bug", "variant"),
    [("no-hint-expiry", "long-outage"), ("no-marker-read", "marker-read")],
)
def test_the_scenario_catches_the_bug_each_fix_removed(bug: str, variant: str) -> None:
    """Without hint expiry, a stand-in back after the markers expired brings the keys
    back; without marker reads, a read meeting markers and an old hint returns it."""
    outcomes = [run_outage(s, bug=bug) for s in range(8)]
    caught = [o.seed for o in outcomes if not o.passed]
    assert caught, f"{bug} went unnoticed in seeds 0-7"
    assert {VARIANTS[s % 2] for s in caught} == {variant}
