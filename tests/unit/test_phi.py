"""Phi accrual: the math row by row, then the detector against a manual clock."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from gossip.phi import PhiAccrualDetector, phi_value


def akka_phi(elapsed: float, mean: float, std: float) -> float:
    """Akka's literal two-branch form, as the reference."""
    y = (elapsed - mean) / std
    e = math.exp(-y * (1.5976 + 0.070566 * y * y))
    if elapsed > mean:
        return -math.log10(e / (1.0 + e))
    return -math.log10(1.0 - 1.0 / (1.0 + e))


@pytest.mark.parametrize(
    ("elapsed", "mean", "std", "want"),
    [
        (1.0, 1.0, 0.5, 0.301030),  # at the mean: log10(2)
        (0.0, 1.0, 0.5, 0.009999),  # two std early
        (1.5, 1.0, 0.5, 0.799508),  # one std late
        (2.0, 1.0, 0.5, 1.642828),
        (3.0, 1.0, 0.5, 4.736695),
        (3.5, 1.0, 0.5, 7.299947),
        (5.0, 3.0, 0.5, 4.736695),  # only (elapsed - mean) / std matters
        (5.6, 3.0, 0.5, 7.917043),
        (10.0, 3.0, 1.0, 15.368526),
        (2.0, 1.0, 0.2, 7.299947),
        (0.5, 1.0, 0.1, 0.0),  # far too early: no suspicion at all
    ],
)
def test_phi_value_table(elapsed: float, mean: float, std: float, want: float) -> None:
    assert phi_value(elapsed, mean, std) == pytest.approx(want, abs=1e-6)
    assert phi_value(elapsed, mean, std) == pytest.approx(akka_phi(elapsed, mean, std), abs=1e-9)


def test_phi_value_is_finite_far_from_the_mean() -> None:
    assert phi_value(-1e6, 1.0, 0.5) == 0.0
    late = phi_value(1e6, 1.0, 0.5)
    assert math.isfinite(late)
    assert late > 1e15


def test_phi_value_grows_with_silence() -> None:
    values = [phi_value(t / 10.0, 3.0, 0.5) for t in range(0, 200)]
    assert values == sorted(values)


@pytest.mark.parametrize("std", [0.0, -1.0, math.nan])
def test_phi_value_rejects_a_non_positive_std(std: float) -> None:
    with pytest.raises(ValueError, match="std"):
        phi_value(1.0, 1.0, std)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": math.inf}, "threshold"),
        ({"window": 0}, "window"),
        ({"min_std_s": 0.0}, "min_std_s"),
        ({"acceptable_pause_s": -1.0}, "acceptable_pause_s"),
        ({"first_interval_s": 0.0}, "first_interval_s"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        PhiAccrualDetector(**kwargs)  # type: ignore[arg-type]


def test_a_node_never_heard_of_has_phi_zero_and_is_not_up() -> None:
    fd = PhiAccrualDetector()
    assert fd.phi("x", 100.0) == 0.0
    assert not fd.is_up("x", 100.0)
    assert fd.suspected_at("x") is None


def test_the_first_heartbeat_registers_the_node_as_up() -> None:
    fd = PhiAccrualDetector()
    fd.heartbeat("x", 10.0)
    assert fd.is_up("x", 10.0)
    assert fd.is_up("x", 12.0)
    assert fd.nodes() == ["x"]


def beat_regularly(fd: PhiAccrualDetector, node: str, count: int, interval: float = 1.0) -> float:
    t = 0.0
    for _ in range(count):
        fd.heartbeat(node, t)
        t += interval
    return t - interval


def silence_until_suspected(fd: PhiAccrualDetector, node: str, last: float) -> float:
    t = last
    while fd.phi(node, t) < fd.threshold:
        t += 0.01
        assert t < last + 60.0, "never suspected"
    return t - last


@pytest.mark.parametrize("beats", [2, 5, 30, 200])
def test_a_silent_node_reaches_phi_8_within_5_to_8_seconds(beats: int) -> None:
    fd = PhiAccrualDetector()
    last = beat_regularly(fd, "x", beats)
    assert 5.0 <= silence_until_suspected(fd, "x", last) <= 8.0


def test_a_jittery_node_is_never_suspected() -> None:
    seed = 1234
    rng = random.Random(seed)
    fd = PhiAccrualDetector()
    arrivals = [i + rng.uniform(-0.5, 0.5) for i in range(2000)]
    worst = 0.0
    for previous, arrival in itertools.pairwise(arrivals):
        fd.heartbeat("x", previous)
        just_before = arrival - 1e-9
        worst = max(worst, fd.phi("x", just_before))
        assert fd.is_up("x", just_before), f"suspected at {just_before} (seed {seed})"
    assert worst < 1.0, f"worst phi {worst} (seed {seed})"


def test_is_up_agrees_with_phi_below_threshold() -> None:
    rng = random.Random(7)
    fd = PhiAccrualDetector(threshold=3.0, min_std_s=0.1, acceptable_pause_s=0.5)
    t = 0.0
    for _ in range(50):
        t += rng.uniform(0.5, 1.5)
        fd.heartbeat("x", t)
    crossing = fd.suspected_at("x")
    assert crossing is not None
    assert fd.phi("x", crossing) == pytest.approx(3.0, abs=1e-9)
    for step in [*range(-100, 0), *range(1, 100)]:  # at the crossing itself: rounding
        now = crossing + step * 0.013
        assert fd.is_up("x", now) == (fd.phi("x", now) < 3.0)


def test_split_divides_peers_in_order() -> None:
    fd = PhiAccrualDetector()
    beat_regularly(fd, "a", 10)
    fd.heartbeat("b", 9.0)
    up, down = fd.split(["c", "b", "a"], 9.5)
    assert (up, down) == (["b", "a"], ["c"])
    up, down = fd.split(["c", "b", "a"], 30.0)
    assert (up, down) == ([], ["c", "b", "a"])


def test_the_interval_ending_an_outage_is_not_learned() -> None:
    fd = PhiAccrualDetector()
    last = beat_regularly(fd, "x", 50)
    before = silence_until_suspected(fd, "x", last)
    fd.heartbeat("x", last + 120.0)  # came back after two minutes
    after = silence_until_suspected(fd, "x", last + 120.0)
    assert after == pytest.approx(before, abs=0.05)


def test_the_window_bounds_what_is_remembered() -> None:
    fd = PhiAccrualDetector(window=10, min_std_s=0.01, acceptable_pause_s=0.0)
    rng = random.Random(3)
    t = 0.0
    intervals: list[float] = []
    fd.heartbeat("x", t)
    for _ in range(5000):
        interval = rng.uniform(0.9, 1.1) if len(intervals) < 4990 else rng.uniform(1.1, 1.2)
        t += interval
        intervals.append(interval)
        fd.heartbeat("x", t)
    recent = intervals[-10:]
    mean, std = statistics.fmean(recent), statistics.pstdev(recent)
    assert fd.phi("x", t + 1.5) == pytest.approx(phi_value(1.5, mean, max(std, 0.01)), rel=1e-9)


def test_reset_forgets_the_intervals_but_not_the_last_arrival() -> None:
    fd = PhiAccrualDetector()
    last = beat_regularly(fd, "x", 100, interval=4.0)  # learned: a beat every 4 s
    assert fd.is_up("x", last + 7.0)
    fd.reset("x")
    assert fd.phi("x", last) == pytest.approx(phi_value(0.0, 1.0 + 2.0, 0.5))
    assert not fd.is_up("x", last + 7.0)  # back to the assumed 1 s rhythm
    fd.reset("nobody")
    assert fd.nodes() == ["x"]


def test_forget_makes_a_node_never_heard_of() -> None:
    fd = PhiAccrualDetector()
    fd.heartbeat("x", 0.0)
    fd.forget("x")
    assert fd.phi("x", 1.0) == 0.0
    assert not fd.is_up("x", 1.0)
    fd.forget("x")


def test_an_out_of_order_arrival_is_ignored() -> None:
    fd = PhiAccrualDetector()
    last = beat_regularly(fd, "x", 10)
    phi = fd.phi("x", last + 3.0)
    fd.heartbeat("x", last - 0.5)
    assert fd.phi("x", last + 3.0) == phi
