"""Cluster membership as a pure view of scuttlebutt state.

Each node announces itself through reserved keys of its own scuttlebutt state:

============== ======================================= ===============================
key            value                                   meaning
============== ======================================= ===============================
``addr``       ``"host:port"``                         node-to-node (peer) address
``http``       ``"host:port"``                         HTTP address
``pb``         ``"host:port"`` or ``""``               Riak PB address (empty: none)
``location``   text                                    failure domain (host, rack, zone)
``data``       text                                    its data directory's incarnation id
``removed``    ``{node: [data, replaced_by|None]}``    nodes this one took out (below)
``status``     ``joining|valid|leaving|left``          lifecycle, see below
``weight``     float > 0                               token share multiplier
``load``       dict                                    free-form load figures
``props:<b>``  ``[timestamp, props dict or None]``     bucket props set on this node
============== ======================================= ===============================

A node that never comes back is taken out by an operator through any live member
(``dynamo remove``, Riak's ``cluster force-remove``): that member records it under
``removed``, with the incarnation of the node's data directory. A removed node leaves
the ring and stays out if it restarts on the same data (it finds itself removed and
stops); wiped, it is a new incarnation and may join again.
``dynamo replace OLD NEW`` records the same with ``NEW`` as its replacement: ``NEW``
then takes ``OLD``'s tokens, so exactly ``OLD``'s ranges move to it.

Status moves ``joining -> valid -> leaving -> left`` (a join may be abandoned:
``joining -> left``). A new generation (restart) may start in any status. Members
whose status is ``valid`` or ``leaving`` form the ring. Values written by peers are
not trusted: a missing or malformed status reads as ``joining`` (not in the ring), a
bad weight as 1.0, a malformed props entry is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from gossip.scuttlebutt import Scuttlebutt

__all__ = [
    "DEFAULT_WEIGHT",
    "JOINING",
    "KEY_ADDR",
    "KEY_DATA",
    "KEY_HTTP",
    "KEY_LOAD",
    "KEY_LOCATION",
    "KEY_PB",
    "KEY_REMOVED",
    "KEY_STATUS",
    "KEY_WEIGHT",
    "LEAVING",
    "LEFT",
    "PROPS_PREFIX",
    "RING_STATUSES",
    "STATUSES",
    "VALID",
    "Member",
    "PurgeLeft",
    "announce",
    "bucket_props",
    "is_valid_transition",
    "members",
    "props_key",
    "record_removal",
    "removals",
    "ring_locations",
    "ring_members",
    "sb_text",
    "set_bucket_props",
    "set_status",
    "token_names",
]

KEY_ADDR: Final = "addr"
KEY_HTTP: Final = "http"
KEY_PB: Final = "pb"
KEY_LOCATION: Final = "location"
KEY_REMOVED: Final = "removed"
KEY_DATA: Final = "data"
KEY_STATUS: Final = "status"
KEY_WEIGHT: Final = "weight"
KEY_LOAD: Final = "load"
PROPS_PREFIX: Final = "props:"

JOINING: Final = "joining"
VALID: Final = "valid"
LEAVING: Final = "leaving"
LEFT: Final = "left"
STATUSES: Final = (JOINING, VALID, LEAVING, LEFT)
#: Statuses whose members own tokens.
RING_STATUSES: Final = frozenset({VALID, LEAVING})
DEFAULT_WEIGHT: Final = 1.0

_TRANSITIONS: Final[Mapping[str | None, frozenset[str]]] = {
    None: frozenset(STATUSES),
    JOINING: frozenset({JOINING, VALID, LEFT}),
    VALID: frozenset({VALID, LEAVING}),
    LEAVING: frozenset({LEAVING, LEFT}),
    LEFT: frozenset({LEFT}),
}


def is_valid_transition(old: str | None, new: str) -> bool:
    """May a node in status ``old`` (None: not announced in this generation) move to
    ``new``? Staying put is allowed."""
    allowed = _TRANSITIONS.get(old)
    return allowed is not None and new in allowed


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    node: str
    peer_addr: str
    http_addr: str
    pb_addr: str
    location: str  # its failure domain; a node that announced none is its own
    status: str
    weight: float
    generation: int
    heartbeat: int


def _status(value: object) -> str:
    return value if isinstance(value, str) and value in _TRANSITIONS else JOINING


def _weight(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        weight = float(value)
        if math.isfinite(weight) and weight > 0.0:
            return weight
    return DEFAULT_WEIGHT


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def sb_text(sb: Scuttlebutt, node: str, key: str) -> str:
    """A text value a node announced (empty when absent or not text)."""
    return _text(sb.get(node, key))


def members(sb: Scuttlebutt) -> list[Member]:
    """Every node ``sb`` knows of (itself included), sorted by id."""
    out: list[Member] = []
    for node in sb.nodes():
        items = sb.items(node)
        heartbeat = sb.heartbeat(node)
        assert heartbeat is not None  # node comes from sb.nodes()
        out.append(
            Member(
                node=node,
                peer_addr=_text(items.get(KEY_ADDR)),
                http_addr=_text(items.get(KEY_HTTP)),
                pb_addr=_text(items.get(KEY_PB)),
                location=_text(items.get(KEY_LOCATION)) or node,
                status=_status(items.get(KEY_STATUS)),
                weight=_weight(items.get(KEY_WEIGHT)),
                generation=heartbeat.generation,
                heartbeat=heartbeat.version,
            )
        )
    return out


def removals(sb: Scuttlebutt) -> dict[str, tuple[str, str | None]]:
    """node -> (the data incarnation it was removed with, its replacement or None), from
    every member's ``removed`` record (malformed entries are ignored; of two records for
    one node, the one naming a replacement wins, then the larger)."""
    out: dict[str, tuple[str, str | None]] = {}
    for origin in sb.nodes():
        record = sb.get(origin, KEY_REMOVED)
        if not isinstance(record, dict):
            continue
        for node, entry in record.items():
            if not (isinstance(node, str) and isinstance(entry, list | tuple) and len(entry) == 2):
                continue
            data, by = entry
            if not isinstance(data, str) or (by is not None and not isinstance(by, str)):
                continue
            key = (by is not None, data, by or "")
            old = out.get(node)
            if old is None or key > (old[1] is not None, old[0], old[1] or ""):
                out[node] = (data, by)
    return out


def is_removed(sb: Scuttlebutt, node: str, removed: dict[str, tuple[str, str | None]]) -> bool:
    """Removed, and still on the data it was removed with (wiped, it is a new node)."""
    entry = removed.get(node)
    return entry is not None and _text(sb.get(node, KEY_DATA)) == entry[0]


def record_removal(sb: Scuttlebutt, node: str, data: str, by: str | None = None) -> None:
    """Take ``node`` (on its data incarnation ``data``) out of the ring, in our own
    state; ``by``: the node that takes its tokens over (``dynamo replace``)."""
    current = sb.get(sb.node_id, KEY_REMOVED)
    record = dict(current) if isinstance(current, dict) else {}
    record[node] = [data, by]
    sb.set_local(KEY_REMOVED, record)


def _in_ring(sb: Scuttlebutt, node: str, removed: dict[str, tuple[str, str | None]]) -> bool:
    return _status(sb.get(node, KEY_STATUS)) in RING_STATUSES and not is_removed(sb, node, removed)


def token_names(sb: Scuttlebutt) -> dict[str, str]:
    """member -> the node whose tokens it owns, for members that replaced one."""
    removed = removals(sb)
    return {
        by: node
        for node, (_, by) in removed.items()
        if by is not None and by != node and _in_ring(sb, by, removed)
    }


def ring_locations(sb: Scuttlebutt) -> dict[str, str]:
    """node -> location of the members that own tokens (their own id when they announce
    none: a node of an earlier release is its own failure domain)."""
    removed = removals(sb)
    return {
        node: _text(sb.get(node, KEY_LOCATION)) or node
        for node in sb.nodes()
        if _in_ring(sb, node, removed)
    }


def ring_members(sb: Scuttlebutt) -> dict[str, float]:
    """node -> weight of the members that own tokens (status valid or leaving, and not
    removed)."""
    removed = removals(sb)
    return {
        node: _weight(sb.get(node, KEY_WEIGHT))
        for node in sb.nodes()
        if _in_ring(sb, node, removed)
    }


@dataclass(slots=True)
class PurgeLeft:
    """Which members that left are due to be forgotten (``Scuttlebutt.purge``).

    A member is forgotten ``grace_s`` after this node first saw it ``left``: long
    enough for every peer to have heard it left, after which its state would only
    grow the gossip digest forever. A node that comes back does so with a newer
    generation, which ``purge`` lets in again. ``now`` is the caller's clock.
    """

    grace_s: float
    since: dict[str, float] = field(default_factory=dict)

    def due(self, sb: Scuttlebutt, now: float) -> list[str]:
        left = {m.node for m in members(sb) if m.status == LEFT and m.node != sb.node_id}
        for node in [n for n in self.since if n not in left]:
            del self.since[node]  # it came back, or it was purged
        for node in left:
            self.since.setdefault(node, now)
        return sorted(n for n in left if now - self.since[n] >= self.grace_s)


def props_key(bucket: str) -> str:
    """The scuttlebutt key under which a node publishes props it set for ``bucket``."""
    return PROPS_PREFIX + bucket


def bucket_props(sb: Scuttlebutt) -> dict[str, dict[str, object] | None]:
    """bucket -> props of the last writer by (timestamp, origin node id); None = reset
    to defaults. The dicts are copies."""
    best: dict[str, tuple[float, str, dict[str, object] | None]] = {}
    for node in sb.nodes():
        for key, value in sb.items(node).items():
            if not key.startswith(PROPS_PREFIX) or not isinstance(value, list | tuple):
                continue
            if len(value) != 2:
                continue
            stamp, props = value
            if (
                not isinstance(stamp, int | float)
                or isinstance(stamp, bool)
                or not math.isfinite(stamp)
            ):
                continue
            if props is not None and not (
                isinstance(props, dict) and all(isinstance(k, str) for k in props)
            ):
                continue
            bucket = key[len(PROPS_PREFIX) :]
            current = best.get(bucket)
            if current is None or (stamp, node) > (current[0], current[1]):
                best[bucket] = (float(stamp), node, props)
    return {
        bucket: None if props is None else dict(props) for bucket, (_, _, props) in best.items()
    }


def announce(
    sb: Scuttlebutt,
    *,
    peer_addr: str,
    http_addr: str,
    status: str,
    weight: float = DEFAULT_WEIGHT,
    pb_addr: str = "",
    location: str = "",
    data: str = "",
) -> None:
    """Publish our addresses, status and weight (at start, in this order)."""
    if status not in _TRANSITIONS:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    if not (math.isfinite(weight) and weight > 0.0):
        raise ValueError(f"weight must be a finite number > 0, got {weight!r}")
    sb.set_local(KEY_ADDR, peer_addr)
    sb.set_local(KEY_HTTP, http_addr)
    if pb_addr or sb.get(sb.node_id, KEY_PB) is not None:
        sb.set_local(KEY_PB, pb_addr)
    if location or sb.get(sb.node_id, KEY_LOCATION) is not None:
        sb.set_local(KEY_LOCATION, location)
    if data or sb.get(sb.node_id, KEY_DATA) is not None:
        sb.set_local(KEY_DATA, data)
    set_status(sb, status)
    sb.set_local(KEY_WEIGHT, float(weight))


def set_status(sb: Scuttlebutt, status: str) -> None:
    """Move our own status; raises ValueError for a transition the lifecycle forbids."""
    current = sb.get(sb.node_id, KEY_STATUS)
    old = current if isinstance(current, str) else None
    if not is_valid_transition(old, status):
        raise ValueError(f"status cannot move from {old!r} to {status!r}")
    if old != status:
        sb.set_local(KEY_STATUS, status)


def set_bucket_props(
    sb: Scuttlebutt, bucket: str, props: Mapping[str, object] | None, timestamp: float
) -> None:
    """Publish props set on this node for ``bucket`` (None: reset to defaults)."""
    if not math.isfinite(timestamp):
        raise ValueError(f"timestamp must be finite, got {timestamp!r}")
    sb.set_local(props_key(bucket), [float(timestamp), None if props is None else dict(props)])
