"""The flag (enable wins) and the register (greatest (timestamp_us, actor) wins)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dynamo.kv import crdt
from dynamo.kv.crdt import CrdtError, LimitError


def _flag(state: Any, op: str, actor: str, context: bytes | None = None) -> Any:
    return crdt.apply("flag", state, op, actor, context=context)


def test_an_enable_concurrent_with_a_disable_wins() -> None:
    base = _flag(crdt.new("flag"), "enable", "a")
    off = _flag(base, "disable", "a", context=crdt.context("flag", base))
    on = _flag(base, "enable", "b")
    assert crdt.value("flag", off) is False
    assert crdt.value("flag", crdt.merge("flag", off, on)) is True
    assert crdt.value("flag", crdt.merge("flag", on, off)) is True


def test_a_disable_that_saw_every_enable_turns_the_flag_off_everywhere() -> None:
    a = _flag(crdt.new("flag"), "enable", "a")
    b = _flag(crdt.new("flag"), "enable", "b")
    both = crdt.merge("flag", a, b)
    off = _flag(both, "disable", "c", context=crdt.context("flag", both))
    assert crdt.value("flag", crdt.merge("flag", crdt.merge("flag", a, off), b)) is False


def test_a_disable_of_an_enable_not_yet_seen_waits_for_it() -> None:
    ahead = _flag(crdt.new("flag"), "enable", "a")
    lagging = _flag(crdt.new("flag"), "disable", "b", context=crdt.context("flag", ahead))
    assert lagging.deferred
    merged = crdt.merge("flag", lagging, ahead)
    assert crdt.value("flag", merged) is False
    assert not merged.deferred


def test_a_bad_flag_op_says_what_to_send() -> None:
    with pytest.raises(CrdtError, match='"enable" or "disable"'):
        crdt.apply("flag", crdt.new("flag"), {"enable": True}, "a")


def _assign(state: Any, text: str, actor: str, now_us: int) -> Any:
    return crdt.apply("register", state, text, actor, now_us=now_us)


@pytest.mark.parametrize(
    ("writes", "winner"),
    [
        ([("a", 100, "old"), ("b", 200, "new")], "new"),
        ([("b", 200, "new"), ("a", 100, "old")], "new"),
        ([("a", 100, "from a"), ("b", 100, "from b")], "from b"),  # same time: greater actor
        ([("b", 100, "from b"), ("a", 100, "from a")], "from b"),
        ([("z", 5, "z"), ("a", 6, "a")], "a"),  # time first, actor only to break a tie
    ],
)
def test_the_greatest_timestamp_then_actor_wins(
    writes: list[tuple[str, int, str]], winner: str
) -> None:
    states = [_assign(crdt.new("register"), text, actor, now) for actor, now, text in writes]
    merged = crdt.new("register")
    for s in states:
        merged = crdt.merge("register", merged, s)
    assert crdt.value("register", merged) == winner


def test_a_coordinator_with_a_lagging_clock_still_overwrites_what_it_holds() -> None:
    s = _assign(crdt.new("register"), "first", "a", now_us=1_000)
    s = _assign(s, "second", "b", now_us=10)  # b's clock is behind; its write saw "first"
    assert crdt.value("register", s) == "second"
    assert s.timestamp_us == 1_001


def test_an_unassigned_register_has_no_value_and_no_context() -> None:
    assert crdt.value("register", crdt.new("register")) is None
    assert crdt.context("register", crdt.new("register")) == b""


@pytest.mark.parametrize("op", [3, None, {"assign": 3}, {"set": "v"}])
def test_a_bad_register_op_says_what_to_send(op: Any) -> None:
    with pytest.raises(CrdtError, match=re.escape('a string or {"assign": s}')):
        crdt.apply("register", crdt.new("register"), op, "a")


def test_pending_disables_are_bounded() -> None:
    limits = crdt.Limits(max_elements=1)
    a = _flag(crdt.new("flag"), "enable", "a")
    b = _flag(crdt.new("flag"), "enable", "b")
    s = crdt.apply("flag", crdt.new("flag"), "disable", "c", context=crdt.context("flag", a))
    with pytest.raises(LimitError, match="max_elements: 2 disables would wait"):
        crdt.apply("flag", s, "disable", "c", context=crdt.context("flag", b), limits=limits)
