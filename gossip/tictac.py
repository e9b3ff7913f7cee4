"""The full-sweep anti-entropy backstop: tictac hash trees (as Riak's tictac AAE). Pure.

The replica-log exchange (``gossip.antientropy``) repairs what the logs say changed.
What never shows in a log (a value rotted on disk, an object lost with its log entry to
a bug or a bad restore) needs a comparison of everything a replica holds. Each node
keeps one tree over its objects:

- a key's hash is 64 bits of ``mmh3(storage key | digest)``, the digest naming the
  object's causal history and values (``object.digest``: never per-replica fields such
  as its log seq), so two replicas holding the same copy hash it alike;
- the ring is cut into ``SEGMENTS`` equal segments by the top bits of a key's position;
  a segment's leaf is the XOR of its keys' hashes, so a write updates one leaf (XOR the
  old hash out, the new one in) and merging is order-free; ``BRANCHES`` branches each
  XOR ``LEAVES_PER_BRANCH`` leaves.

A node keeps one tree per n_val in use (a key is in the tree of its bucket's n_val), as
the ranges two replicas share depend on it. Two replicas compare only the ranges both
hold (``(lo, hi]`` positions): a segment inside them counts by its leaf; a segment a
range boundary cuts counts by the hash of its keys inside them, worked out from the
store once (a segment holds about keys/65,536 keys) and then kept up to date by every
toggle, as the leaves are.
The exchange goes down only where hashes differ: branches, then leaves, then the keys'
digests of the segments that differ. With nothing different it is one reply of
``BRANCHES`` hashes, whatever the number of keys.
"""

from __future__ import annotations

import functools
import operator
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import mmh3

SEGMENT_BITS = 16
SEGMENTS = 1 << SEGMENT_BITS
BRANCH_BITS = 8
BRANCHES = 1 << BRANCH_BITS
LEAVES_PER_BRANCH = SEGMENTS // BRANCHES
_SHIFT = 64 - SEGMENT_BITS
_SPAN = 1 << _SHIFT
MAX_POSITION = (1 << 64) - 1
METHOD = "tictac"

Range = tuple[int, int]  # (lo, hi]: positions after lo up to hi; lo = -1 starts at 0


def key_hash(objkey: bytes, digest: bytes) -> int:
    """A key's contribution to its leaf: the same on every replica holding the same copy."""
    h: int = mmh3.hash64(objkey + digest, signed=False)[0]
    return h or 1


def segment_of(position: int) -> int:
    return position >> _SHIFT


def segment_range(segment: int) -> Range:
    """The positions of a segment, as ``(lo, hi]``."""
    return segment * _SPAN - 1, (segment + 1) * _SPAN - 1


MAX_PARTS = 1 << 14  # cut segments' part hashes a tree keeps (a few per ring range)


class Tree:
    """One node's leaves and branches, and the hashes of the parts of cut segments that
    exchanges asked for, kept up to date as the leaves are (so an exchange reads no key)."""

    __slots__ = ("branches", "leaves", "parts")

    def __init__(self) -> None:
        self.leaves = array("Q", bytes(8 * SEGMENTS))
        self.branches = array("Q", bytes(8 * BRANCHES))
        self.parts: dict[int, dict[tuple[Range, ...], int]] = {}

    def toggle(self, position: int, h: int) -> None:
        """Add a key's hash, or take it out again (XOR is its own inverse)."""
        seg = position >> _SHIFT
        self.leaves[seg] ^= h
        self.branches[seg >> (SEGMENT_BITS - BRANCH_BITS)] ^= h
        held = self.parts.get(seg)
        if held:
            for ranges in held:
                if in_ranges(position, ranges):
                    held[ranges] ^= h

    def part(self, segment: int, ranges: tuple[Range, ...]) -> int | None:
        """The hash of ``segment``'s keys inside ``ranges``, if kept."""
        return self.parts.get(segment, {}).get(ranges)

    def keep_part(self, segment: int, ranges: tuple[Range, ...], h: int) -> None:
        """Keep a part's hash, worked out from the store; toggles keep it up to date."""
        if sum(len(p) for p in self.parts.values()) >= MAX_PARTS:
            self.parts.clear()  # the ring changed often: start over rather than grow
        self.parts.setdefault(segment, {})[ranges] = h

    def set_leaf(self, segment: int, h: int) -> bool:
        """Make a leaf ``h`` (what the store holds); its parts are worked out again.
        Whether the leaf was wrong."""
        self.parts.pop(segment, None)
        delta = self.leaves[segment] ^ h
        if delta:
            self.leaves[segment] = h
            self.branches[branch_of(segment)] ^= delta
        return bool(delta)

    def forget(self, segment: int) -> None:
        """Drop the kept parts of ``segment``: the next exchange works them out again."""
        self.parts.pop(segment, None)

    def root(self) -> int:
        return functools.reduce(operator.xor, self.branches, 0)


@dataclass(frozen=True)
class Cover:
    """Which segments a set of ranges holds whole (as runs ``[start, end)``, and as a set),
    and the parts of the others it holds."""

    runs: tuple[tuple[int, int], ...]
    parts: tuple[tuple[int, tuple[Range, ...]], ...]  # (segment, its ranges inside the set)

    @functools.cached_property
    def whole(self) -> frozenset[int]:
        return frozenset(s for a, b in self.runs for s in range(a, b))


def joined(ranges: Iterable[Range]) -> list[Range]:
    """The same positions as fewest ranges: touching or overlapping ones made one (a
    boundary between two held ranges would otherwise cut a segment for nothing)."""
    out: list[Range] = []
    for lo, hi in sorted(r for r in ranges if r[0] < r[1]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


@functools.lru_cache(maxsize=64)
def _cover(ranges: tuple[Range, ...]) -> Cover:
    whole: list[tuple[int, int]] = []
    parts: dict[int, list[Range]] = {}
    for lo, hi in joined(ranges):
        if hi <= lo:
            continue
        first, last = segment_of(lo + 1), segment_of(hi)
        for seg in (first, last):
            s_lo, s_hi = segment_range(seg)
            a, b = max(lo, s_lo), min(hi, s_hi)
            if (a, b) != (s_lo, s_hi):
                parts.setdefault(seg, []).append((a, b))
        start = first if first not in parts else first + 1
        end = last + 1 if last not in parts else last
        if start < end:
            whole.append((start, end))
    runs = _merged(whole)
    held = {s for a, b in runs for s in (a, b - 1)}
    for seg in list(parts):
        if seg in held or any(a <= seg < b for a, b in runs):
            del parts[seg]
    return Cover(tuple(runs), tuple((s, tuple(sorted(r))) for s, r in sorted(parts.items())))


def _merged(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(runs):
        if out and out[-1][1] >= a:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def cover(ranges: Iterable[Range]) -> Cover:
    """The segments ``ranges`` hold (cached: the same ranges come back every exchange)."""
    return _cover(tuple(ranges))


def branch_of(segment: int) -> int:
    return segment >> (SEGMENT_BITS - BRANCH_BITS)


def branch_hashes(tree: Tree, c: Cover, part_hashes: dict[int, int]) -> list[int]:
    """Each branch's XOR over the segments ``c`` holds (the cut ones by ``part_hashes``)."""
    out = [0] * BRANCHES
    leaves, branches = tree.leaves, tree.branches
    for a, b in c.runs:
        while a < b:
            br = branch_of(a)
            end = min(b, (br + 1) * LEAVES_PER_BRANCH)
            if a == br * LEAVES_PER_BRANCH and end == (br + 1) * LEAVES_PER_BRANCH:
                out[br] ^= branches[br]  # the whole branch: its own hash
            else:
                out[br] ^= functools.reduce(operator.xor, leaves[a:end], 0)
            a = end
    for seg, h in part_hashes.items():
        out[branch_of(seg)] ^= h
    return out


def leaf_hashes(
    tree: Tree, c: Cover, part_hashes: dict[int, int], branches: Iterable[int]
) -> dict[int, int]:
    """The leaves of ``branches`` that ``c`` holds, whole or in part."""
    out: dict[int, int] = {}
    for b in branches:
        for seg in range(b * LEAVES_PER_BRANCH, (b + 1) * LEAVES_PER_BRANCH):
            if seg in c.whole:
                out[seg] = tree.leaves[seg]
            elif seg in part_hashes:
                out[seg] = part_hashes[seg]
    return out


def differing_branches(mine: Sequence[int], theirs: object) -> list[int]:
    """Branches whose hashes differ; ``ValueError`` for a reply that is not 256 hashes."""
    if not isinstance(theirs, list) or len(theirs) != BRANCHES:
        raise ValueError(f"a tictac tree reply holds {BRANCHES} branch hashes")
    return [i for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b]


def differing_leaves(mine: dict[int, int], theirs: dict[int, int]) -> list[int]:
    """Segments whose hashes differ (a segment missing on one side hashes 0)."""
    return sorted(k for k in mine.keys() | theirs.keys() if mine.get(k, 0) != theirs.get(k, 0))


def keys_to_fetch(mine: dict[bytes, bytes], theirs: dict[bytes, bytes]) -> list[bytes]:
    """Keys whose copy the peer holds and ours differs from (or we lack): what to pull.
    Keys only we hold are the peer's to pull from us."""
    return sorted(k for k, d in theirs.items() if mine.get(k) != d)


def in_ranges(position: int, ranges: Sequence[Range]) -> bool:
    return any(lo < position <= hi for lo, hi in ranges)


def intersect(a: Sequence[Range], b: Sequence[Range]) -> list[Range]:
    """The positions in both sorted lists of disjoint ranges, as sorted ranges."""
    out: list[Range] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


MAX_RANGES = 1 << 16
KINDS = ("tree", "leaves", "keys")


MAX_N_VAL = 64


@dataclass(frozen=True, slots=True)
class Request:
    kind: str  # "tree", "leaves" or "keys"
    ranges: list[Range]
    extra: list[int]  # the branches ("leaves") or segments ("keys") asked for
    n_val: int | None  # whose keys (buckets of this n_val); None: the default n_val


def request_to_wire(
    kind: str, ranges: Sequence[Range], extra: Sequence[int], n_val: int | None
) -> dict[str, object]:
    body: dict[str, object] = {"k": kind, "r": [list(r) for r in ranges]}
    if extra:
        body["x"] = list(extra)
    if n_val is not None:  # absent: the default n_val (what peers before it compared)
        body["n"] = n_val
    return body


def request_from_wire(body: object) -> Request:
    """A peer's exchange step; ``ValueError`` for a body of another shape (the
    connection's problem, not ours)."""
    if not isinstance(body, dict) or body.get("k") not in KINDS:
        raise ValueError(f"a tictac request is a map with k in {KINDS}")
    n_val = body.get("n")
    if n_val is not None and not (type(n_val) is int and 1 <= n_val <= MAX_N_VAL):
        raise ValueError(f"tictac request: n is an n_val from 1 to {MAX_N_VAL}")
    raw_ranges, raw_extra = body.get("r"), body.get("x", [])
    if not isinstance(raw_ranges, list) or not isinstance(raw_extra, list):
        raise ValueError("tictac request: r and x are lists")
    if len(raw_ranges) > MAX_RANGES or len(raw_extra) > SEGMENTS:
        raise ValueError("tictac request: too many ranges or segments")
    ranges: list[Range] = []
    for r in raw_ranges:
        if not isinstance(r, list) or len(r) != 2 or not all(type(x) is int for x in r):
            raise ValueError("tictac request: a range is [lo, hi]")
        lo, hi = r
        if not -1 <= lo < hi <= MAX_POSITION:
            raise ValueError(f"tictac request: ({lo}, {hi}] is not a ring range")
        ranges.append((lo, hi))
    limit = BRANCHES if body["k"] == "leaves" else SEGMENTS
    if not all(type(x) is int and 0 <= x < limit for x in raw_extra):
        raise ValueError("tictac request: x holds branch or segment numbers")
    return Request(str(body["k"]), ranges, list(raw_extra), n_val)
