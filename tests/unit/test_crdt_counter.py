"""The PN counter: its value is the sum of every increment applied, once each."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo.kv import crdt
from dynamo.kv.crdt import CrdtError, LimitError
from dynamo.kv.crdt.limits import MAX_COUNT

increments = st.lists(st.tuples(st.sampled_from("abc"), st.integers(-(10**6), 10**6)), max_size=30)


@settings(max_examples=60, deadline=None)
@given(ops=increments, resend=st.lists(st.integers(0, 29), max_size=10))
def test_the_value_is_the_sum_of_the_increments_however_often_resent(
    ops: list[tuple[str, int]], resend: list[int]
) -> None:
    replicas = {actor: crdt.new("counter") for actor in "abc"}
    produced = []
    for actor, n in ops:
        replicas[actor] = crdt.apply("counter", replicas[actor], {"increment": n}, actor)
        produced.append(replicas[actor])
    total = crdt.new("counter")
    for state in [*replicas.values(), *(produced[i] for i in resend if i < len(produced))]:
        total = crdt.merge("counter", total, state)
    assert crdt.value("counter", total) == sum(n for _, n in ops)


@pytest.mark.parametrize(
    ("op", "delta"),
    [(5, 5), (-2, -2), ({"increment": 3}, 3), ({"increment": -3}, -3), ({"decrement": 4}, -4)],
)
def test_ops_in_every_shape_riak_takes(op: Any, delta: int) -> None:
    s = crdt.apply("counter", crdt.new("counter"), op, "a")
    assert crdt.value("counter", s) == delta


def test_increments_and_decrements_are_kept_apart_per_actor() -> None:
    s = crdt.apply("counter", crdt.new("counter"), 5, "a")
    s = crdt.apply("counter", s, {"decrement": 2}, "a")
    assert s.entries == {"a": (5, 2)}
    assert crdt.context("counter", s) == b""


@pytest.mark.parametrize(
    "op", [{"increment": "1"}, {"increment": True}, True, "1", {"add": 1}, {}, 1.5]
)
def test_a_bad_op_says_what_to_send(op: Any) -> None:
    with pytest.raises(CrdtError, match=r'\{"increment": n\}'):
        crdt.apply("counter", crdt.new("counter"), op, "a")


def test_a_total_that_would_overflow_int64_is_refused() -> None:
    s = crdt.apply("counter", crdt.new("counter"), MAX_COUNT, "a")
    with pytest.raises(LimitError, match="would pass"):
        crdt.apply("counter", s, 1, "a")
    with pytest.raises(LimitError, match="beyond"):
        crdt.apply("counter", s, MAX_COUNT + 1, "b")
