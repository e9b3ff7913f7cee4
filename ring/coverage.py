"""Coverage plans: which nodes a query over all keys asks, as Riak's coverage plan. Pure.

A secondary-index query or a key listing must hear about every range of the ring, each
range from exactly one replica. :func:`plan` picks few nodes that together cover every
range: only up primaries answer (a fallback holds hints, not the range), so a range whose
primaries are all down is left ``uncovered`` for the caller to answer 503.

The choice is greedy set cover counting ranges (runs of adjacent ranges with the same
primaries count once): each step takes the node that may answer the most ranges still
uncovered. Counting ranges is what set cover minimizes, and it measured no worse than
weighting by range size on both plan size and load spread. Random tokens make exact
ties rare, so nodes within :data:`TIE_SLACK` of the best count as tied and a shuffle
seeded per query picks among them, spreading queries over the cluster at little cost in
plan size. With random tokens nearly every set of ``n`` members is some range's
primaries, so a plan needs about ``members - n + 1`` nodes (any that many suffice), not
Riak's ``ceil(members / n)``, which relies on its evenly claimed partitions.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from ring.ring import Ring

TIE_SLACK = 0.2
"""Nodes that may answer at least ``1 - TIE_SLACK`` as many ranges as the best are tied:
measured over 100 seeds, 0.2 keeps the mean share each node answers within about 30% of
even (8 nodes, n = 3), where exact ties leave some node near 0% and another near 300%, and
adds under one node to plans of 12-24 nodes."""

Range = tuple[int, int]
"""``(lo, hi]``: positions after ``lo`` up to ``hi``; ``lo = -1`` starts at position 0."""


def _hi(r: Range) -> int:
    return r[1]


@dataclass(frozen=True, slots=True)
class Coverage:
    """One node of a plan and the ranges it answers for (sorted, adjacent ones merged)."""

    node: str
    ranges: tuple[Range, ...]

    def covers(self, position: int) -> bool:
        """Whether ``position`` falls in one of the ranges: one ``bisect``."""
        i = bisect_left(self.ranges, position, key=_hi)
        return i < len(self.ranges) and self.ranges[i][0] < position


@dataclass(frozen=True, slots=True)
class CoveragePlan:
    """The nodes a query asks (sorted by node), and the ranges none of them can answer."""

    parts: tuple[Coverage, ...]
    uncovered: tuple[Range, ...]
    """Ranges with no eligible primary: empty when the plan is complete."""

    @property
    def complete(self) -> bool:
        return not self.uncovered


def primary_ranges(ring: Ring, n: int) -> list[tuple[int, int, tuple[str, ...]]]:
    """``(lo, hi, primaries)`` per range of ``ring``, sorted by position: ``primaries`` are
    the first ``n`` in placement order, and adjacent ranges with the same primaries (in any
    order) are merged under the first one's."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    walks = ring._walks  # a reader within the ring package: Ring keeps its walks private
    out: list[tuple[int, int, tuple[str, ...]]] = []
    for lo, hi, i in sorted(ring._segments()):
        primaries = walks[i][:n]
        if out and out[-1][1] == lo and set(out[-1][2]) == set(primaries):
            out[-1] = (out[-1][0], hi, out[-1][2])
        else:
            out.append((lo, hi, primaries))
    return out


def _merged(ranges: Iterable[Range]) -> tuple[Range, ...]:
    out: list[Range] = []
    for lo, hi in sorted(ranges):
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def _cover(
    ranges: Sequence[tuple[int, int, tuple[str, ...]]],
    eligible: Collection[str],
    prefer: str | None,
    seed: int,
) -> CoveragePlan:
    """Greedy set cover of ``ranges`` by the ``eligible`` among each range's primaries."""
    uncovered: list[Range] = []
    todo: dict[int, list[str]] = {}  # range index -> the nodes that may answer it
    gain: dict[str, int] = {}  # node -> how many todo ranges it may answer
    for idx, (lo, hi, primaries) in enumerate(ranges):
        candidates = [p for p in primaries if p in eligible]
        if not candidates:
            uncovered.append((lo, hi))
            continue
        todo[idx] = candidates
        for node in candidates:
            gain[node] = gain.get(node, 0) + 1
    order = sorted(gain)
    random.Random(seed).shuffle(order)
    rank = {node: i for i, node in enumerate(order)}
    # The coordinator, when it can answer anything, goes first: its part stays local.
    pick = prefer if prefer in gain else None
    assigned: dict[str, list[Range]] = {}
    while todo:
        if pick is None:
            best = max(gain.values())
            tied = [node for node, g in gain.items() if g >= best - int(best * TIE_SLACK)]
            pick = min(tied, key=rank.__getitem__)
        mine = assigned.setdefault(pick, [])
        for idx in [i for i, candidates in todo.items() if pick in candidates]:
            lo, hi, _ = ranges[idx]
            mine.append((lo, hi))
            for node in todo.pop(idx):
                gain[node] -= 1
        gain = {node: g for node, g in gain.items() if g > 0}
        pick = None
    parts = tuple(Coverage(node, _merged(assigned[node])) for node in sorted(assigned))
    return CoveragePlan(parts, _merged(uncovered))


def plan(
    ring: Ring, n: int, up: Collection[str], *, prefer: str | None = None, seed: int = 0
) -> CoveragePlan:
    """A coverage plan over every range of ``ring`` with ``n`` primaries per key.

    Each range goes to exactly one of its up primaries (greedy by ranges covered, see
    the module docstring); ``prefer`` (the coordinator), when it is up and a member, is
    picked first; ``seed`` (varied per query) breaks ties. ``n`` above the member count
    acts as the member count; an empty ring gives a complete plan with no parts.
    """
    return _cover(primary_ranges(ring, n), set(up), prefer, seed)


def replan(
    ring: Ring,
    n: int,
    up: Collection[str],
    failed: Coverage,
    *,
    exclude: Collection[str] = (),
    seed: int = 0,
) -> CoveragePlan:
    """A plan for just the ranges ``failed`` answered for, among up nodes not in
    ``exclude`` (nor ``failed.node``): the fallback when a chosen node fails mid-query."""
    eligible = set(up) - set(exclude) - {failed.node}
    wanted = failed.ranges
    pieces: list[tuple[int, int, tuple[str, ...]]] = []
    for lo, hi, primaries in primary_ranges(ring, n):
        i = bisect_left(wanted, lo + 1, key=_hi)  # the first wanted range reaching past lo
        while i < len(wanted) and wanted[i][0] < hi:
            pieces.append((max(lo, wanted[i][0]), min(hi, wanted[i][1]), primaries))
            i += 1
    return _cover(pieces, eligible, None, seed)
