"""Placement across locations (hypothesis): every figure here is counted from preference
lists, never taken from the placement code's own count."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ring import RING_SIZE, Ring, Role, moved_share
from ring.placement import choose_stand_ins, placement_order

node_ids = st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=8)
positions = st.integers(min_value=0, max_value=RING_SIZE - 1)
n_vals = st.integers(min_value=1, max_value=5)


@st.composite
def placed_members(draw: st.DrawFn) -> dict[str, str]:
    """node -> location, 1 to 12 nodes over 1 to 6 locations."""
    nodes = draw(st.sets(node_ids, min_size=1, max_size=12))
    zones = [f"zone-{i}" for i in range(draw(st.integers(min_value=1, max_value=6)))]
    return {n: draw(st.sampled_from(zones)) for n in sorted(nodes)}


def distinct_locations(ring: Ring, nodes: tuple[str, ...] | list[str]) -> int:
    return len({ring.location(n) for n in nodes})


@settings(max_examples=80, deadline=None)
@given(located=placed_members(), position=positions, n=n_vals)
def test_primaries_take_distinct_locations_when_there_are_enough(
    located: dict[str, str], position: int, n: int
) -> None:
    r = Ring(list(located), locations=located)
    primaries = r.primaries(position, n)
    assert len(primaries) == min(n, len(located))
    assert len(set(primaries)) == len(primaries)
    n_locations = len(set(located.values()))
    assert distinct_locations(r, primaries) == min(n, n_locations)
    assert sorted(r.walk(position)) == sorted(located)


@settings(max_examples=40, deadline=None)
@given(located=placed_members(), n=n_vals)
def test_no_range_violates_placement_counted_from_preference_lists(
    located: dict[str, str], n: int
) -> None:
    r = Ring(list(located), locations=located)
    want = min(n, len(set(located.values())))
    violations = sum(1 for token in r.tokens if distinct_locations(r, r.primaries(token, n)) < want)
    assert violations == 0
    assert r.location_violations(n) == violations


@settings(max_examples=60, deadline=None)
@given(located=placed_members(), position=positions, n=n_vals, data=st.data())
def test_a_stand_in_comes_from_a_location_the_other_replicas_are_not_in(
    located: dict[str, str], position: int, n: int, data: st.DataObject
) -> None:
    r = Ring(list(located), locations=located)
    down = data.draw(st.sets(st.sampled_from(sorted(located))))
    entries = r.preflist(position, n, down=down)
    primaries = r.primaries(position, n)
    up = [p for p in primaries if p not in down]
    assert [e.node for e in entries if e.role is Role.PRIMARY] == up
    held = {r.location(p) for p in up}
    spares = [s for s in r.walk(position)[n:] if s not in down]
    stand_ins = [e for e in entries if e.role is Role.FALLBACK]
    assert len(stand_ins) == min(len(primaries) - len(up), len(spares))
    for e in stand_ins:
        assert e.node in spares
        free = [s for s in spares if r.location(s) not in held]
        if free:
            assert r.location(e.node) not in held, "a spare in a new location was passed over"
        held.add(r.location(e.node))
        spares.remove(e.node)


@settings(max_examples=40, deadline=None)
@given(located=placed_members(), shuffler=st.randoms(use_true_random=False))
def test_the_ring_is_a_function_of_members_and_locations(
    located: dict[str, str], shuffler: random.Random
) -> None:
    items = list(located.items())
    shuffler.shuffle(items)
    a, b = (
        Ring(list(located), locations=located),
        Ring(dict.fromkeys(located, 1.0), locations=dict(items)),
    )
    assert a == b
    assert a.ring_hash == b.ring_hash
    own = Ring(list(located), locations={n: n for n in located})
    assert own == Ring(list(located))  # every node its own location: the ring of old
    assert own.ring_hash == Ring(list(located)).ring_hash
    if len(set(located.values())) < len(located):
        assert a.ring_hash != own.ring_hash


@settings(max_examples=40, deadline=None)
@given(located=placed_members(), added=node_ids, data=st.data())
def test_a_new_node_changes_at_most_one_primary_of_a_range(
    located: dict[str, str], added: str, data: st.DataObject
) -> None:
    located.pop(added, None)
    if not located:
        located = {added + "x": "zone-0"}
    zone = data.draw(st.sampled_from([*sorted(set(located.values())), "zone-new"]))
    old = Ring(list(located), locations=located)
    new = Ring([*located, added], locations={**located, added: zone})
    for n in (1, 3):
        for token in sorted(set(old.tokens) | set(new.tokens)):
            before, after = set(old.primaries(token, n)), set(new.primaries(token, n))
            if before != after:
                assert added in after
                assert len(before - after) <= 1


def test_the_nth_location_takes_a_replica_of_every_key() -> None:
    """Six nodes in two zones, n 3: each key has a zone twice. A node in a third zone then
    takes one replica of every key (a third of all copies), as it must."""
    two = {f"n{i}": f"zone-{i % 2}" for i in range(6)}
    three = {**two, "n6": "zone-2"}
    before, after = Ring(list(two), locations=two), Ring(list(three), locations=three)
    assert before.location_violations(3) == 0
    moved = moved_share(before, after, 3)
    assert moved > 0.99  # every key's replica set changes...
    for token in list(after.tokens)[:200]:
        assert "n6" in after.primaries(token, 3)  # ...by taking the new zone's node
    shares = after.location_ownership(3)
    assert abs(shares["zone-2"] - 1 / 3) < 1e-9


def test_equal_zones_hold_equal_shares() -> None:
    located = {f"n{i}": f"zone-{i % 3}" for i in range(9)}
    shares = Ring(list(located), locations=located).location_ownership(3)
    assert shares == {"zone-0": 1 / 3, "zone-1": 1 / 3, "zone-2": 1 / 3} or all(
        abs(s - 1 / 3) < 1e-9 for s in shares.values()
    )


def test_placement_order_and_stand_ins_by_table() -> None:
    loc = {"a1": "A", "a2": "A", "b1": "B", "c1": "C"}
    assert placement_order(["a1", "a2", "b1", "c1"], loc) == ("a1", "b1", "c1", "a2")
    assert placement_order(["b1", "c1", "a1"], loc) == ("b1", "c1", "a1")
    # b1 down: the spares are a2 (zone A, nearest, where a1 holds a replica) and x
    # (zone X): x stands in; without x, a2 does (a replica beats none).
    loc["x"] = "X"
    assert choose_stand_ins(["a1", "b1"], ["a2", "x"], {"b1"}, loc) == [("x", "b1")]
    assert choose_stand_ins(["a1", "b1"], ["a2"], {"b1"}, loc) == [("a2", "b1")]
    # a1 down: zone A holds no other replica, so its nearest spare a2 is as good as any.
    assert choose_stand_ins(["a1", "b1"], ["a2", "x"], {"a1"}, loc) == [("a2", "a1")]
    assert choose_stand_ins(["a1", "b1"], [], {"a1"}, loc) == []
