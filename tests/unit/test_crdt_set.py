"""The set (ORSWOT): add wins over a remove that had not seen it, removes take exactly
what their context observed, and a remove without context needs the element present."""

from __future__ import annotations

from typing import Any

import pytest

from dynamo.kv import crdt
from dynamo.kv.crdt import CrdtError, LimitError, PreconditionError, orset


def _apply(state: Any, op: dict[str, Any], actor: str, context: bytes | None = None) -> Any:
    return crdt.apply("set", state, op, actor, context=context)


def _value(state: Any) -> list[str]:
    out: list[str] = crdt.value("set", state)
    return out


def test_add_concurrent_with_a_remove_of_an_older_add_survives() -> None:
    a = _apply(crdt.new("set"), {"add": "x"}, "a")
    b = crdt.merge("set", crdt.new("set"), a)
    b = _apply(b, {"remove": "x"}, "b", context=crdt.context("set", b))
    a = _apply(a, {"add": "x"}, "a")  # re-added, concurrently with b's remove
    assert _value(b) == []
    assert _value(crdt.merge("set", a, b)) == ["x"]
    assert _value(crdt.merge("set", b, a)) == ["x"]


def test_a_remove_with_a_context_removes_exactly_the_adds_it_observed() -> None:
    s = _apply(crdt.new("set"), {"add_all": ["x", "y"]}, "a")
    seen = crdt.context("set", s)
    s = _apply(s, {"add": "y"}, "b")  # y again, after the fetch
    s = _apply(s, {"add": "z"}, "b")  # and z, unseen by the fetch
    s = _apply(s, {"remove_all": ["x", "y", "z"]}, "c", context=seen)
    assert _value(s) == ["y", "z"]


def test_a_remove_without_context_of_an_absent_element_is_refused() -> None:
    s = _apply(crdt.new("set"), {"add": "x"}, "a")
    with pytest.raises(PreconditionError, match="'nope' not present"):
        _apply(s, {"remove": "nope"}, "a")
    with pytest.raises(PreconditionError):  # all or nothing
        _apply(s, {"remove_all": ["x", "nope"]}, "a")
    assert _value(s) == ["x"]


def test_a_remove_without_context_of_a_present_element_drops_every_dot_held() -> None:
    a = _apply(crdt.new("set"), {"add": "x"}, "a")
    b = _apply(crdt.new("set"), {"add": "x"}, "b")
    both = crdt.merge("set", a, b)
    assert _value(_apply(both, {"remove": "x"}, "c")) == []


def test_a_remove_of_adds_not_yet_seen_waits_for_them() -> None:
    a = _apply(crdt.new("set"), {"add_all": ["x", "y"]}, "a")
    ctx = crdt.context("set", a)
    lagging = _apply(crdt.new("set"), {"add": "w"}, "b")
    lagging = _apply(lagging, {"remove": "x"}, "b", context=ctx)  # no error: deferred
    assert lagging.deferred
    caught_up = crdt.merge("set", lagging, a)
    assert _value(caught_up) == ["w", "y"]
    assert not caught_up.deferred  # applied, and dropped once the clock descends the context


def test_a_remove_with_a_context_of_something_already_gone_is_a_no_op() -> None:
    s = _apply(crdt.new("set"), {"add": "x"}, "a")
    ctx = crdt.context("set", s)
    s = _apply(s, {"remove": "x"}, "a", context=ctx)
    again = _apply(s, {"remove": "x"}, "a", context=ctx)
    assert again == s


def test_a_re_add_replaces_the_elements_dots_with_one() -> None:
    s = _apply(crdt.new("set"), {"add": "x"}, "a")
    s = crdt.merge("set", s, _apply(crdt.new("set"), {"add": "x"}, "b"))
    assert len(s.entries["x"]) == 2
    s = _apply(s, {"add": "x"}, "c")
    assert s.entries["x"] == frozenset({("c", 1)})


def test_one_op_adds_and_removes_with_one_dot() -> None:
    s = _apply(crdt.new("set"), {"add_all": ["x", "y"]}, "a")
    s = _apply(s, {"add_all": ["p", "q"], "remove": "x"}, "a")
    assert _value(s) == ["p", "q", "y"]
    assert s.clock == (("a", 2),)


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ({}, "bad set op"),
        ({"add": 1}, "must be a string"),
        ({"add_all": "xy"}, "takes a list"),
        ({"insert": "x"}, "bad set op"),
        ({"add": "x", "remove": "x"}, "both adds and removes 'x'"),
        ({"add": "\ud800"}, "valid Unicode"),
        ("x", "bad set op"),
    ],
)
def test_a_bad_op_says_what_to_send(op: Any, message: str) -> None:
    with pytest.raises(CrdtError, match=message):
        crdt.apply("set", crdt.new("set"), op, "a")


def test_max_elements_bounds_the_set_and_an_op() -> None:
    limits = crdt.Limits(max_elements=3)
    s = crdt.apply("set", crdt.new("set"), {"add_all": ["a", "b", "c"]}, "a", limits=limits)
    with pytest.raises(LimitError, match="max_elements: the set would hold 4"):
        crdt.apply("set", s, {"add": "d"}, "a", limits=limits)
    with pytest.raises(LimitError, match="max_elements"):
        crdt.apply("set", s, {"add_all": list("wxyz")}, "a", limits=limits)


def test_pending_removes_are_bounded_too() -> None:
    limits = crdt.Limits(max_elements=2)
    ahead = _apply(crdt.new("set"), {"add": "x"}, "a")
    ctx = crdt.context("set", ahead)
    s = crdt.apply(
        "set", crdt.new("set"), {"remove_all": ["p", "q"]}, "b", context=ctx, limits=limits
    )
    with pytest.raises(LimitError, match="wait for adds"):
        crdt.apply("set", s, {"remove": "r"}, "b", context=ctx, limits=limits)


def test_the_context_is_the_clock_and_decodes_back() -> None:
    s = _apply(_apply(crdt.new("set"), {"add": "x"}, "b"), {"add": "y"}, "a")
    assert crdt.decode_context(crdt.context("set", s)) == (("a", 1), ("b", 1))
    assert orset.clock(s) == s.clock


def test_an_element_named_twice_in_a_remove_is_removed_once() -> None:
    s = _apply(crdt.new("set"), {"add_all": ["x", "y"]}, "a")
    assert _value(_apply(s, {"remove_all": ["x", "x"]}, "a")) == ["y"]
