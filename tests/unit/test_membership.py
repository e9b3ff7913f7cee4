"""Membership view: members, ring members, bucket props, status lifecycle."""

from __future__ import annotations

import math

import pytest

from gossip.membership import (
    JOINING,
    KEY_STATUS,
    KEY_WEIGHT,
    LEAVING,
    LEFT,
    VALID,
    Member,
    PurgeLeft,
    announce,
    bucket_props,
    is_valid_transition,
    members,
    props_key,
    ring_members,
    set_bucket_props,
    set_status,
)
from gossip.scuttlebutt import Scuttlebutt


def sync(*nodes: Scuttlebutt) -> None:
    """Full reconciliation between every pair, through the pure state machines."""
    for _ in range(2):
        for a in nodes:
            for b in nodes:
                if a is not b:
                    ack2, _ = a.on_ack(b.on_syn(a.make_syn()))
                    b.on_ack2(ack2)


def started(node_id: str, status: str = VALID, weight: float = 1.0) -> Scuttlebutt:
    sb = Scuttlebutt(node_id, 7)
    announce(
        sb, peer_addr=f"{node_id}:7000", http_addr=f"{node_id}:8098", status=status, weight=weight
    )
    sb.beat()
    return sb


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        (None, JOINING, True),
        (None, VALID, True),  # a restarted member or the first node of a cluster
        (None, LEAVING, True),
        (None, LEFT, True),
        (JOINING, VALID, True),
        (JOINING, LEFT, True),  # an abandoned join
        (JOINING, LEAVING, False),
        (VALID, LEAVING, True),
        (VALID, JOINING, False),
        (VALID, LEFT, False),  # data must be handed off first
        (LEAVING, LEFT, True),
        (LEAVING, VALID, False),
        (LEFT, JOINING, False),
        (VALID, VALID, True),
        (None, "bogus", False),
        ("bogus", VALID, False),
    ],
)
def test_status_transitions(old: str | None, new: str, ok: bool) -> None:
    assert is_valid_transition(old, new) is ok


def test_members_are_read_from_every_node_sorted() -> None:
    a, b = started("b", weight=2.0), started("a", status=JOINING)
    sync(a, b)
    assert members(a) == [
        Member(
            node="a",
            peer_addr="a:7000",
            http_addr="a:8098",
            pb_addr="",
            location="a",
            status=JOINING,
            weight=1.0,
            generation=7,
            heartbeat=1,
        ),
        Member(
            node="b",
            peer_addr="b:7000",
            http_addr="b:8098",
            pb_addr="",
            location="b",
            status=VALID,
            weight=2.0,
            generation=7,
            heartbeat=1,
        ),
    ]


def test_the_ring_is_made_of_valid_and_leaving_members() -> None:
    nodes = [
        started("a"),
        started("b", weight=0.5),
        started("c", status=JOINING),
        started("d", status=LEAVING),
        started("e", status=LEFT),
    ]
    sync(*nodes)
    for sb in nodes:
        assert ring_members(sb) == {"a": 1.0, "b": 0.5, "d": 1.0}


@pytest.mark.parametrize(
    ("status", "weight", "want_status", "want_weight"),
    [
        (None, None, JOINING, 1.0),  # not announced yet
        ("weird", "heavy", JOINING, 1.0),
        (VALID, -1.0, VALID, 1.0),
        (VALID, math.inf, VALID, 1.0),
        (VALID, True, VALID, 1.0),
        (VALID, 3, VALID, 3.0),
    ],
)
def test_malformed_announcements_read_as_safe_defaults(
    status: object, weight: object, want_status: str, want_weight: float
) -> None:
    peer, me = Scuttlebutt("peer", 1), Scuttlebutt("me", 1)
    peer.beat()
    if status is not None:
        peer.set_local(KEY_STATUS, status)
    if weight is not None:
        peer.set_local(KEY_WEIGHT, weight)
    sync(peer, me)
    (member,) = [m for m in members(me) if m.node == "peer"]
    assert (member.status, member.weight, member.peer_addr) == (want_status, want_weight, "")
    in_ring = want_status == VALID
    assert ring_members(me) == ({"peer": want_weight} if in_ring else {})


def test_set_status_follows_the_lifecycle() -> None:
    sb = started("a", status=JOINING)
    set_status(sb, VALID)
    set_status(sb, VALID)
    set_status(sb, LEAVING)
    with pytest.raises(ValueError, match="'leaving' to 'joining'"):
        set_status(sb, JOINING)
    set_status(sb, LEFT)
    assert sb.get("a", KEY_STATUS) == LEFT


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"status": "up"}, "status"), ({"weight": 0.0}, "weight"), ({"weight": math.nan}, "weight")],
)
def test_announce_refuses_bad_values(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"peer_addr": "h:1", "http_addr": "h:2", "status": VALID}
    with pytest.raises(ValueError, match=match):
        announce(Scuttlebutt("a", 1), **(args | kwargs))  # type: ignore[arg-type]


def test_bucket_props_last_writer_wins_across_origins() -> None:
    a, b, c = started("a"), started("b"), started("c")
    set_bucket_props(a, "users", {"n_val": 5}, 100.0)
    set_bucket_props(b, "users", {"n_val": 2}, 101.0)  # later: wins
    set_bucket_props(c, "logs", {"allow_mult": False}, 50.0)
    set_bucket_props(a, "logs", None, 50.0)  # same time: node id breaks the tie, c > a
    set_bucket_props(a, "tmp", {"w": 1}, 10.0)
    set_bucket_props(a, "tmp", None, 11.0)  # reset to defaults
    sync(a, b, c)
    for sb in (a, b, c):
        assert bucket_props(sb) == {
            "users": {"n_val": 2},
            "logs": {"allow_mult": False},
            "tmp": None,
        }


def test_bucket_props_are_copies() -> None:
    a = started("a")
    set_bucket_props(a, "b", {"n_val": 3}, 1.0)
    props = bucket_props(a)["b"]
    assert props is not None
    props["n_val"] = 99
    assert bucket_props(a) == {"b": {"n_val": 3}}


@pytest.mark.parametrize(
    "value",
    [
        "nope",
        [1.0],
        [1.0, {"n_val": 3}, "extra"],
        ["soon", {"n_val": 3}],
        [math.nan, {"n_val": 3}],
        [True, {"n_val": 3}],
        [1.0, ["n_val", 3]],
        [1.0, {1: 3}],
    ],
)
def test_malformed_props_are_ignored(value: object) -> None:
    peer, me = started("peer"), started("me")
    peer.set_local(props_key("b"), value)
    sync(peer, me)
    assert bucket_props(me) == {}


def test_set_bucket_props_refuses_a_non_finite_timestamp() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        set_bucket_props(started("a"), "b", {}, math.inf)


def test_a_member_that_left_is_purged_after_the_grace_period_and_may_come_back_newer() -> None:
    a, b = started("a"), started("b")
    sync(a, b)
    set_status(b, LEAVING)
    set_status(b, LEFT)
    sync(a, b)
    purge = PurgeLeft(grace_s=60.0)
    assert purge.due(a, now=100.0) == []  # first seen left at 100
    assert purge.due(a, now=159.0) == []
    assert purge.due(a, now=160.0) == ["b"]
    a.purge("b")
    sync(a, b)  # b's old generation gossiped again: stays forgotten
    assert "b" not in a
    assert purge.due(a, now=500.0) == []
    assert purge.since == {}
    back = started("b")  # a new generation: a restart with rejoin
    back_newer = Scuttlebutt("b", 8)
    announce(back_newer, peer_addr="b:7000", http_addr="b:8098", status=JOINING)
    sync(a, back_newer)
    assert "b" in a
    assert purge.due(a, now=600.0) == []
    assert back.node_id == "b"


def test_a_member_that_comes_back_before_the_grace_period_is_not_purged() -> None:
    a = started("a")
    b = Scuttlebutt("b", 7)
    announce(b, peer_addr="b:7000", http_addr="b:8098", status=LEFT)
    sync(a, b)
    purge = PurgeLeft(grace_s=10.0)
    assert purge.due(a, now=0.0) == []
    b2 = Scuttlebutt("b", 9)
    announce(b2, peer_addr="b:7000", http_addr="b:8098", status=JOINING)
    sync(a, b2)
    assert purge.due(a, now=20.0) == []
    assert purge.since == {}
    assert PurgeLeft(grace_s=0.0).due(a, now=0.0) == []  # ourselves and the living: never
