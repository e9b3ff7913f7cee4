"""The counter a map embeds (riak_dt_emcntr): a PN counter that a field remove can reset.

Inside a map a counter must forget what a field removal removed, which a
max-merge cannot: a counter re-added after a remove starts below the one
removed, and the max of the totals would bring the old ones back. So each
actor's totals (P, N) are stamped with the event of the map update that wrote
them, and the state carries the map's clock. Of two entries of one actor the
later event wins; an entry one side holds and the other side's clock has seen
(without holding it) was removed there, and goes.

Ops: as :mod:`.counter`'s. Value: an int.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from dynamo.kv.crdt import vclock, wire
from dynamo.kv.crdt.counter import add_amount, parse_op
from dynamo.kv.crdt.limits import Limits
from dynamo.kv.crdt.vclock import Event, VClock

__all__ = ["EmbeddedCounter", "apply_at", "from_wire", "merge", "new", "to_wire", "value"]


def _no_entries() -> Mapping[str, tuple[int, int, int]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class EmbeddedCounter:
    """The map's clock, and per actor (event, P, N) of the actor's last update."""

    clock: VClock = ()
    entries: Mapping[str, tuple[int, int, int]] = field(default_factory=_no_entries)


def new(limits: Limits) -> EmbeddedCounter:
    return EmbeddedCounter()


def apply_at(state: EmbeddedCounter, op: object, ev: Event) -> EmbeddedCounter:
    """``state`` with the op's amount added to ``ev``'s actor, stamped with ``ev``'s event."""
    delta = parse_op(op)
    actor, event = ev.dot
    entries = dict(state.entries)
    _, p, n = entries.get(actor, (0, 0, 0))
    entries[actor] = (event, *add_amount(p, n, delta))
    return EmbeddedCounter(ev.clock, MappingProxyType(entries))


def merge(a: EmbeddedCounter, b: EmbeddedCounter) -> EmbeddedCounter:
    """Per actor the later event's totals; an entry the other side has seen but dropped goes."""
    a_seen, b_seen = dict(a.clock), dict(b.clock)
    entries: dict[str, tuple[int, int, int]] = {}
    for actor in a.entries.keys() | b.entries.keys():
        mine, theirs = a.entries.get(actor), b.entries.get(actor)
        if mine is not None and theirs is not None:
            entries[actor] = max(mine, theirs)
        elif mine is not None and not vclock.seen(b_seen, (actor, mine[0])):
            entries[actor] = mine
        elif theirs is not None and not vclock.seen(a_seen, (actor, theirs[0])):
            entries[actor] = theirs
    return EmbeddedCounter(vclock.join(a.clock, b.clock), MappingProxyType(entries))


def value(state: EmbeddedCounter) -> int:
    return sum(p - n for _, p, n in state.entries.values())


def to_wire(state: EmbeddedCounter) -> list[object]:
    """``[clock, [[[i, event], p, n], ...]]`` sorted: ``[i, event]`` is the dot of the actor's
    last update (i the place of the actor in the clock), p and n its totals."""
    index = vclock.actor_index(state.clock)
    return [
        vclock.to_wire(state.clock),
        [
            [vclock.dot_to_wire((actor, event), index), p, n]
            for actor, (event, p, n) in sorted(state.entries.items())
        ],
    ]


def from_wire(body: object, where: str = "counter") -> EmbeddedCounter:
    raw_clock, raw_entries = wire.array(body, where, 2)
    clk = vclock.from_wire(raw_clock, f"{where} clock")
    items = wire.array(raw_entries, where)
    entries: dict[str, tuple[int, int, int]] = {}
    for item in items:
        raw_dot, p, n = wire.array(item, f"{where} entry", 3)
        actor, event = vclock.dot_from_wire(raw_dot, f"{where} entry", clk)
        entries[actor] = (event, wire.integer(p, f"{where} P"), wire.integer(n, f"{where} N"))
    if len(entries) != len(items):
        wire.fail(where, "an actor appears twice")
    return EmbeddedCounter(clk, MappingProxyType(entries))
