"""The counter of a ``counter`` bucket: a PN counter (riak_dt_pncounter).

A PN counter keeps, per actor, the total of its increments (P) and of its
decrements (N); its value is the sum of P - N. An actor only ever raises its own
two totals, so a merge takes the larger of each, per actor: commutative,
associative, idempotent, and an increment counts once however often a state is
re-sent. (A map's counter fields are :mod:`.emcounter`'s, which can be reset.)

Ops (Riak's HTTP JSON): ``{"increment": n}`` (n may be negative),
``{"decrement": n}``, or a bare integer n. Value: an int.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from dynamo.kv.crdt import wire
from dynamo.kv.crdt.errors import CrdtError, LimitError
from dynamo.kv.crdt.limits import MAX_COUNT, Limits
from dynamo.kv.crdt.vclock import VClock

__all__ = [
    "Counter",
    "add_amount",
    "apply",
    "clock",
    "from_wire",
    "merge",
    "new",
    "parse_op",
    "to_wire",
    "value",
]

_OP_HELP = 'send {"increment": n} or {"decrement": n} with n an integer'


def _no_entries() -> Mapping[str, tuple[int, int]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Counter:
    """A PN counter: per actor, (total incremented, total decremented)."""

    entries: Mapping[str, tuple[int, int]] = field(default_factory=_no_entries)


def parse_op(op: object) -> int:
    """The signed amount an op adds to the counter."""
    if type(op) is int:
        delta = op
    elif isinstance(op, Mapping) and len(op) == 1:
        ((key, amount),) = op.items()
        if key not in ("increment", "decrement") or type(amount) is not int:
            raise CrdtError(f"bad counter op {dict(op)!r:.80}: {_OP_HELP}")
        delta = amount if key == "increment" else -amount
    else:
        raise CrdtError(f"bad counter op {op!r:.80}: {_OP_HELP}")
    if abs(delta) > MAX_COUNT:
        raise LimitError(f"counter op of {delta} is beyond +-{MAX_COUNT}")
    return delta


def add_amount(p: int, n: int, delta: int) -> tuple[int, int]:
    """The totals (P, N) after adding ``delta``, or LimitError past int64."""
    if delta >= 0:
        p += delta
    else:
        n -= delta
    if p > MAX_COUNT or n > MAX_COUNT:
        raise LimitError(f"an actor's counter total would pass {MAX_COUNT}")
    return p, n


def new(limits: Limits) -> Counter:
    return Counter()


def apply(
    state: Counter, op: object, actor: str, *, context: VClock | None, now_us: int, limits: Limits
) -> Counter:
    """``state`` with ``actor``'s increment or decrement added."""
    delta = parse_op(op)
    if delta == 0:
        return state
    entries = dict(state.entries)
    entries[actor] = add_amount(*entries.get(actor, (0, 0)), delta)
    return Counter(MappingProxyType(entries))


def merge(a: Counter, b: Counter) -> Counter:
    """Per actor, the larger of each total."""
    if a == b:
        return a
    entries = dict(a.entries)
    for actor, (p, n) in b.entries.items():
        mine = entries.get(actor)
        entries[actor] = (p, n) if mine is None else (max(mine[0], p), max(mine[1], n))
    return Counter(MappingProxyType(entries))


def value(state: Counter) -> int:
    return sum(p - n for p, n in state.entries.values())


def clock(state: Counter) -> None:
    """A counter needs no context: nothing of it is ever removed."""
    return None


def to_wire(state: Counter) -> list[object]:
    """``[[actor, p, n], ...]`` sorted by actor."""
    return [[actor, p, n] for actor, (p, n) in sorted(state.entries.items())]


def from_wire(body: object) -> Counter:
    entries: dict[str, tuple[int, int]] = {}
    items = wire.array(body, "counter")
    for item in items:
        actor, p, n = wire.array(item, "counter entry", 3)
        key = wire.actor(actor, "counter entry")
        entries[key] = (wire.integer(p, "counter P"), wire.integer(n, "counter N"))
        if entries[key] == (0, 0):
            wire.fail("counter entry", f"{key!r} holds nothing (never written)")
    if len(entries) != len(items):
        wire.fail("counter", "an actor appears twice")
    return Counter(MappingProxyType(entries))
