"""Coverage plans (hypothesis and tables): every range answered once, by an up primary.

Plan sizes measured over seeds 0..99 with all nodes up (64 tokens per node): 5 nodes at
n = 3 always 3 nodes; 8 nodes at n = 3 always 6; 12 nodes at n = 3 9 or 10 (mean 9.8).
With random tokens nearly every set of n members is some range's primaries, so the
minimum is members - n + 1; the bounds below hold by construction.
"""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ring import RING_SIZE, Ring
from ring.coverage import Coverage, CoveragePlan, plan, primary_ranges, replan

MAX = RING_SIZE - 1
FIVE = Ring([f"node{i}" for i in range(1, 6)])

node_ids = st.text(alphabet="abcdefgh", min_size=1, max_size=3)
n_vals = st.integers(min_value=1, max_value=4)
seeds = st.integers(min_value=0, max_value=2**32)


@st.composite
def rings(draw: st.DrawFn) -> Ring:
    """1-8 members, each in a location of its own or one of three shared ones."""
    members = sorted(draw(st.sets(node_ids, min_size=1, max_size=8)))
    zones = st.sampled_from(["", "z1", "z2", "z3"])
    locs = draw(st.lists(zones, min_size=len(members), max_size=len(members)))
    return Ring(members, locations={m: loc for m, loc in zip(members, locs, strict=True) if loc})


def probes(r: Ring, rnd: random.Random) -> list[int]:
    """Every token and the position after it, both ends of the ring, and random ones."""
    edges = [p for t in r.tokens for p in (t, t + 1) if p < RING_SIZE]
    return [0, MAX, *edges, *(rnd.randrange(RING_SIZE) for _ in range(50))]


def inside(ranges: Iterable[tuple[int, int]], position: int) -> bool:
    return any(lo < position <= hi for lo, hi in ranges)


def merged(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def answering(p: CoveragePlan, position: int) -> list[str]:
    return [part.node for part in p.parts if part.covers(position)]


# -- plan -----------------------------------------------------------------------------------


@settings(max_examples=80)
@given(r=rings(), n=n_vals, seed=seeds, data=st.data())
def test_every_position_is_answered_by_exactly_one_up_primary(
    r: Ring, n: int, seed: int, data: st.DataObject
) -> None:
    up = data.draw(st.sets(st.sampled_from(r.members)))
    p = plan(r, n, up | {"stranger"}, seed=seed)  # a non-member in `up` is never chosen
    assert [part.node for part in p.parts] == sorted(part.node for part in p.parts)
    assert {part.node for part in p.parts} <= up
    for position in probes(r, random.Random(seed)):
        primaries = r.primaries(position, n)
        nodes = answering(p, position)
        if up & set(primaries):
            assert len(nodes) == 1, (position, nodes)
            assert nodes[0] in primaries
            assert not inside(p.uncovered, position)
        else:
            assert nodes == []
            assert inside(p.uncovered, position)
    assert p.complete == (not p.uncovered)


@settings(max_examples=40)
@given(r=rings(), n=n_vals, seed=seeds)
def test_with_all_up_the_plan_is_complete_and_at_most_members_minus_n_plus_one(
    r: Ring, n: int, seed: int
) -> None:
    p = plan(r, n, r.members, seed=seed)
    assert p.complete
    assert 1 <= len(p.parts) <= len(r) - min(n, len(r)) + 1


def test_five_nodes_n3_need_at_most_four_nodes_for_every_seed() -> None:
    sizes = [len(plan(FIVE, 3, FIVE.members, seed=s).parts) for s in range(50)]
    assert max(sizes) <= 4, sizes
    assert statistics.mean(sizes) < 5


def test_different_seeds_spread_the_load_over_the_nodes() -> None:
    share = dict.fromkeys(FIVE.members, 0)
    for s in range(100):
        for part in plan(FIVE, 3, FIVE.members, seed=s).parts:
            share[part.node] += sum(hi - lo for lo, hi in part.ranges)
    assert sum(1 for size in share.values() if size) >= 4, share
    mean = sum(share.values()) / len(share)
    assert max(share.values()) < 2 * mean, share  # exact ties alone give one node ~3x


def test_the_same_seed_gives_the_same_plan() -> None:
    assert plan(FIVE, 3, FIVE.members, seed=7) == plan(FIVE, 3, list(FIVE.members), seed=7)


@settings(max_examples=40)
@given(r=rings(), n=n_vals, seed=seeds, data=st.data())
def test_the_preferred_node_is_in_the_plan_when_up(
    r: Ring, n: int, seed: int, data: st.DataObject
) -> None:
    up = data.draw(st.sets(st.sampled_from(r.members), min_size=1))
    prefer = data.draw(st.sampled_from(sorted(up)))
    assert prefer in {part.node for part in plan(r, n, up, prefer=prefer, seed=seed).parts}


def test_a_preferred_node_that_is_down_or_not_a_member_is_ignored() -> None:
    up = set(FIVE.members) - {"node1"}
    for prefer in ("node1", "stranger"):
        p = plan(FIVE, 3, up, prefer=prefer, seed=3)
        assert p.complete
        assert prefer not in {part.node for part in p.parts}


def test_an_empty_ring_gives_a_complete_plan_with_no_parts() -> None:
    assert plan(Ring(), 3, ["a"]) == CoveragePlan(parts=(), uncovered=())


def test_with_no_node_up_the_whole_ring_is_uncovered() -> None:
    p = plan(FIVE, 3, ())
    assert p == CoveragePlan(parts=(), uncovered=((-1, MAX),))
    assert not p.complete


def test_n_above_the_member_count_acts_as_the_member_count() -> None:
    assert plan(FIVE, 9, FIVE.members, seed=1) == plan(FIVE, 5, FIVE.members, seed=1)
    assert len(plan(FIVE, 9, FIVE.members).parts) == 1


def test_n_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="n must be >= 1"):
        plan(FIVE, 0, FIVE.members)


def test_primary_ranges_tile_the_ring() -> None:
    ranges = primary_ranges(FIVE, 3)
    assert ranges[0][0] == -1
    assert ranges[-1][1] == MAX
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    for lo, hi, primaries in ranges:
        assert set(FIVE.primaries(hi, 3)) == set(primaries)
        assert set(FIVE.primaries(lo + 1, 3)) == set(primaries)


# -- replan ---------------------------------------------------------------------------------


@settings(max_examples=60)
@given(r=rings(), n=n_vals, seed=seeds, data=st.data())
def test_replan_covers_exactly_the_failed_ranges_without_excluded_nodes(
    r: Ring, n: int, seed: int, data: st.DataObject
) -> None:
    first = plan(r, n, r.members, seed=seed)
    failed = data.draw(st.sampled_from(first.parts))
    exclude = data.draw(st.sets(st.sampled_from(r.members)))
    again = replan(r, n, r.members, failed, exclude=exclude, seed=seed + 1)
    nodes = {part.node for part in again.parts}
    assert not nodes & (exclude | {failed.node})
    answered = [rng for part in again.parts for rng in part.ranges]
    assert merged([*answered, *again.uncovered]) == list(failed.ranges)
    for position in probes(r, random.Random(seed)):
        chosen = answering(again, position)
        if not failed.covers(position):
            assert chosen == []
            assert not inside(again.uncovered, position)
        elif inside(again.uncovered, position):
            assert chosen == []
            assert set(r.primaries(position, n)) <= exclude | {failed.node}
        else:
            assert len(chosen) == 1
            assert chosen[0] in r.primaries(position, n)


@settings(max_examples=40)
@given(seed=seeds)
def test_replan_cuts_ranges_of_a_plan_made_on_another_ring(seed: int) -> None:
    """A part planned before a join covers ranges the current ring splits differently."""
    six = Ring([*FIVE.members, "node6"])
    for failed in plan(six, 3, six.members, seed=seed).parts:
        again = replan(FIVE, 3, FIVE.members, failed, exclude={"node6"}, seed=seed)
        answered = [rng for part in again.parts for rng in part.ranges]
        assert merged([*answered, *again.uncovered]) == list(failed.ranges)
        for position in probes(six, random.Random(seed)):
            chosen = answering(again, position)
            assert len(chosen) == failed.covers(position)
            assert all(node in FIVE.primaries(position, 3) for node in chosen)


def test_replan_with_five_nodes_n3_and_one_failed_node_is_complete() -> None:
    for s in range(20):
        for failed in plan(FIVE, 3, FIVE.members, seed=s).parts:
            again = replan(FIVE, 3, FIVE.members, failed, seed=s)
            assert again.complete
            assert failed.node not in {part.node for part in again.parts}
            answered = [rng for part in again.parts for rng in part.ranges]
            assert merged(answered) == list(failed.ranges)


# -- Coverage.covers ------------------------------------------------------------------------

bounds = st.sets(st.integers(min_value=-1, max_value=MAX), max_size=12).map(sorted)


@given(edges=bounds, keep=st.lists(st.booleans(), min_size=12, max_size=12), data=st.data())
def test_covers_agrees_with_a_linear_scan(
    edges: list[int], keep: list[bool], data: st.DataObject
) -> None:
    ranges = tuple(r for i, r in enumerate(itertools.pairwise(edges)) if keep[i])
    part = Coverage("a", ranges)
    near = [p for lo, hi in ranges for p in (lo, lo + 1, hi, hi + 1) if 0 <= p <= MAX]
    for position in [0, MAX, *near, data.draw(st.integers(min_value=0, max_value=MAX))]:
        assert part.covers(position) == inside(ranges, position), (ranges, position)
