"""The laws every data type keeps, checked by simulating replicas.

Three replicas, each applying ops under its own actor, exchange states in an
order hypothesis picks (and re-send them at will); clients remove with the
context of the replica they write to, of another replica (so removes wait for
adds not yet seen), a stale one, or none. Then every replica sends to every
other, and all must hold the same state, the same bytes and the same value. Independent
oracles say what that value must be: the sum of the increments, the union of
the adds, the HyperLogLog of every element added, the greatest assignment, and
for the set, the flag and the map's fields an observed-remove model (present
while some add was not observed by any remove).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo.kv import crdt
from dynamo.kv.crdt import PreconditionError

ACTORS = ("a", "b", "c")
ELEMENTS = ("x", "y", "z")
LIMITS = crdt.Limits(hll_precision=6, max_depth=3)
ALL_KINDS = (*crdt.KINDS, "flag", "register")

replica = st.integers(0, len(ACTORS) - 1)
element = st.sampled_from(ELEMENTS)
# A context is absent, fresh (the replica's own), another replica's (the client fetched
# there and writes here, which defers removes of adds this replica has not seen), or
# stale (an earlier snapshot's).
ctx_choice = st.one_of(
    st.none(), st.just("fresh"), st.tuples(st.just("from"), replica), st.integers(0, 20)
)


def _set_op() -> st.SearchStrategy[dict[str, Any]]:
    def build(adds: list[str], removes: list[str], many: bool) -> dict[str, Any]:
        removes = [e for e in removes if e not in adds]
        op: dict[str, Any] = {}
        if adds:
            op.update({"add_all": adds} if many or len(adds) > 1 else {"add": adds[0]})
        if removes:
            op.update(
                {"remove_all": removes} if many or len(removes) > 1 else {"remove": removes[0]}
            )
        return op or {"add": "x"}

    small = st.lists(element, max_size=2, unique=True)
    return st.builds(build, small, small, st.booleans())


def _field_op(kind: str, depth: int) -> st.SearchStrategy[Any]:
    if kind == "counter":
        return st.one_of(
            st.integers(-3, 3), st.builds(lambda n: {"increment": n}, st.integers(-3, 3))
        )
    if kind == "set":
        return _set_op()
    if kind == "register":
        return st.one_of(
            st.sampled_from(["p", "q"]), st.builds(lambda s: {"assign": s}, st.just("r"))
        )
    if kind == "flag":
        return st.sampled_from(["enable", "disable"])
    return _map_op(depth + 1)


FIELDS = ("n_counter", "s_set", "r_register", "f_flag", "m_map")


def _map_op(depth: int = 1) -> st.SearchStrategy[dict[str, Any]]:
    names = FIELDS if depth < 2 else FIELDS[:-1]

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        updated = draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
        removed = [
            n for n in draw(st.lists(st.sampled_from(names), max_size=1)) if n not in updated
        ]
        op: dict[str, Any] = {}
        if updated:
            op["update"] = {n: draw(_field_op(n.rpartition("_")[2], depth)) for n in updated}
        if removed:
            op["remove"] = removed
        return op or {"update": {"n_counter": 1}}

    return build()


OPS: dict[str, st.SearchStrategy[Any]] = {
    "counter": st.one_of(
        st.integers(-5, 5),
        st.builds(lambda n: {"increment": n}, st.integers(-5, 5)),
        st.builds(lambda n: {"decrement": n}, st.integers(-5, 5)),
    ),
    "gset": st.one_of(
        st.builds(lambda e: {"add": e}, element),
        st.builds(lambda es: {"add_all": es}, st.lists(element, max_size=3)),
    ),
    "hll": st.builds(
        lambda es: {"add_all": es}, st.lists(st.text("abcdefgh", max_size=3), max_size=4)
    ),
    "set": _set_op(),
    "flag": st.sampled_from(["enable", "disable"]),
    "register": st.sampled_from(["p", "q", "r"]),
    "map": _map_op(),
}


def steps(kind: str) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    op_step = st.tuples(st.just("op"), replica, OPS[kind], ctx_choice, st.integers(0, 30))
    sync = st.tuples(st.just("sync"), replica, replica)
    snap = st.tuples(st.just("snap"), replica)
    return st.lists(
        st.one_of(op_step, op_step, op_step, sync, sync, snap), min_size=10, max_size=40
    )


# --- Oracles ----------------------------------------------------------------------------------


@dataclass
class ORModel:
    """What one replica knows in an observed-remove model: every add (op id, element) it
    has heard of, and every add some remove it has heard of had observed."""

    adds: set[tuple[int, str]] = field(default_factory=set)
    removed: set[tuple[int, str]] = field(default_factory=set)

    def live(self) -> set[str]:
        return {e for t, e in self.adds - self.removed}

    def absorb(self, other: ORModel) -> None:
        self.adds |= other.adds
        self.removed |= other.removed


def _or_effects(kind: str, op: Any) -> tuple[list[str], list[str]]:
    """The elements (for a map: field names) an op adds and removes, as the OR model sees."""
    if kind == "flag":
        return (["on"], []) if op == "enable" else ([], ["on"])
    if kind == "map":
        return list(op.get("update", {})), list(op.get("remove", []))
    adds = [op["add"]] if "add" in op else list(op.get("add_all", []))
    removes = [op["remove"]] if "remove" in op else list(op.get("remove_all", []))
    return adds, removes


@dataclass
class Sim:
    kind: str
    states: list[Any]
    history: list[Any]
    applied: list[Any] = field(default_factory=list)  # every op applied
    models: list[ORModel] = field(default_factory=lambda: [ORModel() for _ in ACTORS])
    # A register replica's greatest assignment seen: (timestamp_us, actor, value).
    registers: list[tuple[int, str, str]] = field(default_factory=lambda: [(-1, "", "")] * 3)


def run(kind: str, program: list[tuple[Any, ...]]) -> Sim:
    states = [crdt.new(kind, LIMITS) for _ in ACTORS]
    sim = Sim(kind, states, list(states))
    snaps: list[tuple[bytes, set[tuple[int, str]]]] = []
    for op_id, step in enumerate(program):
        if step[0] == "op":
            _, r, op, choice, now = step
            _apply(sim, snaps, op_id, r, op, choice, now)
        elif step[0] == "sync":
            _, src, dst = step
            sim.states[dst] = crdt.merge(kind, sim.states[dst], sim.states[src])
            sim.models[dst].absorb(sim.models[src])
            sim.registers[dst] = max(sim.registers[dst], sim.registers[src])
            sim.history.append(sim.states[dst])
        else:
            snaps.append((crdt.context(kind, sim.states[step[1]]), set(sim.models[step[1]].adds)))
        _check_model(sim)
    return sim


def _apply(
    sim: Sim,
    snaps: list[tuple[bytes, set[tuple[int, str]]]],
    op_id: int,
    r: int,
    op: Any,
    choice: Any,
    now: int,
) -> None:
    kind, model = sim.kind, sim.models[r]
    if choice is None:
        ctx, observed = None, None
    elif isinstance(choice, tuple):
        ctx, observed = crdt.context(kind, sim.states[choice[1]]), set(sim.models[choice[1]].adds)
    elif choice == "fresh" or not snaps:
        ctx, observed = crdt.context(kind, sim.states[r]), set(model.adds)
    else:
        ctx, observed = snaps[choice % len(snaps)]
    before = crdt.encode(kind, sim.states[r])
    adds, removes = _or_effects(kind, op) if kind in ("set", "flag", "map") else ([], [])
    try:
        after = crdt.apply(
            kind, sim.states[r], op, ACTORS[r], context=ctx or None, now_us=now, limits=LIMITS
        )
    except PreconditionError as exc:
        # Only a remove without context of what the replica does not hold is refused:
        # an element of a set, a field of a map, or either inside a map's field.
        refusal = str(exc)
        assert ctx is None, refusal
        assert kind in ("set", "map"), refusal
        nested = kind == "map" and refusal.startswith(tuple(f"{n}: " for n in FIELDS))
        assert nested or set(removes) - model.live(), (op, model.live())
        return
    finally:
        assert crdt.encode(kind, sim.states[r]) == before, "apply changed its input"
    if kind in ("set", "map") and ctx is None:
        assert not set(removes) - model.live(), f"{op} should have been refused"
    sim.states[r] = after
    sim.history.append(after)
    sim.applied.append(op)
    if kind == "register":  # stamped max(now, current + 1): a replica's later write wins
        sim.registers[r] = (max(now, sim.registers[r][0] + 1), ACTORS[r], op)
    if observed is None:
        observed = model.adds
    model.removed |= {(t, e) for t, e in observed if e in removes}
    model.adds |= {(op_id, e) for e in adds}


def _check_model(sim: Sim) -> None:
    if sim.kind == "register":
        for r, state in enumerate(sim.states):
            ts, _, text = sim.registers[r]
            assert crdt.value("register", state) == (text if ts >= 0 else None)
    if sim.kind in ("set", "flag", "map"):
        for r, state in enumerate(sim.states):
            value = crdt.value(sim.kind, state)
            present = {"on"} if value is True else set() if value is False else set(value)
            assert present == sim.models[r].live(), f"replica {ACTORS[r]}"


def exchange(kind: str, states: list[Any]) -> list[Any]:
    out = list(states)
    for _ in range(2):
        for i in range(len(out)):
            for j in range(len(out)):
                out[j] = crdt.merge(kind, out[j], out[i])
    return out


def _oracle(sim: Sim, final: Any) -> None:
    kind, ops = sim.kind, sim.applied
    if kind == "counter":
        total = 0
        for op in ops:
            n = op if isinstance(op, int) else op.get("increment", 0) - op.get("decrement", 0)
            total += n
        assert crdt.value(kind, final) == total
    elif kind == "gset":
        added = {e for op in ops for e in ([op["add"]] if "add" in op else op["add_all"])}
        assert crdt.value(kind, final) == sorted(added)
    elif kind == "hll":
        every = sorted({e for op in ops for e in op["add_all"]})
        direct = crdt.apply(kind, crdt.new(kind, LIMITS), {"add_all": every}, "z", limits=LIMITS)
        assert final == direct


# --- Properties -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_replicas_converge_to_the_oracles_value_whatever_the_delivery(
    kind: str, data: st.DataObject
) -> None:
    sim = run(kind, data.draw(steps(kind), label="program"))
    final = exchange(kind, sim.states)
    assert all(s == final[0] for s in final)
    assert len({crdt.encode(kind, s) for s in final}) == 1
    assert len({repr(crdt.value(kind, s)) for s in final}) == 1
    for model in sim.models[1:]:
        sim.models[0].absorb(model)
    for model in sim.models[1:]:
        model.absorb(sim.models[0])
    sim.registers = [max(sim.registers)] * len(ACTORS)
    sim.states = final
    _check_model(sim)
    _oracle(sim, final[0])
    # Every state ever produced, merged in any order and grouping, gives the same state.
    seed = data.draw(st.integers(0, 2**32 - 1), label="shuffle seed")
    states = list(sim.history)
    random.Random(seed).shuffle(states)
    while len(states) > 1:
        i = random.Random(seed + len(states)).randrange(len(states) - 1)
        states[i : i + 2] = [crdt.merge(kind, states[i], states[i + 1])]
    assert states[0] == final[0]


@pytest.mark.parametrize("kind", ALL_KINDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_merge_is_commutative_associative_idempotent_and_resending_changes_nothing(
    kind: str, data: st.DataObject
) -> None:
    sim = run(kind, data.draw(steps(kind), label="program"))
    pick = st.sampled_from(sim.history)
    a, b, c = data.draw(pick, label="a"), data.draw(pick, label="b"), data.draw(pick, label="c")
    ab = crdt.merge(kind, a, b)
    assert ab == crdt.merge(kind, b, a)
    assert crdt.encode(kind, ab) == crdt.encode(kind, crdt.merge(kind, b, a))
    assert crdt.merge(kind, ab, c) == crdt.merge(kind, a, crdt.merge(kind, b, c))
    assert crdt.merge(kind, a, a) == a
    assert crdt.merge(kind, ab, b) == ab  # a re-sent state is applied once
    assert crdt.merge(kind, ab, a) == ab


@pytest.mark.parametrize("kind", ALL_KINDS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_every_state_round_trips_through_its_encoding(kind: str, data: st.DataObject) -> None:
    sim = run(kind, data.draw(steps(kind), label="program"))
    for state in sim.history:
        raw = crdt.encode(kind, state)
        assert crdt.is_crdt(raw)
        assert crdt.size_of(kind, state) == len(raw)
        got_kind, got = crdt.decode(raw)
        assert (got_kind, got) == (kind, state)
        assert crdt.encode(kind, got) == raw
        assert crdt.value(kind, got) == crdt.value(kind, state)
        ctx = crdt.context(kind, state)
        decoded = crdt.decode_context(ctx)
        assert (ctx == b"") == (decoded is None)
