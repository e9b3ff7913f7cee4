"""Replicas across failure domains: the order in which a key's nodes are taken. Pure.

Every node has a location (its failure domain: a host, a rack, a zone; by default the
node itself). Walking clockwise from a key's position gives its nodes in ring order;
the placement order takes, from that walk, first every node that brings a location
not seen yet, then the others, each group in walk order. So the first ``n`` nodes (the
primaries) sit in ``n`` distinct locations whenever the cluster has ``n`` of them, and
in as many as it has otherwise, with distinct nodes filling the rest, as Riak 3's
location awareness and Cassandra's NetworkTopologyStrategy keep replicas apart. With
every node in its own location the order is the plain walk.

A stand-in for a down replica (sloppy quorum) comes, when one is up, from a location
none of the key's other replicas is in; else the nearest spare.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence


def placement_order(walk: Sequence[str], location: Mapping[str, str]) -> tuple[str, ...]:
    """``walk`` (distinct nodes in ring order) with each new location's first node first."""
    seen: set[str] = set()
    first: list[str] = []
    rest: list[str] = []
    for node in walk:
        loc = location.get(node, node)
        if loc in seen:
            rest.append(node)
        else:
            seen.add(loc)
            first.append(node)
    return tuple(first + rest) if rest else tuple(walk)


def choose_stand_ins(
    primaries: Sequence[str],
    spares: Sequence[str],
    down: Collection[str],
    location: Mapping[str, str],
) -> list[tuple[str, str]]:
    """``(stand-in, primary it stands in for)`` for each down primary, in order.

    ``spares`` are the up nodes beyond the primaries, nearest first. Each stand-in is
    the nearest spare whose location holds none of the key's other replicas (the up
    primaries and the stand-ins chosen before it); without one, the nearest spare.
    Stops when the spares run out.
    """
    taken_locs = {location.get(p, p) for p in primaries if p not in down}
    left = list(spares)
    out: list[tuple[str, str]] = []
    for primary in primaries:
        if primary not in down:
            continue
        if not left:
            break
        pick = next((s for s in left if location.get(s, s) not in taken_locs), left[0])
        left.remove(pick)
        taken_locs.add(location.get(pick, pick))
        out.append((pick, primary))
    return out


def location_count(nodes: Iterable[str], location: Mapping[str, str]) -> int:
    return len({location.get(n, n) for n in nodes})
