"""The wire codec of the gossip messages: plain msgpack-able bodies, checked on decode.

::

    SYN  {"d": DIGEST}
    ACK  {"d": DELTAS, "r": DIGEST}
    ACK2 {"d": DELTAS}
    DIGEST  [[node, ...], [generation, ...], [max_version, ...]]   (parallel arrays)
    DELTAS  [[node, generation, [[key, value, version], ...]], ...]

Unknown map keys are ignored, so fields can be added later. Errors::

    ValueError
     +-- ProtocolError   a peer's message is malformed (close that connection)
"""

from __future__ import annotations

from typing import Final

from gossip.messages import (
    KEY_HEARTBEAT,
    KIND_ACK,
    KIND_ACK2,
    KIND_SYN,
    MAX_GENERATION,
    MAX_KEY_CHARS,
    MAX_NODE_ID_CHARS,
    Digest,
    Entry,
    GossipAck,
    GossipAck2,
    GossipMessage,
    GossipSyn,
    NodeDelta,
    _node_delta,
)

__all__ = ["ProtocolError", "from_wire", "to_wire", "wire_kind"]

#: The node-to-node methods that carry these messages (a SYN is answered by an ACK).
METHOD_SYN: Final = "gossip_syn"
METHOD_ACK2: Final = "gossip_ack2"
MAX_VERSION: Final = 2**63 - 1
#: Most nodes one digest (or request) may name.
MAX_DIGEST_NODES: Final = 65_536
#: Most entries one message may carry (the byte budget normally binds long before).
MAX_DELTA_ENTRIES: Final = 1_000_000


class ProtocolError(ValueError):
    """A peer sent a malformed gossip message; the text says what is wrong."""


def wire_kind(msg: GossipMessage) -> int:
    """The message kind number that goes on the wire with :func:`to_wire`'s body."""
    return msg.KIND


def to_wire(msg: GossipMessage) -> dict[str, object]:
    """A plain msgpack-able body for ``msg`` (tuples encode as arrays)."""
    if isinstance(msg, GossipSyn):
        return {"d": _digest_to_wire(msg.digest)}
    deltas = [[d.node, d.generation, d.entries] for d in msg.deltas]
    if isinstance(msg, GossipAck):
        return {"d": deltas, "r": _digest_to_wire(msg.request)}
    return {"d": deltas}


def _digest_to_wire(digest: Digest) -> list[list[object]]:
    pairs = list(digest.values())
    return [list(digest), [g for g, _ in pairs], [v for _, v in pairs]]


def from_wire(kind: object, obj: object) -> GossipMessage:
    """Rebuild a message from a decoded body, checking its shape and types.

    Raises ProtocolError naming the first problem found.
    """
    if kind == KIND_SYN and type(kind) is int:
        body = _body(obj, "GossipSyn", ("d",))
        return GossipSyn(digest=_digest(body["d"], "GossipSyn.d"))
    if kind == KIND_ACK and type(kind) is int:
        body = _body(obj, "GossipAck", ("d", "r"))
        return GossipAck(
            deltas=_deltas(body["d"], "GossipAck.d"), request=_digest(body["r"], "GossipAck.r")
        )
    if kind == KIND_ACK2 and type(kind) is int:
        body = _body(obj, "GossipAck2", ("d",))
        return GossipAck2(deltas=_deltas(body["d"], "GossipAck2.d"))
    raise ProtocolError(f"unknown gossip message kind {kind!r}")


def _is_int_in(value: object, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _body(obj: object, name: str, required: tuple[str, ...]) -> dict[object, object]:
    if not isinstance(obj, dict):
        raise ProtocolError(f"{name}: body must be a map, got {type(obj).__name__}")
    for field in required:
        if field not in obj:
            raise ProtocolError(f"{name}: missing field {field!r}")
    return obj


def _node_id(node: object, where: str) -> str:
    if not isinstance(node, str) or not 0 < len(node) <= MAX_NODE_ID_CHARS:
        raise ProtocolError(f"{where}: node id must be a str of 1..{MAX_NODE_ID_CHARS} chars")
    return node


def _digest(obj: object, where: str) -> dict[str, tuple[int, int]]:
    # Whole-array checks (map/min/max run in C): a digest names every node known.
    if not isinstance(obj, list | tuple) or len(obj) != 3:
        raise ProtocolError(f"{where}: must be [nodes, generations, max_versions]")
    nodes, generations, versions = obj
    if not all(isinstance(column, list | tuple) for column in obj):
        raise ProtocolError(f"{where}: nodes, generations and max_versions must be arrays")
    if not len(nodes) == len(generations) == len(versions):
        raise ProtocolError(f"{where}: nodes, generations and max_versions differ in length")
    if len(nodes) > MAX_DIGEST_NODES:
        raise ProtocolError(f"{where}: {len(nodes)} nodes, limit {MAX_DIGEST_NODES}")
    if not nodes:
        return {}
    if set(map(type, nodes)) != {str} or not (
        min(map(len, nodes)) > 0 and max(map(len, nodes)) <= MAX_NODE_ID_CHARS
    ):
        raise ProtocolError(f"{where}: node ids must be strs of 1..{MAX_NODE_ID_CHARS} chars")
    for name, column, high in (
        ("generations", generations, MAX_GENERATION),
        ("max_versions", versions, MAX_VERSION),
    ):
        if set(map(type, column)) != {int} or min(column) < 0 or max(column) > high:
            raise ProtocolError(f"{where}: {name} must be ints in 0..{high}")
    out = dict(zip(nodes, zip(generations, versions, strict=True), strict=True))
    if len(out) != len(nodes):
        raise ProtocolError(f"{where}: a node appears twice")
    return out


def _bad_node_delta(item: list[object] | tuple[object, ...], seen: set[str], at: str) -> None:
    node, generation, _ = item
    _node_id(node, at)
    if node in seen:
        raise ProtocolError(f"{at}: node {node!r} appears twice")
    if not _is_int_in(generation, 0, MAX_GENERATION):
        raise ProtocolError(f"{at}: generation must be an int in 0..2**63-1")
    raise ProtocolError(f"{at}: entries must be a non-empty array")


def _deltas(obj: object, where: str) -> tuple[NodeDelta, ...]:
    if not isinstance(obj, list | tuple):
        raise ProtocolError(f"{where}: must be an array, got {type(obj).__name__}")
    out: list[NodeDelta] = []
    seen: set[str] = set()
    total = 0
    for i, item in enumerate(obj):
        if (type(item) is not list and type(item) is not tuple) or len(item) != 3:
            raise ProtocolError(f"{where}[{i}]: must be [node, generation, entries]")
        node, generation, raw = item
        if (
            type(node) is not str
            or not 0 < len(node) <= MAX_NODE_ID_CHARS
            or node in seen
            or type(generation) is not int
            or not 0 <= generation <= MAX_GENERATION
            or (type(raw) is not list and type(raw) is not tuple)
            or not raw
        ):
            _bad_node_delta(item, seen, f"{where}[{i}]")
        seen.add(node)
        total += len(raw)
        if total > MAX_DELTA_ENTRIES:
            raise ProtocolError(f"{where}: more than {MAX_DELTA_ENTRIES} entries")
        entries: list[Entry] = []
        last = 0
        for entry in raw:
            if (type(entry) is not list and type(entry) is not tuple) or len(entry) != 3:
                raise ProtocolError(f"{where}[{i}]: entry must be [key, value, version]")
            key, value, version = entry
            if type(key) is not str or not 0 < len(key) <= MAX_KEY_CHARS:
                raise ProtocolError(
                    f"{where}[{i}] ({node}): key must be a str of 1..{MAX_KEY_CHARS} chars"
                )
            if type(version) is not int or not last < version <= MAX_VERSION:
                raise ProtocolError(
                    f"{where}[{i}] ({node}) {key!r}: version must be an int increasing "
                    f"along the entries, "
                    f"got {version!r} after {last}"
                )
            if key == KEY_HEARTBEAT and (type(value) is not int or value < 0):
                raise ProtocolError(
                    f"{where}[{i}] ({node}): {KEY_HEARTBEAT!r} value must be an int >= 0"
                )
            last = version
            entries.append((key, value, version))
        out.append(_node_delta(node, generation, tuple(entries)))
    return tuple(out)
