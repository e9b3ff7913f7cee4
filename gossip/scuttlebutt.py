"""Scuttlebutt reconciliation (van Renesse et al., 2008) for one node: a pure state machine.

Every node owns a map of versioned keys. Versions come from one counter per
(node, generation) that grows with every local change, so a node's whole state is
summarised by ``(generation, max_version)``. A gossip round is push/pull::

    A: make_syn()  --GossipSyn(digest)-->                 B: on_syn(syn)
    A: on_ack(ack) <--GossipAck(deltas A lacks, request)-- B
    A              --GossipAck2(deltas B asked for)-->    B: on_ack2(ack2)

Deltas for one node are sent in version order and cut off as a prefix when the byte
budget runs out, so the receiver's ``max_version`` stays a valid watermark: a
receiver at watermark ``w`` that applies every entry of the sender in ``(w, v]``
holds, for every key whose latest version is ``<= v``, exactly that version. A
receiver therefore applies a same-generation entry only if its version is above the
watermark; anything at or below it is already covered (or superseded by a version it
will receive later). A newer generation replaces the node's whole state.

Nothing here does I/O, reads a clock or draws random numbers. The messages live in
:mod:`gossip.messages` and their wire codec in :mod:`gossip.wire`; both are
re-exported here.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable
from typing import Final

import msgpack

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
    HeartbeatState,
    NodeDelta,
    Update,
)
from gossip.messages import _node_delta as _node_delta
from gossip.messages import _update as _update
from gossip.wire import ProtocolError, _is_int_in, from_wire, to_wire, wire_kind

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
    "ProtocolError",
    "Scuttlebutt",
    "Update",
    "from_wire",
    "to_wire",
    "wire_kind",
]

MIN_DELTA_BYTES: Final = 512
DEFAULT_MAX_DELTA_BYTES: Final = 64_000


class _NodeState:
    """One node's versioned keys. Dict order is version order (a changed key is moved
    to the end), so the entries above a version are a suffix of the dict."""

    __slots__ = ("entries", "generation", "header_bytes", "max_version", "tiebreak")

    def __init__(self, node: str, generation: int) -> None:
        self.generation = generation
        self.max_version = 0
        # key -> ((key, value, version), encoded bytes of that entry)
        self.entries: dict[str, tuple[Entry, int]] = {}
        self.header_bytes, self.tiebreak = _node_constants(node)


@functools.lru_cache(maxsize=65_536)
def _node_constants(node: str) -> tuple[int, int]:
    """(bytes a node delta costs besides its entries, a fixed hash for tie-breaks)."""
    encoded = node.encode()
    return len(encoded) + 16, zlib.crc32(encoded)


class Scuttlebutt:
    """Scuttlebutt state of one node: its own keys and what it knows of every other node.

    ``max_delta_bytes`` bounds the deltas of one ACK or ACK2 (estimated from the msgpack
    size of each entry); smaller messages mean more rounds to ship a large change.
    Counters: ``stale_deltas`` (deltas of an older generation, ignored),
    ``own_generation_bumps`` (a peer knew a newer state of our own id, so we moved to a
    higher generation; the shell should persist ``generation(node_id)``).
    """

    def __init__(
        self, node_id: str, generation: int, *, max_delta_bytes: int = DEFAULT_MAX_DELTA_BYTES
    ) -> None:
        if not isinstance(node_id, str) or not 0 < len(node_id) <= MAX_NODE_ID_CHARS:
            raise ValueError(f"node_id must be a str of 1..{MAX_NODE_ID_CHARS} chars")
        if not _is_int_in(generation, 0, MAX_GENERATION):
            raise ValueError(f"generation must be an int in 0..2**63-1, got {generation!r}")
        if not _is_int_in(max_delta_bytes, MIN_DELTA_BYTES, 2**31):
            raise ValueError(f"max_delta_bytes must be an int >= {MIN_DELTA_BYTES}")
        self._node_id = node_id
        self._max_delta_bytes = max_delta_bytes
        self._packer = msgpack.Packer()
        self._states: dict[str, _NodeState] = {node_id: _NodeState(node_id, generation)}
        self._digest: dict[str, tuple[int, int]] = {node_id: (generation, 0)}  # kept in step
        self._purged: dict[str, int] = {}
        self._heartbeat = 0
        self._salt = zlib.crc32(node_id.encode())
        self.stale_deltas = 0
        self.own_generation_bumps = 0

    @property
    def node_id(self) -> str:
        return self._node_id

    # -- local changes -------------------------------------------------------------

    def set_local(self, key: str, value: object) -> None:
        """Set one of our own keys (bumps our version). ``None`` stands for deleted.

        Raises ValueError for a reserved, empty or oversized key or value, TypeError for
        a value msgpack cannot encode.
        """
        if key == KEY_HEARTBEAT:
            raise ValueError(f"{KEY_HEARTBEAT!r} is reserved: call beat()")
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS:
            raise ValueError(f"key must be a str of 1..{MAX_KEY_CHARS} chars")
        self._set_own(key, value)

    def beat(self) -> None:
        """Bump our heartbeat counter (once a second)."""
        self._heartbeat += 1
        self._set_own(KEY_HEARTBEAT, self._heartbeat)

    def purge(self, node: str) -> None:
        """Forget ``node`` (it left long ago). Its current and older generations are
        ignored from now on; a newer generation (it came back) is accepted."""
        if node == self._node_id:
            raise ValueError("cannot purge our own node")
        state = self._states.pop(node, None)
        if state is not None:
            del self._digest[node]
            self._purged[node] = max(state.generation, self._purged.get(node, 0))

    # -- queries -------------------------------------------------------------------

    def nodes(self) -> list[str]:
        """Every node known, ourselves included, sorted."""
        return sorted(self._states)

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, node: object) -> bool:
        return node in self._states

    def generation(self, node: str) -> int | None:
        state = self._states.get(node)
        return None if state is None else state.generation

    def max_version(self, node: str) -> int | None:
        state = self._states.get(node)
        return None if state is None else state.max_version

    def heartbeat(self, node: str) -> HeartbeatState | None:
        state = self._states.get(node)
        if state is None:
            return None
        item = state.entries.get(KEY_HEARTBEAT)
        beat = item[0][1] if item is not None else 0
        return HeartbeatState(generation=state.generation, version=beat if type(beat) is int else 0)

    def get(self, node: str, key: str) -> object | None:
        state = self._states.get(node)
        item = None if state is None else state.entries.get(key)
        return None if item is None else item[0][1]

    def items(self, node: str) -> dict[str, object]:
        state = self._states.get(node)
        if state is None:
            return {}
        return {key: item[0][1] for key, item in state.entries.items()}

    def versions(self, node: str) -> dict[str, int]:
        """key -> version of each key of ``node``, in version order."""
        state = self._states.get(node)
        if state is None:
            return {}
        return {key: item[0][2] for key, item in state.entries.items()}

    # -- protocol ------------------------------------------------------------------

    def make_syn(self) -> GossipSyn:
        """Start a round: our digest of every node we know."""
        return GossipSyn(digest=dict(self._digest))

    def on_syn(self, syn: GossipSyn) -> GossipAck:
        """Answer a SYN: the deltas its sender lacks, and a request for what it has newer."""
        digest = syn.digest
        own = digest.get(self._node_id)
        if own is not None:
            self._check_own(own[0], own[1])
        states = self._states
        wanted: list[tuple[_NodeState, str, int]] = []
        request: dict[str, tuple[int, int]] = {}
        matched = 0
        for node, (generation, version) in digest.items():
            state = states.get(node)
            if state is None:
                if version and node != self._node_id and generation > self._purged.get(node, -1):
                    request[node] = (0, 0)
                continue
            matched += 1
            if generation == state.generation:
                if state.max_version > version:
                    wanted.append((state, node, version))
                elif version > state.max_version and node != self._node_id:
                    request[node] = (state.generation, state.max_version)
            elif generation < state.generation:
                wanted.append((state, node, 0))
            elif node != self._node_id:
                request[node] = (state.generation, state.max_version)
        if matched < len(states):
            for node, state in states.items():
                if node not in digest:
                    wanted.append((state, node, 0))
        return GossipAck(deltas=self._deltas(wanted), request=request)

    def on_ack(self, ack: GossipAck) -> tuple[GossipAck2, list[Update]]:
        """Apply the ACK's deltas, then answer its request."""
        updates = self._apply(ack.deltas)
        own = ack.request.get(self._node_id)
        if own is not None:
            self._check_own(own[0], own[1])
        states = self._states
        wanted: list[tuple[_NodeState, str, int]] = []
        for node, (generation, version) in ack.request.items():
            state = states.get(node)
            if state is None:
                continue
            if generation < state.generation:
                wanted.append((state, node, 0))
            elif generation == state.generation and state.max_version > version:
                wanted.append((state, node, version))
        return GossipAck2(deltas=self._deltas(wanted)), updates

    def on_ack2(self, ack2: GossipAck2) -> list[Update]:
        """Apply the ACK2's deltas."""
        return self._apply(ack2.deltas)

    # -- persistence ---------------------------------------------------------------

    def snapshot(self) -> GossipAck2:
        """Everything we know of the other nodes, as one message.

        Persist it and ``restore`` it after a restart: the node then knows its cluster
        (members, addresses, weights) before its first round, instead of starting as a
        cluster of one. Each node's entries are a consistent prefix of its history, so
        later rounds only add what changed since.
        """
        me = self._node_id
        return GossipAck2(
            deltas=tuple(
                _node_delta(
                    node, state.generation, tuple(item[0] for item in state.entries.values())
                )
                for node, state in sorted(self._states.items())
                if node != me and state.entries
            )
        )

    def restore(self, snapshot: GossipAck2) -> list[Update]:
        """Apply a ``snapshot`` taken before a restart. What it says of our own node is
        ignored (our own state starts afresh). Returns the updates, like a round."""
        me = self._node_id
        return self._apply(d for d in snapshot.deltas if d.node != me)

    # -- internals -----------------------------------------------------------------

    def _set_own(self, key: str, value: object) -> None:
        state = self._states[self._node_id]
        version = state.max_version + 1
        entry = (key, value, version)
        size = len(self._packer.pack(entry))
        if size + state.header_bytes > self._max_delta_bytes:
            raise ValueError(
                f"key {key!r}: encoded size {size} exceeds max_delta_bytes {self._max_delta_bytes}"
            )
        state.entries.pop(key, None)
        state.entries[key] = (entry, size)
        state.max_version = version
        self._digest[self._node_id] = (state.generation, version)

    def _check_own(self, generation: int, version: int) -> None:
        """A peer knows a newer state of our own id than ours (we restarted with a stale
        generation, or a duplicate ran): move above it so our state wins again."""
        state = self._states[self._node_id]
        if generation < state.generation or (
            generation == state.generation and version <= state.max_version
        ):
            return
        fresh = _NodeState(self._node_id, min(MAX_GENERATION, generation + 1))
        for key, ((_, value, _), _) in state.entries.items():
            fresh.max_version += 1
            entry = (key, value, fresh.max_version)
            fresh.entries[key] = (entry, len(self._packer.pack(entry)))
        self._states[self._node_id] = fresh
        self._digest[self._node_id] = (fresh.generation, fresh.max_version)
        self.own_generation_bumps += 1

    def _deltas(self, wanted: list[tuple[_NodeState, str, int]]) -> tuple[NodeDelta, ...]:
        """Deltas for (state, node, from_version) requests within the byte budget.

        When everything fits, everything goes. Otherwise the most out-of-date nodes go
        first (largest version lag; ties in an order that changes from message to
        message, so no node starves), each as a version-ordered prefix, and we stop at
        the first entry that does not fit. One entry is always sent even if it alone is
        over budget, so nothing can wedge.
        """
        budget = self._max_delta_bytes
        total = 0
        out: list[NodeDelta] = []
        for state, node, since in wanted:
            entries: list[Entry] = []  # newest first; inlined _newer(), the hot path
            for item in reversed(state.entries.values()):
                if item[0][2] <= since:
                    break
                entries.append(item[0])
                total += item[1]
            if entries:
                total += state.header_bytes
                if total > budget:
                    break
                entries.reverse()
                out.append(_node_delta(node, state.generation, tuple(entries)))
        else:
            return tuple(out)
        # Over budget: start again, most out-of-date first.
        self._salt = (self._salt * 1_103_515_245 + 12_345) & 0xFFFFFFFF
        salt = self._salt
        wanted.sort(key=lambda w: (w[2] - w[0].max_version, w[0].tiebreak ^ salt))
        out = []
        for state, node, since in wanted:
            items = _newer(state, since)
            if not items:
                continue
            budget -= state.header_bytes
            entries = []
            for entry, size in reversed(items):
                if size > budget and (out or entries):
                    break
                budget -= size
                entries.append(entry)
            if entries:
                out.append(_node_delta(node, state.generation, tuple(entries)))
            if len(entries) < len(items):
                break
        return tuple(out)

    def _apply(self, deltas: Iterable[NodeDelta]) -> list[Update]:
        updates: list[Update] = []
        states = self._states
        pack = self._packer.pack
        for delta in deltas:
            node = delta.node
            if not delta.entries:
                continue
            if node == self._node_id:
                self._check_own(delta.generation, delta.entries[-1][2])
                continue
            generation = delta.generation
            state = states.get(node)
            new_generation = False
            if state is None or generation > state.generation:
                if generation <= self._purged.get(node, -1):
                    self.stale_deltas += 1
                    continue
                self._purged.pop(node, None)
                state = states[node] = _NodeState(node, generation)
                self._digest[node] = (generation, 0)
                new_generation = True
            elif generation < state.generation:
                self.stale_deltas += 1
                continue
            entries = state.entries
            watermark = state.max_version
            for entry in delta.entries:
                key, value, version = entry
                if version <= watermark:
                    continue
                entries.pop(key, None)
                entries[key] = (entry, len(pack(entry)))
                watermark = version
                updates.append(_update(node, generation, key, value, version, new_generation))
                new_generation = False
            if watermark != state.max_version:
                state.max_version = watermark
                self._digest[node] = (generation, watermark)
        return updates


def _newer(state: _NodeState, since: int) -> list[tuple[Entry, int]]:
    """(entry, bytes) of ``state`` above version ``since``, newest first."""
    out: list[tuple[Entry, int]] = []
    for item in reversed(state.entries.values()):
        if item[0][2] <= since:
            break
        out.append(item)
    return out
