"""A flapping link: its schedule as a table, and the thread that runs it against a fake."""

from __future__ import annotations

import pytest

from dynamo.tools.lab.flap import Flap, Toggle, flap_schedule
from tests.lab.probes import wait_until


def _cuts(schedule: tuple[Toggle, ...]) -> list[tuple[float, bool]]:
    return [(t.at_s, t.cut) for t in schedule]


@pytest.mark.parametrize(
    ("period_s", "duration_s", "expected"),
    [
        (1.0, 2.2, [(0, True), (0.5, False), (1, True), (1.5, False), (2, True), (2.2, False)]),
        (1.0, 1.0, [(0, True), (0.5, False), (1.0, False)]),  # ends healed, never cut at the end
        (1.0, 0.3, [(0, True), (0.3, False)]),  # shorter than half a period: one cut
    ],
)
def test_schedule_cuts_half_of_each_period_and_always_ends_healed(
    period_s: float, duration_s: float, expected: list[tuple[float, bool]]
) -> None:
    assert _cuts(flap_schedule(period_s, duration_s)) == expected


@pytest.mark.parametrize(
    ("period_s", "duration_s", "message"),
    [(0.01, 1.0, "period_s=0.01: use at least 0.1 s"), (1.0, 0, "use a positive duration")],
)
def test_a_schedule_that_cannot_run_is_refused(
    period_s: float, duration_s: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        flap_schedule(period_s, duration_s)


def test_flap_runs_its_schedule_then_stops_by_itself_healed() -> None:
    calls: list[bool] = []
    flap = Flap(flap_schedule(0.1, 0.25), calls.append).start()
    flap.wait(5.0)
    assert calls == [True, False, True, False, True, False]
    assert flap.toggles_done == len(calls)
    assert not flap.running


def test_stop_ends_a_long_flap_at_once_and_heals() -> None:
    calls: list[bool] = []
    flap = Flap(flap_schedule(10.0, 600.0), calls.append).start()
    wait_until(lambda: calls == [True], 5.0, "the first cut")
    flap.stop(timeout_s=5.0)
    assert calls == [True, False]
    assert not flap.running


def test_a_failing_toggle_stops_the_flap_heals_and_is_raised_by_wait() -> None:
    calls: list[bool] = []

    def set_cut(cut: bool) -> None:
        calls.append(cut)
        if len(calls) == 2:
            raise OSError("nft failed")

    flap = Flap(flap_schedule(0.1, 10.0), set_cut).start()
    with pytest.raises(OSError, match="nft failed"):
        flap.wait(5.0)
    assert calls == [True, False, False]  # the failed heal, then the final one
