"""Dotted version vector sets: the causality of one key's siblings.

After Almeida, Baquero, Goncalves, Preguica and Fonte, *Scalable and Accurate
Causality Tracking for Eventually Consistent Stores*, and Riak's ``dvvset.erl``.

A clock is a tuple of entries ``(actor, counter, values)`` sorted by actor,
where ``values`` holds the siblings written by that actor that are not yet
covered by a later write, newest first: the k-th value of an entry with
counter ``n`` carries the *dot* ``(actor, n - k)``. ``anonymous`` holds values
that have no dot yet (a client's write before a coordinator stamps it).

The client's *context* is ``join(clock)``: the version vector of the clock,
``((actor, counter), ...)`` sorted by actor.

Laws (tested with hypothesis in ``tests/unit/test_dvvset.py``): ``sync`` is
commutative, associative and idempotent; a write whose context saw every
sibling replaces them all; two writes with the same context become two
siblings; siblings never outnumber truly concurrent writes.

Pure: no I/O, no clock, no randomness. Values are compared by equality only
where two replicas hold the same dot, which by construction means the same
value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

V = TypeVar("V")
K = TypeVar("K")

Dot = tuple[str, int]
VersionVector = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Clock(Generic[V]):
    """A DVVSet: causal history plus the siblings it has not yet superseded."""

    entries: tuple[tuple[str, int, tuple[V, ...]], ...] = ()
    anonymous: tuple[V, ...] = ()


EMPTY: Clock[Any] = Clock()


def new(value: V) -> Clock[V]:
    """A client write with no context: one anonymous value."""
    return Clock((), (value,))


def new_with_context(context: VersionVector, value: V) -> Clock[V]:
    """A client write made after reading ``context``."""
    ordered = sorted(context)
    return Clock(tuple((actor, counter, ()) for actor, counter in ordered), (value,))


def join(clock: Clock[V]) -> VersionVector:
    """The version vector of a clock: what a client carries as its context."""
    return tuple((actor, counter) for actor, counter, _ in clock.entries)


def values(clock: Clock[V]) -> list[V]:
    """Every sibling: anonymous ones first, then per actor, newest first."""
    out = list(clock.anonymous)
    for _, _, vals in clock.entries:
        out.extend(vals)
    return out


def values_with_dots(clock: Clock[V]) -> list[tuple[Dot | None, V]]:
    """Every sibling with its dot (``None`` for anonymous values)."""
    out: list[tuple[Dot | None, V]] = [(None, v) for v in clock.anonymous]
    for actor, counter, vals in clock.entries:
        for k, v in enumerate(vals):
            out.append(((actor, counter - k), v))
    return out


def size(clock: Clock[V]) -> int:
    """Number of siblings."""
    return len(clock.anonymous) + sum(len(vals) for _, _, vals in clock.entries)


def _merge_entry(
    actor: str, n1: int, l1: tuple[V, ...], n2: int, l2: tuple[V, ...]
) -> tuple[str, int, tuple[V, ...]]:
    # The newer entry's history ends at its counter; its values start at
    # counter - len(values) + 1. Keep only the values neither side has seen
    # superseded.
    if n1 >= n2:
        if n1 - len(l1) >= n2 - len(l2):
            return (actor, n1, l1)
        return (actor, n1, l1[: n1 - n2 + len(l2)])
    if n2 - len(l2) >= n1 - len(l1):
        return (actor, n2, l2)
    return (actor, n2, l2[: n2 - n1 + len(l1)])


def _sync_entries(
    e1: tuple[tuple[str, int, tuple[V, ...]], ...],
    e2: tuple[tuple[str, int, tuple[V, ...]], ...],
) -> tuple[tuple[str, int, tuple[V, ...]], ...]:
    out: list[tuple[str, int, tuple[V, ...]]] = []
    i = j = 0
    len1, len2 = len(e1), len(e2)
    while i < len1 and j < len2:
        a1, a2 = e1[i], e2[j]
        if a1[0] < a2[0]:
            out.append(a1)
            i += 1
        elif a1[0] > a2[0]:
            out.append(a2)
            j += 1
        else:
            if a1 == a2:
                out.append(a1)
            else:
                out.append(_merge_entry(a1[0], a1[1], a1[2], a2[1], a2[2]))
            i += 1
            j += 1
    if i < len1:
        out.extend(e1[i:])
    if j < len2:
        out.extend(e2[j:])
    return tuple(out)


def _greater(
    e1: Sequence[tuple[str, int, Any]], e2: Sequence[tuple[str, int, Any]], strict: bool
) -> bool:
    i = j = 0
    len1, len2 = len(e1), len(e2)
    while True:
        if i == len1 and j == len2:
            return strict
        if j == len2:
            return True
        if i == len1:
            return False
        a1, n1, _ = e1[i]
        a2, n2, _ = e2[j]
        if a1 == a2:
            if n1 < n2:
                return False
            if n1 > n2:
                strict = True
            i += 1
            j += 1
        elif a1 < a2:
            strict = True
            i += 1
        else:
            return False


def less(c1: Clock[V], c2: Clock[V]) -> bool:
    """True when ``c1``'s history is strictly contained in ``c2``'s."""
    return _greater(c2.entries, c1.entries, False)


def descends(c1: Clock[V], c2: Clock[V]) -> bool:
    """True when ``c1``'s history contains all of ``c2``'s (equal counts)."""
    return _greater(c1.entries, c2.entries, True) or join(c1) == join(c2)


def _union(x: tuple[V, ...], y: tuple[V, ...]) -> tuple[V, ...]:
    out = list(x)
    for v in y:
        if v not in out:
            out.append(v)
    return tuple(out)


def sync(c1: Clock[V], c2: Clock[V]) -> Clock[V]:
    """Merge two replicas' clocks, dropping every value the other has seen superseded."""
    if c1 is c2 or c1 == c2:
        return c1
    if not c1.entries and not c1.anonymous:
        return c2
    if not c2.entries and not c2.anonymous:
        return c1
    if c1.entries == c2.entries:
        return Clock(c1.entries, _union(c1.anonymous, c2.anonymous))
    if less(c1, c2):
        anonymous = c2.anonymous
    elif less(c2, c1):
        anonymous = c1.anonymous
    else:
        anonymous = _union(c1.anonymous, c2.anonymous)
    return Clock(_sync_entries(c1.entries, c2.entries), anonymous)


def sync_all(clocks: Iterable[Clock[V]]) -> Clock[V]:
    """``sync`` folded over any number of clocks (the empty clock for none)."""
    acc: Clock[V] = EMPTY
    for c in clocks:
        acc = sync(acc, c)
    return acc


def _event(
    entries: tuple[tuple[str, int, tuple[V, ...]], ...], actor: str, value: V
) -> tuple[tuple[str, int, tuple[V, ...]], ...]:
    out: list[tuple[str, int, tuple[V, ...]]] = []
    for idx, (a, n, vals) in enumerate(entries):
        if a == actor:
            out.append((a, n + 1, (value, *vals)))
            out.extend(entries[idx + 1 :])
            return tuple(out)
        if a > actor:
            out.append((actor, 1, (value,)))
            out.extend(entries[idx:])
            return tuple(out)
        out.append((a, n, vals))
    out.append((actor, 1, (value,)))
    return tuple(out)


def next_dot(client: Clock[V], server: Clock[V] | None, actor: str) -> Dot:
    """The dot that ``update(client, server, actor)`` will give the new value."""
    counter = 0
    for a, n, _ in client.entries:
        if a == actor:
            counter = n
    if server is not None:
        for a, n, _ in server.entries:
            if a == actor:
                counter = max(counter, n)
    return (actor, counter + 1)


def update(client: Clock[V], server: Clock[V] | None, actor: str) -> Clock[V]:
    """Stamp a client's write (one anonymous value) with a new dot of ``actor``.

    Values in ``server`` that the client's context covers are discarded; the
    rest stay as siblings of the new value.
    """
    if len(client.anonymous) != 1:
        raise ValueError("update needs a client clock with exactly one new value")
    value = client.anonymous[0]
    bare: Clock[V] = Clock(client.entries, ())
    merged = bare if server is None else sync(bare, server)
    return Clock(_event(merged.entries, actor, value), merged.anonymous)


def lww(clock: Clock[V], key: Callable[[V], K]) -> Clock[V]:
    """Keep one sibling, the largest by ``key`` (last writer wins), and the
    whole causal history.

    Only the newest value of each actor competes (with the anonymous ones):
    an actor's older values were written before its newest by that same node,
    and keeping the winner at the head of its entry keeps every dot in place.
    """
    best: V | None = None
    best_key: Any = None
    found = False
    candidates = [*clock.anonymous, *(vals[0] for _, _, vals in clock.entries if vals)]
    for v in candidates:
        k = key(v)
        if not found or k > best_key:
            best, best_key, found = v, k, True
    if not found:
        return clock
    entries = tuple(
        (a, n, (vals[0],) if vals and vals[0] is best else ()) for a, n, vals in clock.entries
    )
    anonymous = tuple(x for x in clock.anonymous if x is best)
    return Clock(entries, anonymous)


def map_values(clock: Clock[V], fn: Callable[[V], K]) -> Clock[K]:
    """The same clock with every value transformed."""
    return Clock(
        tuple((a, n, tuple(fn(v) for v in vals)) for a, n, vals in clock.entries),
        tuple(fn(v) for v in clock.anonymous),
    )


def filter_values(clock: Clock[V], keep: Callable[[V], bool]) -> Clock[V]:
    """The same history with only the values ``keep`` accepts (e.g. drop tombstones)."""
    return Clock(
        tuple((a, n, tuple(v for v in vals if keep(v))) for a, n, vals in clock.entries),
        tuple(v for v in clock.anonymous if keep(v)),
    )
