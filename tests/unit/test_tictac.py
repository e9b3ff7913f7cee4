"""The tictac tree's pure core: hashes restricted to shared ranges equal the XOR of the
keys inside them, wherever range boundaries cut segments; an exchange's steps find
exactly the segments that hold a differing key."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossip import tictac
from gossip.tictac import Range, Tree

MAX = tictac.MAX_POSITION


def random_ranges(rng: random.Random, n: int) -> list[Range]:
    cuts = sorted({-1, MAX} | {rng.randrange(0, MAX) for _ in range(2 * n)})
    pairs = list(itertools.pairwise(cuts))
    return sorted(rng.sample(pairs, max(1, len(pairs) // 2)))


def keys(rng: random.Random, count: int) -> dict[int, int]:
    """position -> key hash (one key per position)."""
    out = {}
    for _ in range(count):
        pos = rng.randrange(0, MAX + 1)
        if rng.random() < 0.3:  # crowd some segments
            pos = (rng.randrange(4) << 48) + rng.randrange(1 << 48)
        out[pos] = rng.getrandbits(64) or 1
    return out


def restricted(c: tictac.Cover, held: dict[int, int]) -> dict[int, int]:
    """What a node works out from its store for the cut segments."""
    out: dict[int, int] = {}
    for seg, rs in c.parts:
        h = 0
        for pos, kh in held.items():
            if tictac.in_ranges(pos, rs):
                h ^= kh
        out[seg] = h
    return out


@given(st.integers(0, 2**32))
def test_branch_hashes_over_shared_ranges_are_the_xor_of_the_keys_inside(seed: int) -> None:
    rng = random.Random(seed)
    held = keys(rng, 300)
    tree = Tree()
    for pos, h in held.items():
        tree.toggle(pos, h)
    ranges = random_ranges(rng, rng.randrange(1, 8))
    c = tictac.cover(ranges)
    got = tictac.branch_hashes(tree, c, restricted(c, held))
    want = [0] * tictac.BRANCHES
    for pos, h in held.items():
        if tictac.in_ranges(pos, ranges):
            want[tictac.branch_of(tictac.segment_of(pos))] ^= h
    assert got == want


@given(st.integers(0, 2**32))
def test_an_exchange_finds_exactly_the_segments_with_a_differing_key(seed: int) -> None:
    rng = random.Random(seed)
    a = keys(rng, 400)
    b = dict(a)
    changed = rng.sample(sorted(a), 5)
    for pos in changed[:2]:
        del b[pos]  # lost on b
    for pos in changed[2:]:
        b[pos] = rng.getrandbits(64) | 1  # another version on b (another hash)
    ta, tb = Tree(), Tree()
    for pos, h in a.items():
        ta.toggle(pos, h)
    for pos, h in b.items():
        tb.toggle(pos, h)
    ranges = random_ranges(rng, 4)
    c = tictac.cover(ranges)
    pa, pb = restricted(c, a), restricted(c, b)
    branches = tictac.differing_branches(
        tictac.branch_hashes(ta, c, pa), tictac.branch_hashes(tb, c, pb)
    )
    segments = tictac.differing_leaves(
        tictac.leaf_hashes(ta, c, pa, branches), tictac.leaf_hashes(tb, c, pb, branches)
    )
    want = sorted({tictac.segment_of(p) for p in changed if tictac.in_ranges(p, ranges)})
    assert segments == want


def test_toggling_a_key_twice_takes_it_out() -> None:
    t = Tree()
    t.toggle(12345, 99)
    t.toggle(12345, 99)
    assert not any(t.leaves)
    assert not any(t.branches)


def test_cover_splits_at_segment_boundaries() -> None:
    lo0, hi0 = tictac.segment_range(0)
    assert (lo0, hi0) == (-1, (1 << 48) - 1)
    c = tictac.cover([(-1, (1 << 48) + 5), ((3 << 48) - 1, MAX)])
    assert 0 in c.whole
    assert dict(c.parts)[1] == (((1 << 48) - 1, (1 << 48) + 5),)
    assert {3, tictac.SEGMENTS - 1} <= c.whole
    assert 2 not in c.whole


def test_intersect() -> None:
    assert tictac.intersect([(-1, 10), (20, 30)], [(5, 25)]) == [(5, 10), (20, 25)]
    assert tictac.intersect([(-1, 10)], [(10, 20)]) == []


@pytest.mark.parametrize(
    "body",
    [
        None,
        {"k": "nope", "r": []},
        {"k": "tree", "r": [[5, 5]]},
        {"k": "tree", "r": [[-2, 5]]},
        {"k": "tree", "r": [[0, 2**64]]},
        {"k": "leaves", "r": [], "x": [256]},
        {"k": "keys", "r": [], "x": ["a"]},
        {"k": "tree", "r": "all"},
    ],
)
def test_bad_requests_are_refused(body: object) -> None:
    with pytest.raises(ValueError, match="tictac"):
        tictac.request_from_wire(body)
