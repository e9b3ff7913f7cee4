"""The HyperLogLog: estimates within 3 standard errors, merges as union, reduces exactly."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo.kv import crdt
from dynamo.kv.crdt import CrdtError, hll

SEED = 20240611
CHUNK = 10_000
DEFAULT = crdt.Limits()


def _fill(elements: list[str], limits: crdt.Limits = DEFAULT) -> hll.Hll:
    state: hll.Hll = crdt.new("hll", limits)
    for at in range(0, len(elements), CHUNK):
        state = crdt.apply("hll", state, {"add_all": elements[at : at + CHUNK]}, "a", limits=limits)
    return state


def _distinct(n: int, rng: random.Random) -> list[str]:
    return [f"{rng.getrandbits(64):016x}-{i}" for i in range(n)]


def _within_three_standard_errors(estimate: int, true: int, precision: int) -> bool:
    return abs(estimate - true) <= 3 * 1.04 / math.sqrt(2**precision) * true


@pytest.mark.parametrize("n", [1_000, 100_000])
def test_the_estimate_is_within_three_standard_errors(n: int) -> None:
    rng = random.Random(SEED + n)
    state = _fill(_distinct(n, rng))
    estimate = crdt.value("hll", state)
    assert _within_three_standard_errors(estimate, n, 14), f"seed {SEED + n}: {estimate} vs {n}"


def test_the_merge_of_disjoint_sets_estimates_their_union() -> None:
    rng = random.Random(SEED)
    left, right = _distinct(30_000, rng), _distinct(50_000, rng)
    merged = crdt.merge("hll", _fill(left), _fill(right))
    assert merged == _fill(left + right)
    estimate = crdt.value("hll", merged)
    assert _within_three_standard_errors(estimate, 80_000, 14), f"seed {SEED}: {estimate}"


def test_adding_an_element_again_changes_nothing() -> None:
    once = _fill(["x", "y"])
    assert crdt.apply("hll", once, {"add": "x", "add_all": ["y"]}, "b") == once
    assert crdt.value("hll", once) == 2


@pytest.mark.parametrize("n", [0, 1, 2, 5, 10, 20, 50, 100])
def test_small_counts_are_off_by_at_most_one(n: int) -> None:
    """The small-range correction: linear counting, off only where two elements share a
    register (e1..e20 have one such pair)."""
    estimate = crdt.value("hll", _fill([f"e{i}" for i in range(n)]))
    assert abs(estimate - n) <= 1
    assert estimate == n or n >= 20


@settings(max_examples=25, deadline=None)
@given(
    elements=st.lists(st.text(max_size=6), max_size=300),
    fine=st.integers(5, 16),
    coarse=st.integers(4, 16),
)
def test_reducing_precision_gives_what_the_coarser_precision_would_have_built(
    elements: list[str], fine: int, coarse: int
) -> None:
    coarse = min(coarse, fine)
    built_fine = _fill(elements, crdt.Limits(hll_precision=fine))
    built_coarse = _fill(elements, crdt.Limits(hll_precision=coarse))
    assert hll.reduce_precision(built_fine, coarse) == built_coarse


def test_states_of_two_precisions_merge_at_the_coarser() -> None:
    rng = random.Random(SEED)
    left, right = _distinct(2_000, rng), _distinct(3_000, rng)
    fine, coarse = crdt.Limits(hll_precision=14), crdt.Limits(hll_precision=10)
    merged = crdt.merge("hll", _fill(left, fine), _fill(right, coarse))
    assert merged.precision == 10
    assert merged == crdt.merge("hll", _fill(right, coarse), _fill(left, fine))
    assert merged == _fill(left + right, coarse)


def test_an_update_under_a_lowered_bucket_precision_reduces_the_state() -> None:
    state = _fill(["a", "b"], crdt.Limits(hll_precision=12))
    lowered = crdt.apply("hll", state, {"add": "c"}, "a", limits=crdt.Limits(hll_precision=8))
    assert lowered.precision == 8
    raised = crdt.apply("hll", state, {"add": "c"}, "a", limits=crdt.Limits(hll_precision=16))
    assert raised.precision == 12  # a finer precision cannot be recovered


def test_a_sparse_state_encodes_small_and_a_dense_one_at_one_byte_per_register() -> None:
    assert len(crdt.encode("hll", _fill(["x"]))) < 20
    full = _fill(_distinct(60_000, random.Random(SEED)))
    assert 2**14 < len(crdt.encode("hll", full)) < 2**14 + 20


def test_a_bad_hll_op_says_what_to_send() -> None:
    with pytest.raises(CrdtError, match=r'bad hll op .*"add_all"'):
        crdt.apply("hll", crdt.new("hll"), {"remove": "x"}, "a")
