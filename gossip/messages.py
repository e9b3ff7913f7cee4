"""The values the scuttlebutt core exchanges: gossip messages and what it reports.

:class:`GossipSyn`, :class:`GossipAck` and :class:`GossipAck2` are the three messages
of a round (see :mod:`gossip.scuttlebutt`); :mod:`gossip.wire` encodes and checks them.
The limits here bound both a peer's messages and local input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final, TypeAlias

__all__ = [
    "KEY_HEARTBEAT",
    "KIND_ACK",
    "KIND_ACK2",
    "KIND_SYN",
    "Digest",
    "GossipAck",
    "GossipAck2",
    "GossipMessage",
    "GossipSyn",
    "HeartbeatState",
    "NodeDelta",
    "Update",
]

#: Reserved key bumped by :meth:`~gossip.scuttlebutt.Scuttlebutt.beat`; its value is the
#: heartbeat counter.
KEY_HEARTBEAT: Final = "heartbeat"

# Wire message kinds: numbered once, append-only.
KIND_SYN: Final = 1
KIND_ACK: Final = 2
KIND_ACK2: Final = 3

MAX_NODE_ID_CHARS: Final = 255
MAX_KEY_CHARS: Final = 1024
MAX_GENERATION: Final = 2**63 - 1

#: node -> (generation, max_version). An unknown node is requested as (0, 0).
Digest: TypeAlias = Mapping[str, tuple[int, int]]
#: (key, value, version)
Entry: TypeAlias = tuple[str, object, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatState:
    """A node's generation (incarnation) and its latest heartbeat counter."""

    generation: int
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeDelta:
    """Entries of one node's state, non-empty and in strictly increasing version order."""

    node: str
    generation: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class GossipSyn:
    KIND: ClassVar[int] = KIND_SYN
    digest: Digest


@dataclass(frozen=True, slots=True, kw_only=True)
class GossipAck:
    KIND: ClassVar[int] = KIND_ACK
    deltas: tuple[NodeDelta, ...]
    request: Digest


@dataclass(frozen=True, slots=True, kw_only=True)
class GossipAck2:
    KIND: ClassVar[int] = KIND_ACK2
    deltas: tuple[NodeDelta, ...]


GossipMessage: TypeAlias = GossipSyn | GossipAck | GossipAck2


@dataclass(frozen=True, slots=True, kw_only=True)
class Update:
    """A key of another node that changed here. ``new_generation`` is set on the first
    update of a node seen for the first time or with a newer generation (reset its
    failure detector); the node's keys not in this generation are gone."""

    node: str
    generation: int
    key: str
    value: object
    version: int
    new_generation: bool = False


# The hot loops build one NodeDelta or Update per gossiped key: ~1M per simulated
# second at 1,000 nodes. A frozen dataclass __init__ sets each field through
# object.__setattr__, about 3x slower than the slot descriptors used here; the
# objects are the same.
_new = object.__new__
_ND_NODE, _ND_GEN, _ND_ENTRIES = (
    getattr(NodeDelta, f).__set__ for f in ("node", "generation", "entries")
)
_UP_NODE, _UP_GEN, _UP_KEY, _UP_VALUE, _UP_VERSION, _UP_NEW = (
    getattr(Update, f).__set__
    for f in ("node", "generation", "key", "value", "version", "new_generation")
)


def _node_delta(node: str, generation: int, entries: tuple[Entry, ...]) -> NodeDelta:
    delta: NodeDelta = _new(NodeDelta)
    _ND_NODE(delta, node)
    _ND_GEN(delta, generation)
    _ND_ENTRIES(delta, entries)
    return delta


def _update(
    node: str, generation: int, key: str, value: object, version: int, new_generation: bool
) -> Update:
    update: Update = _new(Update)
    _UP_NODE(update, node)
    _UP_GEN(update, generation)
    _UP_KEY(update, key)
    _UP_VALUE(update, value)
    _UP_VERSION(update, version)
    _UP_NEW(update, new_generation)
    return update
