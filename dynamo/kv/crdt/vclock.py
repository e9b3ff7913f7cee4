"""Version vectors and dots: the causal history the observed-remove types share.

A *dot* ``(actor, n)`` names one update: the n-th event of ``actor``. A clock
(version vector) ``((actor, n), ...)``, sorted by actor with every n >= 1, says
which events a state has seen: all of each actor's first n. A state that has
seen a dot but no longer holds it removed what that dot added; a state that
holds a dot the other side has not seen is newer. That one rule, in
:func:`join_dots`, is the merge of the set, the flag and the map
(riak_dt_vclock and the ORSWOT's dot kernel).

A clock is a sorted tuple so that it is hashable (pending removes are keyed by
their context) and canonical (equal clocks encode to equal bytes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dynamo.kv.crdt import wire
from dynamo.kv.crdt.errors import CrdtFormatError, LimitError
from dynamo.kv.crdt.limits import MAX_CLOCK_ENTRIES, MAX_COUNT, Limits

__all__ = [
    "Dot",
    "Event",
    "VClock",
    "actor_index",
    "descends",
    "dot_from_wire",
    "dot_to_wire",
    "dots_from_wire",
    "dots_to_wire",
    "from_wire",
    "increment",
    "join",
    "join_dots",
    "seen",
    "to_wire",
    "unseen",
]

Dot = tuple[str, int]
VClock = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Where an update inside a container happens, and the request's inputs.

    ``clock`` is the container's clock, already counting ``dot``: an embedded
    type takes it as its own (riak_dt's ``parent_clock``), so every dot inside a
    map is a map dot, unique across all its fields and all their lives.
    """

    dot: Dot
    clock: VClock
    context: VClock | None
    now_us: int
    limits: Limits
    depth: int = 1


def increment(clock: VClock, actor: str) -> tuple[VClock, Dot]:
    """``clock`` with ``actor``'s next event, and that event's dot."""
    entries = dict(clock)
    n = entries.get(actor, 0) + 1
    if n > MAX_COUNT:
        raise LimitError(f"clock counter of {actor!r} would pass {MAX_COUNT}")
    if n == 1 and len(entries) >= MAX_CLOCK_ENTRIES:
        raise LimitError(f"clock already names {MAX_CLOCK_ENTRIES} actors (MAX_CLOCK_ENTRIES)")
    entries[actor] = n
    return tuple(sorted(entries.items())), (actor, n)


def join(a: VClock, b: VClock) -> VClock:
    """The least clock that has seen all ``a`` and ``b`` have."""
    if a == b or not b:
        return a
    if not a:
        return b
    entries = dict(a)
    for actor, n in b:
        if n > entries.get(actor, 0):
            entries[actor] = n
    return tuple(sorted(entries.items()))


def descends(a: VClock, b: VClock) -> bool:
    """Whether ``a`` has seen every event ``b`` has."""
    have = dict(a)
    return all(have.get(actor, 0) >= n for actor, n in b)


def seen(clock: Mapping[str, int], dot: Dot) -> bool:
    """Whether a clock (as a dict, for speed) has seen ``dot``."""
    return clock.get(dot[0], 0) >= dot[1]


def unseen(dots: frozenset[Dot], clock: Mapping[str, int]) -> frozenset[Dot]:
    """The dots ``clock`` has not seen (riak_dt's ``subtract_dots``)."""
    return frozenset(d for d in dots if clock.get(d[0], 0) < d[1])


def join_dots(
    a: frozenset[Dot], a_clock: Mapping[str, int], b: frozenset[Dot], b_clock: Mapping[str, int]
) -> frozenset[Dot]:
    """The dots that survive a merge: those both hold, and those one holds that the other
    has not seen. A dot one side has seen but dropped was removed there, so it goes."""
    if a == b:
        return a
    common = a & b
    return (
        common
        | frozenset(d for d in a - common if b_clock.get(d[0], 0) < d[1])
        | frozenset(d for d in b - common if a_clock.get(d[0], 0) < d[1])
    )


# --- Wire -----------------------------------------------------------------------------------


def to_wire(clock: VClock) -> list[list[object]]:
    """``[[actor, n], ...]`` sorted by actor."""
    return [[actor, n] for actor, n in clock]


def from_wire(obj: object, where: str) -> VClock:
    """A clock from ``[[actor, n], ...]`` (any order; an actor at most once, every n >= 1)."""
    items = wire.array(obj, where)
    if len(items) > MAX_CLOCK_ENTRIES:
        wire.fail(where, f"{len(items)} actors, limit {MAX_CLOCK_ENTRIES}")
    out: dict[str, int] = {}
    for item in items:
        actor, n = wire.array(item, where, 2)
        out[wire.actor(actor, where)] = wire.integer(n, where, 1)
    if len(out) != len(items):
        wire.fail(where, "an actor appears twice")
    return tuple(sorted(out.items()))


def actor_index(clock: VClock) -> dict[str, int]:
    """Each actor's place in ``clock``: a state's dots name their actor by it on the wire."""
    return {actor: i for i, (actor, _) in enumerate(clock)}


def dot_to_wire(dot: Dot, index: Mapping[str, int]) -> list[int]:
    """``[i, n]``: the i-th actor of the state's clock, its n-th event."""
    return [index[dot[0]], dot[1]]


def dots_to_wire(dots: Iterable[Dot], index: Mapping[str, int]) -> list[list[int]]:
    """``[[i, n], ...]`` sorted (see :func:`dot_to_wire`)."""
    return sorted(dot_to_wire(d, index) for d in dots)


def dot_from_wire(obj: object, where: str, clock: VClock) -> Dot:
    """A dot ``[i, n]`` of ``clock``'s i-th actor, which ``clock`` must have seen."""
    i, n = wire.array(obj, where, 2)
    actor, top = clock[wire.integer(i, f"{where} actor index", 0, len(clock) - 1)]
    return actor, wire.integer(n, f"{where} event", 1, top)


def dots_from_wire(obj: object, where: str, clock: VClock) -> frozenset[Dot]:
    """A non-empty set of dots, each seen by ``clock`` (a state's dots are its own events)."""
    items = wire.array(obj, where)
    out = frozenset(dot_from_wire(item, where, clock) for item in items)
    if not out or len(out) != len(items):
        raise CrdtFormatError(f"{where}: dots must be a non-empty array, each dot once")
    return out
