"""The consistent-hash ring: a pure, immutable function of the membership view.

Each member ``n`` with weight ``w`` owns ``max(1, round(T * w))`` tokens; token ``i``
is ``mmh3.hash64(f"{n}/{i}")`` (unsigned). A position ``p`` belongs to the range
ending at the first token ``>= p`` (wrapping past ``2**64 - 1`` to the lowest token);
walking clockwise from that token and keeping distinct nodes gives the walk, and the
preference order is the walk placed across locations (``ring.placement``: each new
failure domain's first node first). The first ``n`` are the primaries, the rest are
fallbacks.

No claimant and no coordination: every node that sees the same members, weights and
locations computes the same ring (same :attr:`Ring.ring_hash`), and a member change
moves only the ranges next to the changed node's tokens (and, when it changes which
locations the ring has, the ranges whose placement across locations it changes).

Lookups run on every request, so construction precomputes, for each token, the
tuple of all distinct nodes clockwise from it; a lookup is then one ``bisect``.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from bisect import bisect_left
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import mmh3
from sortedcontainers import SortedDict

from ring.placement import choose_stand_ins, location_count, placement_order
from ring.position import RING_SIZE

DEFAULT_TOKENS_PER_NODE = 64
"""Tokens (virtual nodes) per member of weight 1.0."""

_MAX_POSITION = RING_SIZE - 1


class Role(enum.Enum):
    """Why a node is in a preference list."""

    PRIMARY = "primary"
    FALLBACK = "fallback"


@dataclass(frozen=True, slots=True)
class PreflistEntry:
    """One target of a request: a primary, or a fallback holding a hint for a down primary."""

    node: str
    role: Role
    hint_for: str | None
    """For a fallback, the down primary it stands in for; ``None`` for a primary."""


@dataclass(frozen=True, slots=True)
class Balance:
    """How evenly the keyspace is spread (first-primary share per node, 0..1)."""

    shares: dict[str, float]
    max_share: float
    mean_share: float
    max_over_mean: float
    """1.0 is perfect balance; 0.0 for an empty ring."""


def _node_tokens(node: str, count: int) -> list[int]:
    return [mmh3.hash64(f"{node}/{i}".encode(), signed=False)[0] for i in range(count)]


def _check_query(position: int, n: int) -> None:
    if not 0 <= position < RING_SIZE:
        raise ValueError(f"position {position} is outside the ring [0, 2**64)")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")


class Ring:
    """An immutable ring built from ``members`` (node id -> weight) and ``tokens_per_node``.

    ``members`` may also be an iterable of node ids, each of weight 1.0. Two rings
    built from the same members, weights and ``tokens_per_node`` are equal and have
    the same :attr:`ring_hash`, whatever the order of the input. An empty ring is
    allowed: every lookup returns an empty result.
    """

    __slots__ = (
        "_entries",
        "_key",
        "_locations",
        "_ring_hash",
        "_token_list",
        "_token_names",
        "_token_nodes",
        "_tokens_per_node",
        "_walks",
        "_weights",
    )

    def __init__(
        self,
        members: Mapping[str, float] | Iterable[str] = (),
        tokens_per_node: int = DEFAULT_TOKENS_PER_NODE,
        locations: Mapping[str, str] | None = None,
        token_names: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(members, str):
            raise TypeError("members must be a mapping or an iterable of node ids, not a str")
        if tokens_per_node < 1:
            raise ValueError(f"tokens_per_node must be >= 1, got {tokens_per_node}")
        raw = members.items() if isinstance(members, Mapping) else ((m, 1.0) for m in members)
        weights: dict[str, float] = {}
        for node, weight in sorted(raw):
            if not node:
                raise ValueError("node id must be a non-empty string")
            if not (math.isfinite(weight) and weight > 0):
                raise ValueError(f"weight of {node!r} must be finite and > 0, got {weight}")
            weights[node] = float(weight)
        self._weights = weights
        self._tokens_per_node = tokens_per_node
        # A node without a location is its own failure domain; only the others count.
        self._locations = {
            n: loc for n, loc in sorted((locations or {}).items()) if n in weights and loc != n
        }
        for node, loc in self._locations.items():
            if not loc:
                raise ValueError(f"location of {node!r} must be a non-empty string")
        # A member that replaced a node takes that node's tokens (``dynamo replace``).
        self._token_names = {
            n: name for n, name in sorted((token_names or {}).items()) if n in weights and name != n
        }
        self._key = (
            tokens_per_node,
            tuple(weights.items()),
            tuple(self._locations.items()),
            tuple(self._token_names.items()),
        )
        fields: dict[str, object] = {"tokens_per_node": tokens_per_node, "members": self._key[1]}
        if self._locations:  # absent when every node is its own location: the hash of old
            fields["locations"] = self._key[2]
        if self._token_names:
            fields["token_names"] = self._key[3]
        self._ring_hash = hashlib.sha1(json.dumps(fields).encode()).hexdigest()[:16]

        owner: dict[int, str] = {}
        for node, weight in weights.items():  # sorted: on a collision the lower id wins
            name = self._token_names.get(node, node)
            for token in _node_tokens(name, max(1, round(tokens_per_node * weight))):
                owner.setdefault(token, node)
        self._token_list: list[int] = sorted(owner)
        self._token_nodes: list[str] = [owner[t] for t in self._token_list]
        self._walks: list[tuple[str, ...]] = self._build_walks()
        self._entries = {node: PreflistEntry(node, Role.PRIMARY, None) for node in weights}

    def _build_walks(self) -> list[tuple[str, ...]]:
        """For each token index, all distinct nodes clockwise from it, in placement order
        (``ring.placement``): O(tokens x nodes)."""
        nodes = self._token_nodes
        if not nodes:
            return []
        last: list[str] = []
        for node in nodes[-1:] + nodes:  # the walk from the last token wraps to index 0
            if node not in last:
                last.append(node)
        walks: list[tuple[str, ...]] = [()] * len(nodes)
        walks[-1] = tuple(last)
        for i in range(len(nodes) - 2, -1, -1):
            node, following = nodes[i], walks[i + 1]
            if following[0] == node:
                walks[i] = following
            else:
                walks[i] = (node, *(m for m in following if m != node))
        if not self._locations:
            return walks
        placed: dict[int, tuple[str, ...]] = {}  # by the plain walk's id: runs share one
        for i, walk in enumerate(walks):
            order = placed.get(id(walk))
            if order is None:
                order = placed[id(walk)] = placement_order(walk, self._locations)
            walks[i] = order
        return walks

    # -- identity ---------------------------------------------------------------------

    @property
    def members(self) -> tuple[str, ...]:
        """Member node ids, sorted."""
        return tuple(self._weights)

    @property
    def weights(self) -> dict[str, float]:
        """Node id -> weight (a fresh copy)."""
        return dict(self._weights)

    @property
    def tokens_per_node(self) -> int:
        return self._tokens_per_node

    def location(self, node: str) -> str:
        """The failure domain of ``node`` (the node itself when it has none)."""
        return self._locations.get(node, node)

    @property
    def locations(self) -> dict[str, str]:
        """Node id -> location, for every member (a fresh copy)."""
        return {n: self._locations.get(n, n) for n in self._weights}

    @property
    def tokens(self) -> SortedDict:
        """Token -> owning node (a fresh copy; the ring itself never changes)."""
        return SortedDict(zip(self._token_list, self._token_nodes, strict=True))

    @property
    def ring_hash(self) -> str:
        """Short hex digest of the canonical (members, weights, tokens_per_node)."""
        return self._ring_hash

    def without(self, node: str) -> Ring:
        """The future ring once ``node`` has left: what a leave transfer plans over."""
        return Ring(
            {n: w for n, w in self._weights.items() if n != node},
            self._tokens_per_node,
            self._locations,
            self._token_names,
        )

    def __len__(self) -> int:
        return len(self._weights)

    def __contains__(self, node: object) -> bool:
        return node in self._weights

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ring):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return (
            f"Ring(members={self._weights!r}, tokens_per_node={self._tokens_per_node}, "
            f"locations={self._locations!r}, ring_hash={self._ring_hash!r})"
        )

    # -- lookups (hot path) -------------------------------------------------------------

    def _walk(self, position: int) -> tuple[str, ...]:
        tokens = self._token_list
        if not tokens:
            return ()
        i = bisect_left(tokens, position)
        return self._walks[i if i < len(tokens) else 0]

    def walk(self, position: int) -> tuple[str, ...]:
        """All distinct nodes in clockwise order from ``position``."""
        _check_query(position, 0)
        return self._walk(position)

    def partition(self, position: int) -> int:
        """The index of the range holding ``position``: the rank of the first token at or
        after it among the ring's sorted tokens (Riak's preflist ``partition``; -1 for
        an empty ring)."""
        _check_query(position, 0)
        tokens = self._token_list
        if not tokens:
            return -1
        i = bisect_left(tokens, position)
        return i if i < len(tokens) else 0

    def primaries(self, position: int, n: int) -> tuple[str, ...]:
        """The first ``min(n, len(self))`` distinct nodes clockwise from ``position``."""
        _check_query(position, n)
        return self._walk(position)[:n]

    def preflist(self, position: int, n: int, down: Collection[str] = ()) -> list[PreflistEntry]:
        """Annotated preference list, as Riak's ``riak_core_apl:get_apl_ann``.

        The up primaries in placement order, then for each down primary (in order) an up
        node beyond the first ``n``, as a fallback hinted for that primary: the nearest
        from a location none of the key's other replicas is in, else the nearest
        (``ring.placement.choose_stand_ins``). Stops when fallbacks run out, so the
        result may be shorter than ``n``.
        """
        _check_query(position, n)
        walk = self._walk(position)
        entries = self._entries
        if not down:
            return [entries[node] for node in walk[:n]]
        primaries = walk[:n]
        result = [entries[node] for node in primaries if node not in down]
        if len(result) == len(primaries):
            return result
        spares = [node for node in walk[n:] if node not in down]
        for stand_in, primary in choose_stand_ins(primaries, spares, down, self._locations):
            result.append(PreflistEntry(stand_in, Role.FALLBACK, primary))
        return result

    def fallbacks(self, position: int, n: int, down: Collection[str] = ()) -> tuple[str, ...]:
        """The nodes beyond the first ``n`` in placement order that are not down."""
        _check_query(position, n)
        return tuple(node for node in self._walk(position)[n:] if node not in down)

    def replicates(self, node: str, position: int, n: int) -> bool:
        """Whether ``node`` is among the ``n`` primaries of ``position``."""
        return node in self.primaries(position, n)

    # -- ranges and balance -----------------------------------------------------------

    def _segments(self) -> list[tuple[int, int, int]]:
        """``(lo, hi, token index)`` per token: the range ``(lo, hi]`` it ends, unwrapped.

        The first token's range wraps; it is split at ``2**64 - 1`` (``lo = -1`` means
        the range starts at position 0).
        """
        tokens = self._token_list
        if not tokens:
            return []
        segments: list[tuple[int, int, int]] = []
        if tokens[-1] < _MAX_POSITION:
            segments.append((tokens[-1], _MAX_POSITION, 0))
        segments.append((-1, tokens[0], 0))
        segments.extend((tokens[i - 1], tokens[i], i) for i in range(1, len(tokens)))
        return segments

    def owned_ranges(self, node: str, n: int) -> list[tuple[int, int]]:
        """Ranges ``(lo, hi]`` of positions for which ``node`` is among the ``n`` primaries.

        Sorted, adjacent ranges merged. A range that wraps past ``2**64 - 1`` comes back
        as two: ``(lo, 2**64 - 1]`` and ``(-1, hi]`` (``lo = -1`` starts at position 0).
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        walks = self._walks
        merged: list[tuple[int, int]] = []
        for lo, hi, i in sorted(self._segments()):
            if node not in walks[i][:n]:
                continue
            if merged and merged[-1][1] == lo:
                merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        return merged

    def ownership(self) -> dict[str, float]:
        """Share of the keyspace (0..1) for which each node is the first primary."""
        owned = dict.fromkeys(self._weights, 0)
        for lo, hi, i in self._segments():
            owned[self._token_nodes[i]] += hi - lo
        return {node: size / RING_SIZE for node, size in owned.items()}

    def location_ownership(self, n: int) -> dict[str, float]:
        """Share of the key replicas (``n`` per key) each location holds, 0..1."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        held: dict[str, int] = {}
        copies = 0
        for lo, hi, i in self._segments():
            primaries = self._walks[i][:n]
            copies += len(primaries) * (hi - lo)
            for node in primaries:
                loc = self._locations.get(node, node)
                held[loc] = held.get(loc, 0) + hi - lo
        return {loc: size / copies for loc, size in sorted(held.items())} if copies else {}

    def location_violations(self, n: int) -> int:
        """Ranges whose ``n`` primaries share a location although the ring has enough
        locations to keep them apart (0 by construction: a figure to watch)."""
        want = min(n, location_count(self._weights, self._locations))
        return sum(
            1
            for _, _, i in self._segments()
            if location_count(self._walks[i][:n], self._locations) < want
        )

    def balance(self) -> Balance:
        """Ownership shares with their max and mean (all zero for an empty ring)."""
        shares = self.ownership()
        if not shares:
            return Balance(shares={}, max_share=0.0, mean_share=0.0, max_over_mean=0.0)
        max_share = max(shares.values())
        mean_share = 1.0 / len(shares)
        return Balance(
            shares=shares,
            max_share=max_share,
            mean_share=mean_share,
            max_over_mean=max_share / mean_share,
        )


def moved_share(old: Ring, new: Ring, n: int = 1) -> float:
    """Share of the keyspace whose set of ``n`` primaries differs between two rings.

    Exact: within each range between consecutive tokens of either ring, both rings'
    primaries are constant, so one comparison per range suffices.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    union = sorted(set(old._token_list) | set(new._token_list))
    if not union:
        return 0.0
    moved = 0
    previous = union[-1] - RING_SIZE  # the first range wraps around from the last token
    for token in union:
        if set(old._walk(token)[:n]) != set(new._walk(token)[:n]):
            moved += token - previous
        previous = token
    return moved / RING_SIZE
