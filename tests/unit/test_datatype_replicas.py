"""Data types through real ``Replica`` objects (memory stores): operations coordinated at
any replica, copies exchanged in any order, and no operation is ever lost. The states
ride in DVVSet values, so this holds only if every value keeps exactly the history of its
own dot (a merged state pinned to one dot would be dropped by a replica that saw that
dot but not the others)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo.kv import datatypes, dvvset
from dynamo.kv.replica import Replica
from dynamo.storage.memory import MemStore
from http_api.types import Content

KEY = b"\x00" * 8 + b"\x00\x01bk"


def replicas(n: int) -> list[Replica]:
    return [
        Replica(MemStore(f"n{i}", rng=random.Random(i)), random.Random(10 + i)) for i in range(n)
    ]


def update(r: Replica, kind: str, op: dict[str, object], t: int) -> None:
    """Coordinate one operation at ``r``, as the coordinator does (stamped, no context)."""
    c = datatypes.op_content(kind, op, None, 14)
    c = Content(value=c.value, content_type=c.content_type, last_modified_us=t)
    r.coordinate(KEY, c, (), hint_for=None, allow_mult=True, last_write_wins=False)


def send(src: Replica, dst: Replica) -> None:
    obj = src.read(KEY)
    if obj is not None:
        dst.write(KEY, obj, None, allow_mult=True)


def value(r: Replica) -> object:
    obj = r.read(KEY)
    assert obj is not None
    merged = datatypes.states(dvvset.values(obj))
    assert merged is not None
    from dynamo.kv import crdt

    return crdt.value(merged[0], merged[1])


def settle(rs: list[Replica]) -> None:
    for _ in range(2):
        for a in rs:
            for b in rs:
                if a is not b:
                    send(a, b)


def test_a_merged_state_is_not_dropped_by_a_replica_that_saw_one_of_its_dots() -> None:
    a, b = replicas(2)
    update(a, "counter", {"increment": 1}, 1)
    send(a, b)
    update(a, "counter", {"increment": 1}, 2)  # concurrent with ...
    update(b, "counter", {"increment": 1}, 3)  # ... this one
    send(b, a)  # a holds both
    update(b, "counter", {"increment": 1}, 4)  # b has not seen a's second
    send(b, a)
    assert value(a) == 4
    settle([a, b])
    assert value(a) == value(b) == 4


steps = st.lists(
    st.tuples(st.sampled_from(["update", "send"]), st.integers(0, 2), st.integers(0, 2)),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_counter_increments_are_never_lost(schedule: list[tuple[str, int, int]]) -> None:
    rs = replicas(3)
    made = 0
    for t, (what, i, j) in enumerate(schedule, start=1):
        if what == "update":
            update(rs[i], "counter", {"increment": j + 1}, t)
            made += j + 1
        elif i != j:
            send(rs[i], rs[j])
    if made:
        settle(rs)
        assert [value(r) for r in rs] == [made] * 3


@settings(max_examples=300, deadline=None)
@given(steps)
def test_set_adds_are_never_lost(schedule: list[tuple[str, int, int]]) -> None:
    rs = replicas(3)
    added: set[str] = set()
    for t, (what, i, j) in enumerate(schedule, start=1):
        if what == "update":
            update(rs[i], "set", {"add": f"e{t}"}, t)
            added.add(f"e{t}")
        elif i != j:
            send(rs[i], rs[j])
    if added:
        settle(rs)
        assert [value(r) for r in rs] == [sorted(added)] * 3
