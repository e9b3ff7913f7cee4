"""The set: an observed-remove set without tombstones (riak_dt_orswot).

The state is a clock, the dots that added each present element, and the
removes still waiting for adds they cover. An add stamps the element with one
new dot (one per operation, shared by all it adds) and drops the element's older
dots, which the adder has seen. A remove drops dots and keeps nothing: a merge
tells "removed there" from "not yet seen there" by the clock, as
:func:`dynamo.kv.crdt.vclock.join_dots` does, so an add the remover had not
seen survives (add wins) and no tombstone is ever needed.

A remove without a context is applied to the coordinator's own state: it drops
every dot of the element the coordinator holds, and refuses an element the
coordinator does not hold (``PreconditionError``; Riak answers 412 "not
present"). A remove with a context (the clock a fetch returned) drops exactly
the dots the context covers, and is never refused: if the state's clock has not
seen the whole context, some adds it covers are still on their way, so the
remove is kept (deferred) and applied again at every merge until the clock
descends the context. This is riak_dt's choice: with a context, "absent" means
removed already or not arrived yet, and neither is the client's fault.

Ops (Riak's HTTP JSON), combinable in one op: ``{"add": e}``,
``{"add_all": [e, ...]}``, ``{"remove": e}``, ``{"remove_all": [e, ...]}``;
removes apply first, and naming one element in both is refused. Value: the
sorted list of elements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from dynamo.kv.crdt import vclock, wire
from dynamo.kv.crdt.errors import CrdtError, LimitError, PreconditionError
from dynamo.kv.crdt.limits import Limits, check_text
from dynamo.kv.crdt.vclock import Dot, Event, VClock

__all__ = [
    "ORSwot",
    "apply",
    "apply_at",
    "clock",
    "from_wire",
    "merge",
    "new",
    "parse_op",
    "to_wire",
    "value",
]

_OPS = ("add", "add_all", "remove", "remove_all")
_OP_HELP = 'send {"add": e}, {"add_all": [..]}, {"remove": e} or {"remove_all": [..]}'


def _no_entries() -> Mapping[str, frozenset[Dot]]:
    return MappingProxyType({})


def _no_deferred() -> Mapping[VClock, frozenset[str]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ORSwot:
    """An ORSWOT: its clock, each element's dots, and removes waiting per context."""

    clock: VClock = ()
    entries: Mapping[str, frozenset[Dot]] = field(default_factory=_no_entries)
    deferred: Mapping[VClock, frozenset[str]] = field(default_factory=_no_deferred)


def new(limits: Limits) -> ORSwot:
    return ORSwot()


def parse_op(op: object, limits: Limits) -> tuple[list[str], list[str]]:
    """The elements an op adds and removes."""
    if not isinstance(op, Mapping) or not op or not set(op) <= set(_OPS):
        raise CrdtError(f"bad set op {op!r:.80}: {_OP_HELP}")
    adds: list[str] = []
    removes: list[str] = []
    for key, arg in op.items():
        out = adds if key.startswith("add") else removes
        if key.endswith("_all"):
            if not isinstance(arg, list):
                raise CrdtError(f"set op {key!r} takes a list of strings: {_OP_HELP}")
            if len(arg) > limits.max_elements:
                raise LimitError(
                    f"max_elements: {key!r} names {len(arg)} elements, above the "
                    f"limit of {limits.max_elements}"
                )
            out.extend(check_text(e, "a set element") for e in arg)
        else:
            out.append(check_text(arg, "a set element"))
    removes = list(dict.fromkeys(removes))  # an element named twice is removed once
    both = set(adds) & set(removes)
    if both:
        raise CrdtError(f"set op both adds and removes {min(both)!r}: send one or the other")
    return adds, removes


def apply(
    state: ORSwot, op: object, actor: str, *, context: VClock | None, now_us: int, limits: Limits
) -> ORSwot:
    """``state`` with the op applied by ``actor`` (adds take one new dot of ``actor``)."""
    adds, removes = parse_op(op, limits)
    if adds:
        clk, dot = vclock.increment(state.clock, actor)
        return _update(state, clk, dot, adds, removes, context, limits)
    return _update(state, state.clock, None, adds, removes, context, limits)


def apply_at(state: ORSwot, op: object, ev: Event) -> ORSwot:
    """The op applied inside a map, at the map's event (its dot and clock)."""
    adds, removes = parse_op(op, ev.limits)
    return _update(state, ev.clock, ev.dot, adds, removes, ev.context, ev.limits)


def _update(
    state: ORSwot,
    clk: VClock,
    dot: Dot | None,
    adds: list[str],
    removes: list[str],
    context: VClock | None,
    limits: Limits,
) -> ORSwot:
    entries = dict(state.entries)
    deferred = dict(state.deferred)
    if context is None:
        for e in removes:
            if e not in entries:
                raise PreconditionError(
                    f"set element {e!r} not present: fetch the set and send its context "
                    f"with the remove"
                )
            del entries[e]
    elif removes:
        _remove_seen(entries, removes, dict(context))
        if not vclock.descends(clk, context):
            deferred[context] = deferred.get(context, frozenset()) | frozenset(removes)
    if adds:
        assert dot is not None
        stamp = frozenset((dot,))
        for e in adds:
            entries[e] = stamp
    # Inside a map the clock is the map's, and may now descend a waiting remove's context.
    out = _apply_deferred(clk, entries, deferred)
    _check(out.entries, out.deferred, limits)
    return out


def _remove_seen(
    entries: dict[str, frozenset[Dot]], elements: frozenset[str] | list[str], ctx: dict[str, int]
) -> None:
    for e in elements:
        dots = entries.get(e)
        if dots is not None:
            left = vclock.unseen(dots, ctx)
            if left:
                entries[e] = left
            else:
                del entries[e]


def _check(
    entries: Mapping[str, object], deferred: Mapping[VClock, frozenset[str]], limits: Limits
) -> None:
    if len(entries) > limits.max_elements:
        raise LimitError(
            f"max_elements: the set would hold {len(entries)} elements, above the limit of "
            f"{limits.max_elements}"
        )
    waiting = sum(len(v) for v in deferred.values())
    if waiting > limits.max_elements:
        raise LimitError(
            f"max_elements: {waiting} removes would wait for adds not yet seen, above the "
            f"limit of {limits.max_elements}: retry once replicas have caught up"
        )


def merge(a: ORSwot, b: ORSwot) -> ORSwot:
    """Dots both hold, or one holds and the other has not seen; then the waiting removes."""
    a_seen, b_seen = dict(a.clock), dict(b.clock)
    none: frozenset[Dot] = frozenset()
    entries: dict[str, frozenset[Dot]] = {}
    for e in a.entries.keys() | b.entries.keys():
        dots = vclock.join_dots(a.entries.get(e, none), a_seen, b.entries.get(e, none), b_seen)
        if dots:
            entries[e] = dots
    deferred = dict(a.deferred)
    for ctx, elements in b.deferred.items():
        deferred[ctx] = deferred.get(ctx, frozenset()) | elements
    return _apply_deferred(vclock.join(a.clock, b.clock), entries, deferred)


def _apply_deferred(
    clk: VClock, entries: dict[str, frozenset[Dot]], deferred: dict[VClock, frozenset[str]]
) -> ORSwot:
    waiting: dict[VClock, frozenset[str]] = {}
    for ctx, elements in deferred.items():
        _remove_seen(entries, elements, dict(ctx))
        if not vclock.descends(clk, ctx):
            waiting[ctx] = elements
    return ORSwot(clk, MappingProxyType(entries), MappingProxyType(waiting))


def value(state: ORSwot) -> list[str]:
    return sorted(state.entries)


def clock(state: ORSwot) -> VClock:
    """The context a fetch hands out: removes sent with it drop only what it saw."""
    return state.clock


def to_wire(state: ORSwot) -> list[object]:
    """``[clock, [[element, dots], ...], [[context, [element, ...]], ...]]``, all sorted; a
    dot is ``[i, n]``, i the place of its actor in the clock."""
    index = vclock.actor_index(state.clock)
    return [
        vclock.to_wire(state.clock),
        [[e, vclock.dots_to_wire(dots, index)] for e, dots in sorted(state.entries.items())],
        [[vclock.to_wire(ctx), sorted(els)] for ctx, els in sorted(state.deferred.items())],
    ]


def from_wire(body: object, where: str = "set") -> ORSwot:
    raw_clock, raw_entries, raw_deferred = wire.array(body, where, 3)
    clk = vclock.from_wire(raw_clock, f"{where} clock")
    entries: dict[str, frozenset[Dot]] = {}
    items = wire.array(raw_entries, f"{where} entries")
    for item in items:
        e, dots = wire.array(item, f"{where} entry", 2)
        entries[wire.text(e, f"{where} element")] = vclock.dots_from_wire(dots, where, clk)
    if len(entries) != len(items):
        wire.fail(where, "an element appears twice")
    deferred: dict[VClock, frozenset[str]] = {}
    pending = wire.array(raw_deferred, f"{where} deferred")
    for item in pending:
        raw_ctx, raw_els = wire.array(item, f"{where} deferred", 2)
        ctx = vclock.from_wire(raw_ctx, f"{where} deferred context")
        els = [wire.text(e, f"{where} deferred element") for e in wire.array(raw_els, where)]
        if not els or vclock.descends(clk, ctx):
            wire.fail(where, "a deferred remove is empty or already applicable")
        covered = dict(ctx)
        if any(vclock.seen(covered, d) for e in els for d in entries.get(e, ())):
            wire.fail(where, "an element holds a dot its deferred remove covers")
        deferred[ctx] = frozenset(els)
    if len(deferred) != len(pending):
        wire.fail(where, "a deferred context appears twice")
    return ORSwot(clk, MappingProxyType(entries), MappingProxyType(deferred))
