"""Deterministic whole-cluster gossip simulation (for tests and the benchmark).

N nodes, each a :class:`~gossip.scuttlebutt.Scuttlebutt` plus a
:class:`~gossip.phi.PhiAccrualDetector`, talk through a :class:`FakeNetwork` under a
:class:`ManualClock`. One round lasts ``round_s``: the live nodes take turns in a
random order, spread evenly over the round; at its turn a node beats its heartbeat,
picks a peer with :func:`~gossip.peers.choose_peer` and runs SYN -> ACK -> ACK2 with
it, every message crossing the wire format. Each node starts knowing only itself and
the seed ids. Everything is drawn from one ``random.Random(seed)``: the same config
gives the same run.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from gossip.membership import VALID, announce
from gossip.peers import choose_peer
from gossip.phi import PhiAccrualDetector
from gossip.scuttlebutt import (
    DEFAULT_MAX_DELTA_BYTES,
    GossipMessage,
    Scuttlebutt,
    Update,
    from_wire,
    to_wire,
    wire_kind,
)
from gossip.service import observe
from gossip.testing import FakeNetwork, ManualClock

__all__ = ["SimConfig", "SimNode", "Simulation", "node_name"]

_M = TypeVar("_M", bound=GossipMessage)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    """``nodes``: cluster size; ``seed``: the one source of randomness; ``loss``:
    message loss probability; ``seeds``: how many of the first nodes are seeds;
    ``round_s``: gossip interval; the rest configure each node's gossip and detector."""

    nodes: int
    seed: int
    loss: float = 0.0
    seeds: int = 1
    round_s: float = 1.0
    max_delta_bytes: int = DEFAULT_MAX_DELTA_BYTES
    phi_threshold: float = 8.0
    #: Decode every message into the receiver's own copy, through the validating
    #: ``from_wire``. False still encodes each message (bytes are counted the same) but
    #: hands over the sender's immutable message object: the same run, about a third
    #: faster; for the benchmark.
    decode: bool = True

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError(f"nodes must be >= 1, got {self.nodes}")
        if not 1 <= self.seeds <= self.nodes:
            raise ValueError(f"seeds must be in 1..nodes, got {self.seeds}")
        if not self.round_s > 0.0:
            raise ValueError(f"round_s must be > 0, got {self.round_s}")


def node_name(index: int) -> str:
    return f"n{index:04d}"


class SimNode:
    """One simulated node: its gossip state, its failure detector, its view of peers."""

    __slots__ = ("_known_set", "alive", "detector", "known", "node_id", "sb")

    def __init__(self, node_id: str, generation: int, config: SimConfig, addr: str) -> None:
        self.node_id = node_id
        self.alive = True
        self.sb = Scuttlebutt(node_id, generation, max_delta_bytes=config.max_delta_bytes)
        self.detector = PhiAccrualDetector(threshold=config.phi_threshold)
        self.known: list[str] = []  # other nodes, in order of discovery
        self._known_set: set[str] = set()
        announce(self.sb, peer_addr=addr, http_addr=addr.replace(":7000", ":8098"), status=VALID)
        self.sb.set_local("load", {"keys": 0, "bytes": 0})

    def observe(self, updates: list[Update], now: float) -> None:
        """What the service does with applied updates (``gossip.service.observe``), and
        the order in which this node came to know its peers."""
        for update in updates:
            if update.new_generation and update.node not in self._known_set:
                self._known_set.add(update.node)
                self.known.append(update.node)
        observe(self.detector, updates, now)

    def choose(self, rng: random.Random, seeds: list[str], now: float) -> str | None:
        live, down = self.detector.split(self.known, now)
        return choose_peer(rng, live, down, seeds, self.node_id)


class Simulation:
    """The cluster: ``nodes`` by id, one ``rng``, a ``clock``, a ``network``; faults
    (``kill``, ``restart``, ``partition``, ``heal``) and observations between rounds."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.clock = ManualClock()
        self.network = FakeNetwork(self.rng, loss=config.loss)
        self.ids = [node_name(i) for i in range(config.nodes)]
        self.seeds = self.ids[: config.seeds]
        self.nodes = {
            node_id: SimNode(node_id, 1, config, _addr(i)) for i, node_id in enumerate(self.ids)
        }
        self.rounds = 0

    # -- faults --------------------------------------------------------------------

    def kill(self, node_id: str) -> None:
        self.nodes[node_id].alive = False
        self.network.kill(node_id)

    def restart(self, node_id: str, generation: int, *, addr: str | None = None) -> SimNode:
        """Replace ``node_id`` by a fresh process (empty state but itself) at ``generation``."""
        index = self.ids.index(node_id)
        node = SimNode(node_id, generation, self.config, addr or _addr(index))
        self.nodes[node_id] = node
        self.network.revive(node_id)
        return node

    def partition(self, *groups: list[str]) -> None:
        self.network.partition(*groups)

    def heal(self) -> None:
        self.network.heal()

    # -- running -------------------------------------------------------------------

    def run_round(self) -> None:
        start = self.clock.now()
        order = [node_id for node_id in self.ids if self.nodes[node_id].alive]
        self.rng.shuffle(order)
        step = self.config.round_s / max(1, len(order))
        for turn, node_id in enumerate(order):
            now = start + turn * step
            node = self.nodes[node_id]
            node.sb.beat()
            peer = node.choose(self.rng, self.seeds, now)
            if peer is not None:
                self._exchange(node, peer, now)
        self.clock.advance(self.config.round_s)
        self.rounds += 1

    def run_until(self, done: Callable[[Simulation], bool], max_rounds: int) -> int | None:
        """Run rounds until ``done(self)``; the rounds it took, or None if it never held."""
        for taken in range(max_rounds + 1):
            if done(self):
                return taken
            if taken < max_rounds:
                self.run_round()
        return None

    # -- observations --------------------------------------------------------------

    def live_nodes(self) -> list[SimNode]:
        return [self.nodes[node_id] for node_id in self.ids if self.nodes[node_id].alive]

    def all_know_all(self) -> bool:
        """Every live node knows every node of the cluster."""
        return all(len(node.sb) == len(self.ids) for node in self.live_nodes())

    def suspected_everywhere(self, target: str) -> bool:
        """Every other live node's phi for ``target`` is at or above the threshold."""
        now = self.clock.now()
        threshold = self.config.phi_threshold
        return all(
            node.detector.phi(target, now) >= threshold
            for node in self.live_nodes()
            if node.node_id != target
        )

    def false_suspicions(self) -> list[tuple[str, str]]:
        """(observer, live node) pairs where a known live node is believed down."""
        now = self.clock.now()
        return [
            (node.node_id, other)
            for node in self.live_nodes()
            for other in node.known
            if self.nodes[other].alive and not node.detector.is_up(other, now)
        ]

    # -- internals -----------------------------------------------------------------

    def _exchange(self, a: SimNode, peer: str, now: float) -> None:
        b = self.nodes.get(peer)
        if b is None:
            return
        syn = self._send(a.node_id, peer, a.sb.make_syn())
        if syn is None:
            return
        ack = self._send(peer, a.node_id, b.sb.on_syn(syn))
        if ack is None:
            return
        ack2, updates = a.sb.on_ack(ack)
        a.observe(updates, now)
        got = self._send(a.node_id, peer, ack2)
        if got is not None:
            b.observe(b.sb.on_ack2(got), now)

    def _send(self, src: str, dst: str, msg: _M) -> _M | None:
        decode = self.config.decode
        data = self.network.transmit(src, dst, [wire_kind(msg), to_wire(msg)], decode=decode)
        if data is None:
            return None
        if not decode:
            return msg
        assert isinstance(data, list)
        out = from_wire(data[0], data[1])
        assert isinstance(out, type(msg))
        return out


def _addr(index: int) -> str:
    return f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}:7000"
