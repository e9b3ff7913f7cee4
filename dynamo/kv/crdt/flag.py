"""The flag: enable wins (riak_dt_od_flag), for maps.

A flag is an observed-remove set of one element. Enable stamps it with one new
dot (and drops the older dots, which the enabler has seen); disable drops the
dots it observed: all the coordinator holds without a context, only those the
context covers with one (kept, deferred, until the clock has seen the whole
context, as the set does). The flag is on while any dot survives. So an enable
concurrent with a disable survives it: the disable could not have observed the
enable's dot, and a merge keeps a dot the other side has not seen.

Riak has flags only inside maps; here a flag can also stand alone (its own
clock) so it can be tested and stored on its own.

Ops: ``"enable"``, ``"disable"``. Value: a bool.
"""

from __future__ import annotations

from dataclasses import dataclass

from dynamo.kv.crdt import vclock, wire
from dynamo.kv.crdt.errors import CrdtError, LimitError
from dynamo.kv.crdt.limits import Limits
from dynamo.kv.crdt.vclock import Dot, Event, VClock

__all__ = ["Flag", "apply", "apply_at", "clock", "from_wire", "merge", "new", "to_wire", "value"]


@dataclass(frozen=True, slots=True)
class Flag:
    """An enable-wins flag: its clock, the dots of its live enables, disables waiting."""

    clock: VClock = ()
    dots: frozenset[Dot] = frozenset()
    deferred: frozenset[VClock] = frozenset()


def new(limits: Limits) -> Flag:
    return Flag()


def _parse(op: object) -> bool:
    if op == "enable":
        return True
    if op == "disable":
        return False
    raise CrdtError(f'bad flag op {op!r:.80}: send "enable" or "disable"')


def apply(
    state: Flag, op: object, actor: str, *, context: VClock | None, now_us: int, limits: Limits
) -> Flag:
    """Enable with a new dot of ``actor``, or disable what was observed."""
    if _parse(op):
        clk, dot = vclock.increment(state.clock, actor)
        return _settle(Flag(clk, frozenset((dot,)), state.deferred))
    return _bounded(_settle(_disable(state, state.clock, context)), limits)


def apply_at(state: Flag, op: object, ev: Event) -> Flag:
    """The op applied inside a map, at the map's event."""
    if _parse(op):
        return _settle(Flag(ev.clock, frozenset((ev.dot,)), state.deferred))
    return _bounded(_settle(_disable(state, ev.clock, ev.context)), ev.limits)


def _bounded(state: Flag, limits: Limits) -> Flag:
    if len(state.deferred) > limits.max_elements:
        raise LimitError(
            f"max_elements: {len(state.deferred)} disables would wait for enables not yet "
            f"seen, above the limit of {limits.max_elements}: retry once replicas have caught up"
        )
    return state


def _disable(state: Flag, clk: VClock, context: VClock | None) -> Flag:
    if context is None:
        return Flag(clk, frozenset(), state.deferred)
    deferred = state.deferred
    if not vclock.descends(clk, context):
        deferred = deferred | {context}
    return Flag(clk, vclock.unseen(state.dots, dict(context)), deferred)


def merge(a: Flag, b: Flag) -> Flag:
    """Dots both hold, or one holds and the other has not seen; then the waiting disables."""
    dots = vclock.join_dots(a.dots, dict(a.clock), b.dots, dict(b.clock))
    return _settle(Flag(vclock.join(a.clock, b.clock), dots, a.deferred | b.deferred))


def _settle(state: Flag) -> Flag:
    """Apply the waiting disables; drop those whose context the clock now descends."""
    if not state.deferred:
        return state
    dots = state.dots
    for ctx in state.deferred:
        dots = vclock.unseen(dots, dict(ctx))
    waiting = frozenset(c for c in state.deferred if not vclock.descends(state.clock, c))
    return Flag(state.clock, dots, waiting)


def value(state: Flag) -> bool:
    return bool(state.dots)


def clock(state: Flag) -> VClock:
    return state.clock


def to_wire(state: Flag) -> list[object]:
    """``[clock, dots, [context, ...]]``, all sorted; a dot is ``[i, n]`` as in the set."""
    return [
        vclock.to_wire(state.clock),
        vclock.dots_to_wire(state.dots, vclock.actor_index(state.clock)),
        [vclock.to_wire(ctx) for ctx in sorted(state.deferred)],
    ]


def from_wire(body: object, where: str = "flag") -> Flag:
    raw_clock, raw_dots, raw_deferred = wire.array(body, where, 3)
    clk = vclock.from_wire(raw_clock, f"{where} clock")
    dots = (
        vclock.dots_from_wire(raw_dots, f"{where} dots", clk)
        if wire.array(raw_dots, where)
        else frozenset()
    )
    items = wire.array(raw_deferred, f"{where} deferred")
    deferred = frozenset(vclock.from_wire(c, f"{where} deferred") for c in items)
    if len(deferred) != len(items):
        wire.fail(where, "a deferred context appears twice")
    for ctx in deferred:
        if vclock.descends(clk, ctx) or vclock.unseen(dots, dict(ctx)) != dots:
            wire.fail(where, "a deferred disable is already applicable")
    return Flag(clk, dots, deferred)
