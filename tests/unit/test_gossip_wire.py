"""The gossip wire format (``gossip.wire``): messages survive it, kinds are numbered
once, unknown fields are ignored, malformed messages say what is wrong."""

from __future__ import annotations

import msgpack
import pytest

from gossip.scuttlebutt import (
    KEY_HEARTBEAT,
    KIND_ACK,
    KIND_ACK2,
    KIND_SYN,
    GossipAck,
    GossipAck2,
    GossipMessage,
    GossipSyn,
    NodeDelta,
    ProtocolError,
    from_wire,
    to_wire,
    wire_kind,
)


def over_wire(msg: GossipMessage) -> GossipMessage:
    """Encode, decode and validate, as the RPC layer does."""
    kind, body = msgpack.unpackb(msgpack.packb([wire_kind(msg), to_wire(msg)]))
    return from_wire(kind, body)


# -- wire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "msg",
    [
        GossipSyn(digest={"a": (1, 5), "b": (0, 0)}),
        GossipSyn(digest={}),
        GossipAck(
            deltas=(
                NodeDelta(
                    node="a", generation=3, entries=(("x", {"k": [1, 2]}, 4), ("y", None, 6))
                ),
                NodeDelta(node="b", generation=1, entries=((KEY_HEARTBEAT, 9, 2),)),
            ),
            request={"c": (2, 7)},
        ),
        GossipAck2(deltas=()),
    ],
)
def test_messages_survive_the_wire(msg: GossipMessage) -> None:
    assert over_wire(msg) == msg


def test_kinds_are_numbered_once() -> None:
    assert (KIND_SYN, KIND_ACK, KIND_ACK2) == (1, 2, 3)
    assert wire_kind(GossipAck2(deltas=())) == KIND_ACK2


def test_unknown_fields_are_ignored() -> None:
    assert from_wire(KIND_ACK2, {"d": [], "future": 1}) == GossipAck2(deltas=())


GOOD_DELTA = ["a", 1, [["x", 1, 1]]]


@pytest.mark.parametrize(
    ("kind", "body", "match"),
    [
        (9, {}, "unknown gossip message kind"),
        (True, {"d": [[], [], []]}, "unknown gossip message kind"),
        (KIND_SYN, [], "must be a map"),
        (KIND_SYN, {}, "missing field 'd'"),
        (KIND_SYN, {"d": {"a": [1, 1]}}, r"\[nodes, generations, max_versions\]"),
        (KIND_SYN, {"d": [["a"], [1], []]}, "differ in length"),
        (KIND_SYN, {"d": [["a"], 1, [1]]}, "must be arrays"),
        (KIND_SYN, {"d": [[""], [1], [1]]}, "node ids"),
        (KIND_SYN, {"d": [[7], [1], [1]]}, "node ids"),
        (KIND_SYN, {"d": [["a"], [-1], [1]]}, "generations"),
        (KIND_SYN, {"d": [["a"], [True], [1]]}, "generations"),
        (KIND_SYN, {"d": [["a"], [1], [1.5]]}, "max_versions"),
        (KIND_SYN, {"d": [["a", "a"], [1, 1], [1, 1]]}, "twice"),
        (KIND_ACK, {"d": []}, "missing field 'r'"),
        (KIND_ACK2, {"d": {}}, "must be an array"),
        (KIND_ACK2, {"d": [["a", 1]]}, "must be \\[node, generation, entries\\]"),
        (KIND_ACK2, {"d": [["a", 1, []]]}, "non-empty"),
        (KIND_ACK2, {"d": [["a", -1, [["x", 1, 1]]]]}, "generation"),
        (KIND_ACK2, {"d": [[None, 1, [["x", 1, 1]]]]}, "node id"),
        (KIND_ACK2, {"d": [GOOD_DELTA, GOOD_DELTA]}, "twice"),
        (KIND_ACK2, {"d": [["a", 1, [["x", 1]]]]}, "entry must be"),
        (KIND_ACK2, {"d": [["a", 1, [[1, 1, 1]]]]}, "key must be"),
        (KIND_ACK2, {"d": [["a", 1, [["x", 1, 0]]]]}, "version"),
        (KIND_ACK2, {"d": [["a", 1, [["x", 1, 2], ["y", 1, 2]]]]}, "increasing"),
        (KIND_ACK2, {"d": [["a", 1, [["heartbeat", "x", 1]]]]}, "heartbeat"),
    ],
)
def test_malformed_messages_say_what_is_wrong(kind: object, body: object, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        from_wire(kind, body)
