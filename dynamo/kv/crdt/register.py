"""The register: last writer wins (riak_dt_lwwreg), ordered by (timestamp_us, actor).

An assignment carries the coordinator's time and its actor; a merge keeps the
greater (timestamp_us, actor, value), a total order, so any two replicas pick the
same winner whatever the delivery order (the value only breaks the tie of one
actor assigning twice in one microsecond, which cannot happen through
:func:`apply`).

One choice beyond riak_dt: an assignment is stamped ``max(now_us, current + 1)``,
not ``now_us`` alone. A coordinator whose clock lags the timestamp it already
holds would otherwise lose its own later write (riak_dt drops such a write
silently); with the bump a write always wins over every value its coordinator
had seen, and concurrent writes are still ordered by time, then actor.

Riak has registers only inside maps; here a register can also stand alone.

Ops: a string, or ``{"assign": s}``. Value: the string (None before any assignment).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dynamo.kv.crdt import wire
from dynamo.kv.crdt.errors import CrdtError, LimitError
from dynamo.kv.crdt.limits import MAX_COUNT, Limits, check_text
from dynamo.kv.crdt.vclock import Event, VClock

__all__ = [
    "Register",
    "apply",
    "apply_at",
    "clock",
    "from_wire",
    "merge",
    "new",
    "to_wire",
    "value",
]


@dataclass(frozen=True, slots=True, order=True)
class Register:
    """The winning assignment; ``timestamp_us == -1`` means never assigned.

    Fields are in the order of the tiebreak, so ``max`` of two registers is their merge.
    """

    timestamp_us: int = -1
    actor: str = ""
    value: str = ""


def new(limits: Limits) -> Register:
    return Register()


def _parse(op: object) -> str:
    if isinstance(op, Mapping) and set(op) == {"assign"}:
        op = op["assign"]
    if type(op) is not str:
        raise CrdtError(f'bad register op {op!r:.80}: send a string or {{"assign": s}}')
    return check_text(op, "a register value")


def _assign(state: Register, text: str, actor: str, now_us: int) -> Register:
    stamp = max(now_us, state.timestamp_us + 1)
    if stamp > MAX_COUNT:
        raise LimitError(f"register timestamp would pass {MAX_COUNT}")
    return Register(stamp, actor, text)


def apply(
    state: Register, op: object, actor: str, *, context: VClock | None, now_us: int, limits: Limits
) -> Register:
    """``state`` assigned by ``actor`` at ``now_us`` (or just after the current assignment)."""
    return _assign(state, _parse(op), actor, now_us)


def apply_at(state: Register, op: object, ev: Event) -> Register:
    """The op applied inside a map: the map event's actor assigns at its time."""
    return _assign(state, _parse(op), ev.dot[0], ev.now_us)


def merge(a: Register, b: Register) -> Register:
    return max(a, b)


def value(state: Register) -> str | None:
    return None if state.timestamp_us < 0 else state.value


def clock(state: Register) -> None:
    """A register needs no context: the greatest assignment wins."""
    return None


def to_wire(state: Register) -> list[object]:
    """``[]`` before any assignment, else ``[timestamp_us, actor, value]``."""
    if state.timestamp_us < 0:
        return []
    return [state.timestamp_us, state.actor, state.value]


def from_wire(body: object, where: str = "register") -> Register:
    items = wire.array(body, where)
    if not items:
        return Register()
    ts, actor, text = wire.array(items, where, 3)
    return Register(
        wire.integer(ts, f"{where} timestamp_us"),
        wire.actor(actor, f"{where} actor"),
        wire.text(text, f"{where} value"),
    )
