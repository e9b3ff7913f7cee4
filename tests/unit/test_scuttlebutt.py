"""The scuttlebutt state machine (``gossip.scuttlebutt``). Its wire format:
``test_gossip_wire.py``; the peer-selection policy: ``test_gossip_peers.py``."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.scuttlebutt import (
    KEY_HEARTBEAT,
    GossipAck,
    GossipAck2,
    GossipMessage,
    GossipSyn,
    HeartbeatState,
    NodeDelta,
    Scuttlebutt,
    Update,
    _node_delta,
    _update,
    from_wire,
    to_wire,
    wire_kind,
)


def over_wire(msg: GossipMessage) -> GossipMessage:
    """Encode, decode and validate, as the RPC layer does."""
    kind, body = msgpack.unpackb(msgpack.packb([wire_kind(msg), to_wire(msg)]))
    return from_wire(kind, body)


def gossip(a: Scuttlebutt, b: Scuttlebutt) -> tuple[list[Update], list[Update]]:
    """One full round started by ``a``: the updates applied at a and at b."""
    syn = over_wire(a.make_syn())
    assert isinstance(syn, GossipSyn)
    ack = over_wire(b.on_syn(syn))
    assert isinstance(ack, GossipAck)
    ack2, at_a = a.on_ack(ack)
    got = over_wire(ack2)
    assert isinstance(got, GossipAck2)
    return at_a, b.on_ack2(got)


def node(node_id: str, generation: int = 1, **keys: object) -> Scuttlebutt:
    sb = Scuttlebutt(node_id, generation)
    for key, value in keys.items():
        sb.set_local(key, value)
    return sb


# -- local state -------------------------------------------------------------------


def test_each_local_change_takes_the_next_version() -> None:
    sb = node("a", x=1, y=2)
    sb.set_local("x", 3)
    assert sb.versions("a") == {"y": 2, "x": 3}
    assert sb.max_version("a") == 3
    assert sb.items("a") == {"y": 2, "x": 3}
    assert sb.get("a", "x") == 3
    assert sb.get("a", "nope") is None
    assert sb.generation("a") == 1
    assert sb.nodes() == ["a"]


def test_beat_bumps_the_heartbeat_counter() -> None:
    sb = node("a")
    assert sb.heartbeat("a") == HeartbeatState(generation=1, version=0)
    sb.beat()
    sb.beat()
    assert sb.heartbeat("a") == HeartbeatState(generation=1, version=2)
    assert sb.get("a", KEY_HEARTBEAT) == 2


def test_queries_about_an_unknown_node() -> None:
    sb = node("a")
    assert sb.generation("z") is None
    assert sb.max_version("z") is None
    assert sb.heartbeat("z") is None
    assert sb.items("z") == {}
    assert sb.versions("z") == {}
    assert "z" not in sb
    assert len(sb) == 1


@pytest.mark.parametrize(
    ("key", "value", "error", "match"),
    [
        (KEY_HEARTBEAT, 1, ValueError, "reserved"),
        ("", 1, ValueError, "key"),
        ("k" * 1025, 1, ValueError, "key"),
        ("big", "v" * 70_000, ValueError, "max_delta_bytes"),
        ("odd", object(), TypeError, "serialize"),
    ],
)
def test_bad_local_keys_and_values_are_refused(
    key: str, value: object, error: type[Exception], match: str
) -> None:
    sb = node("a")
    with pytest.raises(error, match=match):
        sb.set_local(key, value)
    assert sb.max_version("a") == 0


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("", 1), {}, "node_id"),
        (("a", -1), {}, "generation"),
        (("a", True), {}, "generation"),
        (("a", 1), {"max_delta_bytes": 10}, "max_delta_bytes"),
    ],
)
def test_bad_settings_name_the_field(
    args: tuple[object, ...], kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        Scuttlebutt(*args, **kwargs)  # type: ignore[arg-type]


# -- reconciliation ----------------------------------------------------------------


def test_one_round_reconciles_both_ways() -> None:
    a, b = node("a", x=1), node("b", y=2)
    at_a, at_b = gossip(a, b)
    assert at_a == [
        Update(node="b", generation=1, key="y", value=2, version=1, new_generation=True)
    ]
    assert at_b == [
        Update(node="a", generation=1, key="x", value=1, version=1, new_generation=True)
    ]
    for sb in (a, b):
        assert sb.nodes() == ["a", "b"]
        assert sb.items("a") == {"x": 1}
        assert sb.items("b") == {"y": 2}


def test_the_syn_digest_names_every_known_node() -> None:
    a, b = node("a", x=1), node("b", y=2, z=3)
    gossip(a, b)
    assert a.make_syn().digest == {"a": (1, 1), "b": (1, 2)}


def test_news_travel_through_an_intermediary() -> None:
    a, b, c = node("a", x=1), node("b"), node("c")
    gossip(a, b)
    gossip(c, b)
    assert c.items("a") == {"x": 1}


def test_only_what_changed_is_sent_again() -> None:
    a, b = node("a", x=1, y=2), node("b")
    gossip(a, b)
    a.set_local("y", 3)
    ack = a.on_syn(b.make_syn())
    assert ack.deltas == (NodeDelta(node="a", generation=1, entries=(("y", 3, 3),)),)
    assert ack.request == {}


def test_the_ack_requests_what_the_syn_sender_has_newer() -> None:
    a, b, c = node("a", x=1), node("b", y=1), node("c", z=1)
    gossip(b, c)  # b knows c
    ack = a.on_syn(b.make_syn())
    assert ack.request == {"b": (0, 0), "c": (0, 0)}  # unknown to a: everything
    gossip(a, b)
    b.set_local("y", 2)
    assert a.on_syn(b.make_syn()).request == {"b": (1, 1)}


def test_a_newer_generation_replaces_the_whole_state() -> None:
    old, b = node("a", x=1, y=2), node("b")
    gossip(old, b)
    new = node("a", 2, x=10)
    _, at_b = gossip(new, b)
    assert at_b == [
        Update(node="a", generation=2, key="x", value=10, version=1, new_generation=True)
    ]
    assert b.generation("a") == 2
    assert b.items("a") == {"x": 10}


def test_the_new_generation_flag_is_set_once_per_node() -> None:
    a, b = node("a", x=1, y=2, z=3), node("b")
    _, at_b = gossip(a, b)
    assert [u.new_generation for u in at_b] == [True, False, False]


def test_an_older_generation_is_ignored_and_counted() -> None:
    stale, fresh, c = node("a", 1, x=1), node("a", 2, x=2), node("c")
    gossip(fresh, c)
    updates = c.on_ack2(GossipAck2(deltas=stale.on_syn(GossipSyn(digest={})).deltas))
    assert updates == []
    assert c.stale_deltas == 1
    assert (c.generation("a"), c.items("a")) == (2, {"x": 2})


def test_deltas_about_ourselves_from_others_are_ignored() -> None:
    a = node("a", x=1, y=2)
    forged = GossipAck2(deltas=(NodeDelta(node="a", generation=1, entries=(("x", 99, 1),)),))
    assert a.on_ack2(forged) == []
    assert a.items("a") == {"x": 1, "y": 2}
    assert a.own_generation_bumps == 0


@pytest.mark.parametrize("restarted_initiates", [True, False])
def test_a_restart_with_a_lower_generation_moves_above_the_peer(restarted_initiates: bool) -> None:
    before, b = node("a", 5, x=1, gone=2), node("b")
    gossip(before, b)
    after = node("a", 3, x=7, y=8)
    for _ in range(2):
        gossip(after, b) if restarted_initiates else gossip(b, after)
    assert after.own_generation_bumps == 1
    assert after.generation("a") == 6
    assert after.versions("a") == {"x": 1, "y": 2}  # re-versioned, same order
    assert after.items("a") == {"x": 7, "y": 8}  # our values win
    assert (b.generation("a"), b.items("a")) == (6, {"x": 7, "y": 8})


def test_a_peer_ahead_of_us_in_our_own_generation_also_makes_us_move() -> None:
    twin, b = node("a", 1, x=1, y=2, z=3), node("b")
    gossip(twin, b)
    a = node("a", 1, x=9)
    gossip(b, a)
    assert (a.generation("a"), a.own_generation_bumps) == (2, 1)
    gossip(b, a)
    assert (b.generation("a"), b.items("a")) == (2, {"x": 9})


def test_purge_forgets_a_node_until_it_comes_back_newer() -> None:
    a, b = node("a", x=1), node("b")
    gossip(a, b)
    b.purge("a")
    assert "a" not in b
    gossip(a, b)  # same generation gossiped again: still forgotten
    assert "a" not in b
    assert b.on_syn(a.make_syn()).request == {}
    gossip(node("a", 2, x=2), b)
    assert (b.generation("a"), b.items("a")) == (2, {"x": 2})
    with pytest.raises(ValueError, match="own"):
        b.purge("b")


def test_a_restored_snapshot_knows_the_peers_and_only_asks_for_what_is_newer() -> None:
    a, b, c = node("a", x=1), node("b", y=2), node("c", z=3)
    gossip(a, b)
    gossip(c, a)
    saved = over_wire(a.snapshot())
    assert isinstance(saved, GossipAck2)
    assert sorted(d.node for d in saved.deltas) == ["b", "c"]  # not ourselves
    b.set_local("y", 20)  # b moves on while a is down
    restarted = node("a", 2, x=1)
    updates = restarted.restore(saved)
    assert {(u.node, u.key) for u in updates} == {("b", "y"), ("c", "z")}
    assert (restarted.items("b"), restarted.items("c")) == ({"y": 2}, {"z": 3})
    assert restarted.generation("a") == 2  # our own state starts afresh
    syn = restarted.make_syn()
    ack = b.on_syn(syn)
    assert [(d.node, [e[0] for e in d.entries]) for d in ack.deltas] == [("b", ["y"])]
    gossip(restarted, b)
    assert restarted.items("b") == {"y": 20}


def test_restore_ignores_what_a_snapshot_says_of_ourselves() -> None:
    a, b = node("a", x=1), node("b", y=2)
    gossip(a, b)
    theirs = b.snapshot()  # b's snapshot names a
    fresh = node("a", 1)
    fresh.restore(theirs)
    assert (fresh.generation("a"), fresh.items("a"), fresh.own_generation_bumps) == (1, {}, 0)
    assert fresh.items("b") == {}  # b's own state is not in its snapshot


# -- flow control ------------------------------------------------------------------


def test_a_cut_off_delta_is_a_version_ordered_prefix() -> None:
    a = Scuttlebutt("a", 1)
    for i in range(50):
        a.set_local(f"k{i:02d}", "v" * 100)
    b = Scuttlebutt("b", 1, max_delta_bytes=1024)
    first = b.on_syn(a.make_syn())  # b knows nothing; a's reply is bounded by a's budget
    a2 = Scuttlebutt("a", 1, max_delta_bytes=1024)
    for i in range(50):
        a2.set_local(f"k{i:02d}", "v" * 100)
    ack = a2.on_syn(b.make_syn())
    assert first.request == {"a": (0, 0)}
    (delta,) = ack.deltas
    versions = [version for _, _, version in delta.entries]
    assert versions == list(range(1, len(versions) + 1))
    assert len(msgpack.packb(to_wire(ack)["d"])) <= 1024
    b.on_ack2(GossipAck2(deltas=ack.deltas))
    assert b.max_version("a") == versions[-1]  # a valid watermark
    rounds = 1
    while b.max_version("a") != 50:
        gossip(b, a2)
        rounds += 1
    assert b.items("a") == a2.items("a")
    assert rounds >= 5


def test_the_most_out_of_date_node_goes_first() -> None:
    p, q = node("p"), node("q")
    for i in range(30):
        p.set_local(f"k{i}", "x" * 40)
    for i in range(12):
        q.set_local(f"k{i}", "x" * 40)
    hub = Scuttlebutt("hub", 1, max_delta_bytes=600)
    gossip(p, hub)
    gossip(q, hub)
    ack = hub.on_syn(GossipSyn(digest={"p": (1, 28), "q": (1, 0)}))
    assert [d.node for d in ack.deltas] == ["q"]  # lag 12 before lag 2; q is cut off
    ack = hub.on_syn(GossipSyn(digest={"q": (1, 0), "p": (1, 0)}))
    assert [d.node for d in ack.deltas] == ["p"]  # lag 30 before lag 12
    assert len(msgpack.packb(to_wire(ack)["d"])) <= 600


def test_an_entry_over_the_budget_still_travels_alone() -> None:
    big = Scuttlebutt("big", 1, max_delta_bytes=4096)
    big.set_local("blob", "b" * 2000)
    small = Scuttlebutt("small", 1, max_delta_bytes=512)
    gossip(big, small)
    c = node("c")
    gossip(c, small)
    assert c.get("big", "blob") == "b" * 2000


def test_fast_constructors_build_the_same_values() -> None:
    assert _update("a", 1, "k", [1], 2, True) == Update(
        node="a", generation=1, key="k", value=[1], version=2, new_generation=True
    )
    assert _node_delta("a", 1, (("k", 1, 2),)) == NodeDelta(
        node="a", generation=1, entries=(("k", 1, 2),)
    )


# -- a property: watermarks stay valid, and everything converges --------------------

NODES = ("a", "b", "c", "d")
ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("set"), st.sampled_from(NODES), st.sampled_from("wxyz"), st.text(max_size=4)
        ),
        st.tuples(st.just("beat"), st.sampled_from(NODES)),
        st.tuples(st.just("restart"), st.sampled_from(NODES)),
        st.tuples(
            st.just("gossip"), st.sampled_from(NODES), st.sampled_from(NODES), st.integers(0, 3)
        ),
    ),
    max_size=60,
)


def check_watermarks(owners: dict[str, Scuttlebutt]) -> None:
    """Whoever holds watermark w for x (same generation) holds every key of x whose
    latest version is <= w, at that version."""
    for observer in owners.values():
        assert observer.make_syn().digest == {
            n: (observer.generation(n), observer.max_version(n)) for n in observer.nodes()
        }
        for x, owner in owners.items():
            if observer.generation(x) != owner.generation(x):
                continue
            watermark = observer.max_version(x)
            assert watermark is not None
            seen = observer.versions(x)
            for key, version in owner.versions(x).items():
                if version <= watermark:
                    assert seen.get(key) == version
                    assert observer.get(x, key) == owner.get(x, key)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_watermarks_stay_valid_and_all_converge(script: list[tuple[object, ...]]) -> None:
    owners = {n: Scuttlebutt(n, 1, max_delta_bytes=512) for n in NODES}
    for owner in owners.values():
        owner.beat()  # a node with no key at all is not gossiped
    for op in script:
        if op[0] == "set":
            owners[str(op[1])].set_local(str(op[2]), str(op[3]) * 20)
        elif op[0] == "beat":
            owners[str(op[1])].beat()
        elif op[0] == "restart":
            old = owners[str(op[1])]
            new = Scuttlebutt(old.node_id, (old.generation(old.node_id) or 0) + 1)
            new.beat()
            owners[new.node_id] = new
        else:
            a, b, drop = owners[str(op[1])], owners[str(op[2])], op[3]
            if a is b:
                continue
            ack = b.on_syn(a.make_syn())
            if drop == 1:
                continue
            ack2, _ = a.on_ack(ack)
            if drop != 2:
                b.on_ack2(ack2)
        check_watermarks(owners)
    for _ in range(40):
        for a in owners.values():
            for b in owners.values():
                if a is not b:
                    gossip(a, b)
    for observer in owners.values():
        for x, owner in owners.items():
            assert observer.generation(x) == owner.generation(x)
            assert observer.items(x) == owner.items(x)
