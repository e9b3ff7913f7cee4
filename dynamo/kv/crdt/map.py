"""The map: named fields of embedded types, observed-remove per field (riak_dt_map).

A field is named ``<name>_<type>``, type one of counter, flag, map, register,
set, as in Riak's HTTP API. Each field's value is held *per dot*: an update of
a field merges the values the field holds, applies the op, and stores the
result under the update's new dot, dropping the dots it merged. A merge keeps a
field's dot when both sides hold it (the same value) or one side holds it and
the other's clock has not seen it, as the set keeps an element's dots; a
field's value is the merge of its surviving dots' values. Embedded types take
the map's clock and dots as their own, so every dot inside a map is unique.

So a field remove drops only the dots its remover observed. An update
concurrent with it survives, with the value its updater made (what it had seen
plus its op: appending to a file someone deleted brings the whole file back). A
field removed then updated starts afresh (reset-remove); since the fresh value
carries the map's clock, its merge with a concurrent update also drops what the
remover had seen of that update's set elements, flag enables and counter totals.
riak_dt keeps a per-field tombstone to reset a concurrently updated field even
when nobody re-adds it; we keep none, because replicas can end with different
tombstones (riak_dt's equality ignores them) and we promise equal states and
bytes. As in riak_dt, a nested remove still waiting for its adds (deferred) is
lost if its whole field is removed.

Removes follow the set: without a context the field must be present at the
coordinator (else ``PreconditionError``) and all its dots go; with a fetch's
context only the dots it covers go, deferred until the clock has seen all of
it. The same context serves every nested type.

Op (Riak's HTTP JSON), with a field in ``update`` or ``remove``, never both::

    {"update": {"name_register": "v", "visits_counter": 1, "tags_set": {"add": "x"},
                "on_flag": "enable", "sub_map": {"update": {...}, "remove": [...]}},
     "remove": ["old_register"]}

A counter field takes an int or ``{"increment": n}``, a register a string or
``{"assign": s}``, a flag ``"enable"``/``"disable"``. Value: ``{"name_register":
"v", "visits_counter": 1, "tags_set": [...], "on_flag": true, "sub_map": {...}}``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final, Protocol

from dynamo.kv.crdt import emcounter, flag, orset, register, vclock, wire
from dynamo.kv.crdt.errors import CrdtError, LimitError, PreconditionError
from dynamo.kv.crdt.limits import MAX_DEPTH, Limits, check_text
from dynamo.kv.crdt.vclock import Dot, Event, VClock

__all__ = [
    "FIELD_TYPES",
    "MapState",
    "apply",
    "apply_at",
    "clock",
    "field_type",
    "from_wire",
    "merge",
    "new",
    "to_wire",
    "value",
]

FIELD_TYPES: Final = ("counter", "flag", "map", "register", "set")
_OP_HELP = 'send {"update": {"<name>_<type>": op, ...}, "remove": ["<name>_<type>", ...]}'

Values = Mapping[Dot, Any]
_LIMITS: Final = Limits()


def _no_fields() -> Mapping[str, Values]:
    return MappingProxyType({})


def _no_deferred() -> Mapping[VClock, frozenset[str]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class MapState:
    """A map: its clock, per field the value under each surviving dot, removes waiting."""

    clock: VClock = ()
    fields: Mapping[str, Values] = field(default_factory=_no_fields)
    deferred: Mapping[VClock, frozenset[str]] = field(default_factory=_no_deferred)


class _FieldType(Protocol):
    """What the map needs of an embedded type: the modules emcounter, flag, map, orset and
    register each are one (mypy holds them to it)."""

    def new(self, limits: Limits) -> Any: ...
    def apply_at(self, state: Any, op: object, ev: Event) -> Any: ...
    def merge(self, a: Any, b: Any) -> Any: ...
    def value(self, state: Any) -> Any: ...
    def to_wire(self, state: Any) -> object: ...
    def from_wire(self, body: object, where: str) -> Any: ...


def field_type(name: object) -> str:
    """The type a field's name ends in, or CrdtError saying how to name it."""
    text = check_text(name, "a map field name")
    base, sep, kind = text.rpartition("_")
    if not (sep and base and kind in FIELD_TYPES):
        raise CrdtError(
            f"map field {text!r:.80}: name it <name>_<type>, type one of {', '.join(FIELD_TYPES)}"
        )
    return kind


def new(limits: Limits) -> MapState:
    return MapState()


def apply(
    state: MapState, op: object, actor: str, *, context: VClock | None, now_us: int, limits: Limits
) -> MapState:
    """``state`` with the op applied at a new event of ``actor``."""
    clk, dot = vclock.increment(state.clock, actor)
    ev = Event(dot=dot, clock=clk, context=context, now_us=now_us, limits=limits)
    return apply_at(state, op, ev)


def _parse(op: object) -> tuple[Mapping[str, object], list[str]]:
    if not isinstance(op, Mapping) or not op or not set(op) <= {"update", "remove"}:
        raise CrdtError(f"bad map op {op!r:.80}: {_OP_HELP}")
    updates = op.get("update", {})
    removes = op.get("remove", [])
    if not isinstance(updates, Mapping) or not isinstance(removes, list):
        raise CrdtError(f"bad map op: 'update' takes an object, 'remove' a list: {_OP_HELP}")
    if not updates and not removes:
        raise CrdtError(f"empty map op: {_OP_HELP}")
    for name in [*updates, *removes]:
        field_type(name)
    removes = list(dict.fromkeys(removes))  # a field named twice is removed once
    both = set(updates) & set(removes)
    if both:
        raise CrdtError(f"map op both updates and removes {min(both)!r}: send one or the other")
    return updates, removes


def apply_at(state: MapState, op: object, ev: Event) -> MapState:
    """The op applied at ``ev``: the top map's own event, or its parent's for a nested map."""
    limits = ev.limits
    if ev.depth > limits.max_depth:
        raise LimitError(
            f"max_depth: maps nest at most {limits.max_depth} deep, this one would be at "
            f"depth {ev.depth}"
        )
    updates, removes = _parse(op)
    fields = dict(state.fields)
    deferred = dict(state.deferred)
    for name in removes:
        if ev.context is None:
            if name not in fields:
                raise PreconditionError(
                    f"map field {name!r} not present: fetch the map and send its context "
                    f"with the remove"
                )
            del fields[name]
    if removes and ev.context is not None:
        _remove_seen(fields, removes, dict(ev.context))
        if not vclock.descends(ev.clock, ev.context):
            deferred[ev.context] = deferred.get(ev.context, frozenset()) | frozenset(removes)
    for name, sub_op in updates.items():
        kind = field_type(name)
        ftype = _FIELD[kind]
        current = _merged(ftype, fields.get(name), limits)
        sub_ev = replace(ev, depth=ev.depth + 1) if kind == "map" else ev
        try:
            updated = ftype.apply_at(current, sub_op, sub_ev)
        except CrdtError as exc:
            raise type(exc)(f"{name}: {exc}") from None
        fields[name] = MappingProxyType({ev.dot: updated})
    if len(fields) > limits.max_elements:
        raise LimitError(
            f"max_elements: the map would hold {len(fields)} fields, above the limit of "
            f"{limits.max_elements}"
        )
    # A nested map takes its parent's clock, which may now descend a waiting remove's context.
    deferred = _apply_deferred(ev.clock, fields, deferred)
    waiting = sum(len(v) for v in deferred.values())
    if waiting > limits.max_elements:
        raise LimitError(
            f"max_elements: {waiting} field removes would wait for updates not yet seen, "
            f"above the limit of {limits.max_elements}: retry once replicas have caught up"
        )
    return MapState(ev.clock, MappingProxyType(fields), MappingProxyType(deferred))


def _merged(ftype: _FieldType, values: Values | None, limits: Limits = _LIMITS) -> Any:
    """The merge of a field's values, in dot order (so every replica computes the same)."""
    if not values:
        return ftype.new(limits)
    ordered = [values[d] for d in sorted(values)]
    return functools.reduce(ftype.merge, ordered)


def _remove_seen(
    fields: dict[str, Values], names: frozenset[str] | list[str], ctx: dict[str, int]
) -> None:
    for name in names:
        values = fields.get(name)
        if values is not None:
            left = {d: v for d, v in values.items() if not vclock.seen(ctx, d)}
            if not left:
                del fields[name]
            elif len(left) < len(values):
                fields[name] = MappingProxyType(left)


def merge(a: MapState, b: MapState) -> MapState:
    """Per field, the dots both hold or one holds unseen by the other; then waiting removes."""
    a_seen, b_seen = dict(a.clock), dict(b.clock)
    none: Values = MappingProxyType({})
    fields: dict[str, Values] = {}
    for name in a.fields.keys() | b.fields.keys():
        mine, theirs = a.fields.get(name, none), b.fields.get(name, none)
        if mine == theirs:
            fields[name] = mine
            continue
        kept: dict[Dot, Any] = {}
        for dot, v in mine.items():
            if dot in theirs:
                w = theirs[dot]
                kept[dot] = v if v == w else _FIELD[field_type(name)].merge(v, w)
            elif not vclock.seen(b_seen, dot):
                kept[dot] = v
        for dot, w in theirs.items():
            if dot not in mine and not vclock.seen(a_seen, dot):
                kept[dot] = w
        if kept:
            fields[name] = MappingProxyType(kept)
    deferred = dict(a.deferred)
    for ctx, names in b.deferred.items():
        deferred[ctx] = deferred.get(ctx, frozenset()) | names
    clk = vclock.join(a.clock, b.clock)
    waiting = _apply_deferred(clk, fields, deferred)
    return MapState(clk, MappingProxyType(fields), MappingProxyType(waiting))


def _apply_deferred(
    clk: VClock, fields: dict[str, Values], deferred: Mapping[VClock, frozenset[str]]
) -> dict[VClock, frozenset[str]]:
    """Apply the waiting removes to ``fields``; those ``clk`` does not descend wait on."""
    waiting: dict[VClock, frozenset[str]] = {}
    for ctx, names in deferred.items():
        _remove_seen(fields, names, dict(ctx))
        if not vclock.descends(clk, ctx):
            waiting[ctx] = names
    return waiting


def value(state: MapState) -> dict[str, object]:
    """Each present field's value, by name."""
    return {
        name: _FIELD[field_type(name)].value(_merged(_FIELD[field_type(name)], values))
        for name, values in sorted(state.fields.items())
    }


def clock(state: MapState) -> VClock:
    """The context a fetch hands out, for field removes and every nested remove."""
    return state.clock


def to_wire(state: MapState) -> list[object]:
    """``[clock, [[name, [[[i, n], body], ...]], ...], [[context, [name, ...]], ...]]``,
    all sorted; ``[i, n]`` is a dot (i the place of its actor in the clock), each body the
    field type's own encoding (the name says which)."""
    index = vclock.actor_index(state.clock)
    fields = []
    for name, values in sorted(state.fields.items()):
        to_wire = _FIELD[field_type(name)].to_wire
        dots = sorted(values)
        fields.append([name, [[vclock.dot_to_wire(d, index), to_wire(values[d])] for d in dots]])
    return [
        vclock.to_wire(state.clock),
        fields,
        [[vclock.to_wire(ctx), sorted(names)] for ctx, names in sorted(state.deferred.items())],
    ]


def from_wire(body: object, where: str = "map", depth: int = 1) -> MapState:
    if depth > MAX_DEPTH:
        wire.fail(where, f"maps nest deeper than {MAX_DEPTH}")
    raw_clock, raw_fields, raw_deferred = wire.array(body, where, 3)
    clk = vclock.from_wire(raw_clock, f"{where} clock")
    fields: dict[str, Values] = {}
    items = wire.array(raw_fields, f"{where} fields")
    for item in items:
        raw_name, raw_values = wire.array(item, f"{where} field", 2)
        name = wire.text(raw_name, f"{where} field name")
        try:
            kind = field_type(name)
        except CrdtError as exc:
            wire.fail(where, str(exc))
        ftype = _FIELD[kind]
        at = f"{where}.{name}"
        values: dict[Dot, Any] = {}
        entries = wire.array(raw_values, at)
        for entry in entries:
            raw_dot, sub = wire.array(entry, at, 2)
            dot = vclock.dot_from_wire(raw_dot, at, clk)
            nested = kind == "map"
            values[dot] = from_wire(sub, at, depth + 1) if nested else ftype.from_wire(sub, at)
        if not values or len(values) != len(entries):
            wire.fail(at, "a field needs at least one value, each dot once")
        fields[name] = MappingProxyType(values)
    if len(fields) != len(items):
        wire.fail(where, "a field appears twice")
    deferred: dict[VClock, frozenset[str]] = {}
    pending = wire.array(raw_deferred, f"{where} deferred")
    for item in pending:
        raw_ctx, raw_names = wire.array(item, f"{where} deferred", 2)
        ctx = vclock.from_wire(raw_ctx, f"{where} deferred context")
        names = [wire.text(x, f"{where} deferred field") for x in wire.array(raw_names, where)]
        covered = dict(ctx)
        if (
            not names
            or vclock.descends(clk, ctx)
            or any(vclock.seen(covered, d) for x in names for d in fields.get(x, ()))
        ):
            wire.fail(where, "a deferred remove is empty or already applicable")
        deferred[ctx] = frozenset(names)
    if len(deferred) != len(pending):
        wire.fail(where, "a deferred context appears twice")
    return MapState(clk, MappingProxyType(fields), MappingProxyType(deferred))


# The map is a field type of its own (nested maps): this module is that entry.
from dynamo.kv.crdt import map as _nested  # noqa: E402  (a module importing itself, now defined)

_FIELD: Final[dict[str, _FieldType]] = {
    "counter": emcounter,
    "flag": flag,
    "map": _nested,
    "register": register,
    "set": orset,
}
