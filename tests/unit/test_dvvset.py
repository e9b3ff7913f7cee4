"""DVVSet laws, checked against an oracle that tracks what every write saw."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo.kv import dvvset
from dynamo.kv.dvvset import Clock


def _write(
    replica: Clock[str], context: dvvset.VersionVector, value: str, actor: str
) -> Clock[str]:
    return dvvset.update(dvvset.new_with_context(context, value), replica, actor)


def test_new_then_update_stamps_a_dot() -> None:
    c = dvvset.update(dvvset.new("v1"), None, "a")
    assert c == Clock((("a", 1, ("v1",)),), ())
    assert dvvset.join(c) == (("a", 1),)
    assert dvvset.values_with_dots(c) == [(("a", 1), "v1")]


def test_write_with_full_context_replaces_every_sibling() -> None:
    c = _write(dvvset.EMPTY, (), "v1", "a")
    c = _write(c, (), "v2", "b")
    assert sorted(dvvset.values(c)) == ["v1", "v2"]
    c = _write(c, dvvset.join(c), "v3", "a")
    assert dvvset.values(c) == ["v3"]


def test_five_writes_with_one_stale_context_give_five_siblings() -> None:
    c = _write(dvvset.EMPTY, (), "v0", "a")
    stale = dvvset.join(c)
    for i in range(5):
        c = _write(c, stale, f"w{i}", "a")
    assert sorted(dvvset.values(c)) == [f"w{i}" for i in range(5)]


def test_two_writes_with_the_same_context_become_two_siblings() -> None:
    base = _write(dvvset.EMPTY, (), "v0", "a")
    ctx = dvvset.join(base)
    x = _write(base, ctx, "x", "a")
    y = _write(base, ctx, "y", "b")
    merged = dvvset.sync(x, y)
    assert sorted(dvvset.values(merged)) == ["x", "y"]


def test_two_clients_alternating_read_modify_write_hold_at_most_two_siblings() -> None:
    c: Clock[str] = dvvset.EMPTY
    ctx_a: dvvset.VersionVector = ()
    ctx_b: dvvset.VersionVector = ()
    for i in range(100):
        c = _write(c, ctx_a, f"a{i}", "n1")
        assert dvvset.size(c) <= 2
        ctx_a = dvvset.join(c)
        c = _write(c, ctx_b, f"b{i}", "n1")
        assert dvvset.size(c) <= 2
        ctx_b = dvvset.join(c)
    assert dvvset.size(c) <= 2


def test_sync_keeps_concurrent_and_drops_covered() -> None:
    a = _write(dvvset.EMPTY, (), "v1", "a")
    b = _write(a, dvvset.join(a), "v2", "b")  # b saw a
    assert dvvset.values(dvvset.sync(a, b)) == ["v2"]
    assert dvvset.less(a, b)
    assert not dvvset.less(b, a)
    assert dvvset.descends(b, a)
    assert dvvset.descends(a, a)


def test_lww_keeps_one_value_and_the_history() -> None:
    c = _write(dvvset.EMPTY, (), "v1", "a")
    c = _write(c, (), "v3", "b")
    c = _write(c, (), "v2", "c")
    w = dvvset.lww(c, lambda v: v)
    assert dvvset.values(w) == ["v3"]
    assert dvvset.join(w) == dvvset.join(c)
    assert dvvset.values_with_dots(w) == [(("b", 1), "v3")]


def test_update_refuses_a_clock_without_exactly_one_value() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        dvvset.update(Clock((), ()), None, "a")


# --- Model-based properties ---------------------------------------------------------------------


@dataclass
class Model:
    """Replicas of one key, plus the oracle: what each write saw."""

    replicas: list[Clock[str]]
    history: list[set[str]]  # writes each replica has in its causal past
    seen: dict[str, frozenset[str]] = field(default_factory=dict)  # write -> writes it covers

    def live(self, writes: set[str]) -> set[str]:
        covered: set[str] = set()
        for w in writes:
            covered |= self.seen[w]
        return writes - covered


op = st.one_of(
    st.tuples(st.just("write"), st.integers(0, 2), st.integers(0, 2)),  # read at i, write at j
    st.tuples(st.just("blind"), st.integers(0, 2), st.integers(0, 2)),  # no context, at j
    st.tuples(st.just("sync"), st.integers(0, 2), st.integers(0, 2)),  # j merges i's copy
)


def run(ops: list[tuple[str, int, int]]) -> Model:
    m = Model(replicas=[dvvset.EMPTY] * 3, history=[set(), set(), set()])
    for n, (kind, i, j) in enumerate(ops):
        if kind == "sync":
            m.replicas[j] = dvvset.sync(m.replicas[j], m.replicas[i])
            m.history[j] |= m.history[i]
            continue
        wid = f"w{n}"
        if kind == "write":
            ctx = dvvset.join(m.replicas[i])
            saw = frozenset(m.history[i])
        else:
            ctx, saw = (), frozenset()
        m.seen[wid] = saw
        m.replicas[j] = _write(m.replicas[j], ctx, wid, f"r{j}")
        m.history[j] |= saw | {wid}
    return m


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40))
def test_siblings_are_exactly_the_writes_no_other_write_saw(
    ops: list[tuple[str, int, int]],
) -> None:
    m = run(ops)
    for r, hist in zip(m.replicas, m.history, strict=True):
        assert set(dvvset.values(r)) == m.live(hist)
        assert len(dvvset.values(r)) == dvvset.size(r)
    merged = dvvset.sync_all(m.replicas)
    assert set(dvvset.values(merged)) == m.live(set().union(*m.history))


@settings(max_examples=200, deadline=None)
@given(st.lists(op, max_size=30))
def test_sync_is_commutative_associative_idempotent(ops: list[tuple[str, int, int]]) -> None:
    a, b, c = run(ops).replicas

    def norm(x: Clock[str]) -> tuple[dvvset.VersionVector, set[str]]:
        return dvvset.join(x), set(dvvset.values(x))

    assert norm(dvvset.sync(a, b)) == norm(dvvset.sync(b, a))
    assert norm(dvvset.sync(dvvset.sync(a, b), c)) == norm(dvvset.sync(a, dvvset.sync(b, c)))
    assert dvvset.sync(a, a) == a
    ab = dvvset.sync(a, b)
    assert norm(dvvset.sync(ab, a)) == norm(ab)


@settings(max_examples=200, deadline=None)
@given(st.lists(op, max_size=30), st.integers(0, 2), st.integers(0, 2))
def test_a_read_that_saw_every_sibling_then_writes_leaves_one_value(
    ops: list[tuple[str, int, int]], i: int, j: int
) -> None:
    m = run(ops)
    merged = dvvset.sync_all(m.replicas)
    out = _write(merged, dvvset.join(merged), "final", f"r{j}")
    assert dvvset.values(out) == ["final"]


@settings(max_examples=200, deadline=None)
@given(st.lists(op, max_size=30))
def test_sibling_count_never_exceeds_concurrent_writes(ops: list[tuple[str, int, int]]) -> None:
    m = run(ops)
    writes = set(m.seen)
    for r in m.replicas:
        # Every sibling is a distinct write none of the others saw: an antichain.
        vals = dvvset.values(r)
        assert len(vals) == len(set(vals))
        for v in vals:
            assert all(v not in m.seen[w] for w in vals)
        assert len(vals) <= len(writes)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=100))
def test_clients_carrying_context_never_explode_siblings(turns: list[bool]) -> None:
    """Two clients, each always writing with the context of its own last read,
    in any interleaving, hold at most two siblings."""
    c: Clock[str] = dvvset.EMPTY
    ctx = {True: dvvset.join(c), False: dvvset.join(c)}
    for n, who in enumerate(turns):
        c = _write(c, ctx[who], f"{who}{n}", "n1")
        ctx[who] = dvvset.join(c)
        assert dvvset.size(c) <= 2
