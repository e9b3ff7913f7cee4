"""Bucket types as gossiped records (``gossip.bucket_types``): one identity per name, the
newest props, activation, who holds what."""

from __future__ import annotations

import pytest

from gossip import bucket_types as bt
from gossip.bucket_types import BucketType, BucketTypeError
from gossip.scuttlebutt import Scuttlebutt
from http_api.types import DEFAULT_TYPE, split_bucket, typed_bucket


def node(name: str) -> Scuttlebutt:
    return Scuttlebutt(name, 7)


def sync(*nodes: Scuttlebutt) -> None:
    """Full reconciliation between every pair, through the pure state machines."""
    for _ in range(2):
        for a in nodes:
            for b in nodes:
                if a is not b:
                    ack2, _ = a.on_ack(b.on_syn(a.make_syn()))
                    b.on_ack2(ack2)


def test_a_type_spreads_and_every_node_reads_the_same() -> None:
    a, b = node("a"), node("b")
    bt.publish(a, BucketType("sets", (100.0, "a"), {"datatype": "set"}, 100.0, False))
    sync(a, b)
    assert bt.types(b)["sets"].datatype == "set"
    assert not bt.types(b)["sets"].active
    assert bt.types(a) == bt.types(b)


def test_two_creations_of_one_name_keep_the_first() -> None:
    a, b = node("a"), node("b")
    bt.publish(a, BucketType("t", (100.0, "a"), {"datatype": "counter"}, 100.0, False))
    bt.publish(b, BucketType("t", (99.0, "b"), {"datatype": "set"}, 99.0, False))
    sync(a, b)
    for s in (a, b):
        assert bt.types(s)["t"].datatype == "set"
        assert bt.types(s)["t"].created == (99.0, "b")


def test_newest_props_win_and_activation_sticks() -> None:
    a, b = node("a"), node("b")
    created = (100.0, "a")
    bt.publish(a, BucketType("t", created, {"datatype": "set", "n_val": 3}, 100.0, False))
    sync(a, b)
    bt.publish(b, BucketType("t", created, {"datatype": "set", "n_val": 2}, 101.0, False))
    bt.publish(a, BucketType("t", created, {"datatype": "set", "n_val": 3}, 100.0, True))
    sync(a, b)
    for s in (a, b):
        t = bt.types(s)["t"]
        assert t.props["n_val"] == 2
        assert t.active


def test_activation_waits_for_every_member_to_hold_the_type() -> None:
    a, b = node("a"), node("b")
    t = BucketType("t", (100.0, "a"), {"datatype": "map"}, 100.0, False)
    bt.publish(a, t)
    bt.publish_held(a, bt.types(a))
    sync(a, b)
    assert bt.missing(a, t, ["a", "b"]) == ["b"]
    bt.publish_held(b, bt.types(b))
    sync(a, b)
    assert bt.missing(a, t, ["a", "b"]) == []


@pytest.mark.parametrize("name", ["", "default", "a/b", "x\x00y", "n" * 256])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(BucketTypeError):
        bt.check_name(name)


def test_datatypes_are_riaks() -> None:
    bt.check_datatype({"datatype": "hll"})
    bt.check_datatype({})
    with pytest.raises(BucketTypeError, match="counter, set, gset, map, hll"):
        bt.check_datatype({"datatype": "register"})


def test_malformed_records_are_ignored() -> None:
    a = node("a")
    a.set_local("type:x", {"created": "yesterday", "props": {}, "stamp": 1, "active": True})
    a.set_local("type:y", ["not", "a", "record"])
    assert bt.types(a) == {}


def test_a_typed_bucket_is_its_own_namespace() -> None:
    assert typed_bucket(DEFAULT_TYPE, b"b") == b"b"
    stored = typed_bucket(b"maps", b"b")
    assert stored != b"b"
    assert split_bucket(stored) == (b"maps", b"b")
    assert split_bucket(b"b") == (DEFAULT_TYPE, b"b")
