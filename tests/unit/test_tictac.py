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


@given(st.integers(0, 2**32))
def test_kept_parts_stay_equal_to_the_keys_inside_through_any_toggles(seed: int) -> None:
    """A cut segment's part, worked out once and then kept by toggles, equals the XOR of
    the keys inside it after any adds and removes: an exchange reads no key for it."""
    rng = random.Random(seed)
    held = keys(rng, 300)
    tree = Tree()
    for pos, h in held.items():
        tree.toggle(pos, h)
    c = tictac.cover(random_ranges(rng, 6))
    for seg, rs in c.parts:
        tree.keep_part(seg, rs, restricted(c, held)[seg])
    for _ in range(200):
        if held and rng.random() < 0.4:
            pos = rng.choice(sorted(held))
            tree.toggle(pos, held.pop(pos))
        else:
            seg, rs = rng.choice(c.parts) if c.parts and rng.random() < 0.7 else (0, ())
            lo, hi = rs[0] if rs else tictac.segment_range(rng.randrange(tictac.SEGMENTS))
            pos = rng.randint(lo + 1, hi)
            h = rng.getrandbits(64) or 1
            held[pos] = held.get(pos, 0) ^ h
            tree.toggle(pos, h)
    want = restricted(c, held)
    assert {seg: tree.part(seg, rs) for seg, rs in c.parts} == want


def test_setting_a_leaf_moves_its_branch_and_drops_its_parts() -> None:
    tree = Tree()
    tree.toggle(5, 0xAB)
    lo, hi = tictac.segment_range(0)
    tree.keep_part(0, ((lo, hi // 2),), 0xAB)
    assert tree.set_leaf(0, 0xCD) is True
    assert tree.leaves[0] == 0xCD
    assert tree.branches[0] == 0xCD
    assert tree.part(0, ((lo, hi // 2),)) is None  # worked out again when next asked
    assert tree.set_leaf(0, 0xCD) is False
    assert tree.root() == 0xCD


def test_touching_ranges_are_joined_so_their_boundary_cuts_no_segment() -> None:
    mid = tictac.segment_range(7)[0] + 12345  # inside segment 7
    assert tictac.joined([(mid, MAX), (-1, 10), (10, mid)]) == [(-1, MAX)]
    c = tictac.cover([(-1, mid), (mid, MAX)])
    assert c.parts == ()
    assert c.runs == ((0, tictac.SEGMENTS),)


def test_a_request_names_its_n_val_or_none_for_the_default() -> None:
    body = tictac.request_to_wire("leaves", [(-1, 100)], [3], 5)
    assert tictac.request_from_wire(body) == tictac.Request("leaves", [(-1, 100)], [3], 5)
    old = tictac.request_to_wire("tree", [(-1, 100)], [], None)
    assert "n" not in old
    assert tictac.request_from_wire(old).n_val is None
    for bad in (0, 65, "3", 2.0):
        with pytest.raises(ValueError, match="n_val"):
            tictac.request_from_wire({**old, "n": bad})
