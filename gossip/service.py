"""The asyncio shell around the scuttlebutt core and the phi-accrual detector.

Once per interval: bump our heartbeat, pick a peer (``gossip.peers.choose_peer``:
mostly a random live peer, sometimes a seed, sometimes one we think down), and
run SYN -> ACK -> ACK2 with it through the transport. Heartbeat updates feed
the failure detector; every applied update is passed to ``on_updates``.
Peers are dialled by address (seeds are only addresses until we learn ids).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any, Protocol

from gossip.membership import KEY_ADDR, KEY_STATUS, LEFT
from gossip.peers import choose_peer
from gossip.phi import PhiAccrualDetector
from gossip.scuttlebutt import (
    KEY_HEARTBEAT,
    KIND_ACK,
    KIND_ACK2,
    KIND_SYN,
    GossipAck,
    GossipAck2,
    GossipSyn,
    ProtocolError,
    Scuttlebutt,
    Update,
    from_wire,
    to_wire,
)
from gossip.wire import METHOD_ACK2, METHOD_SYN

log = logging.getLogger(__name__)

MAX_ROUNDS_IN_FLIGHT = 3  # rounds waiting on slow peers; beyond it, skip a round


class GossipTransport(Protocol):
    """Carries one gossip message to the node at an address and returns its answer.

    ``call(addr, method, body)`` raises any ``Exception`` when the peer cannot be
    reached or times out; the service counts it as a failed round.
    """

    async def __call__(self, addr: str, method: str, body: Any) -> Any: ...


class GossipService:
    """Runs gossip rounds and serves the peer side of them."""

    def __init__(
        self,
        sb: Scuttlebutt,
        detector: PhiAccrualDetector,
        transport: GossipTransport,
        *,
        self_addr: str,
        seeds: list[str],
        clock: Callable[[], float],
        rng: random.Random,
        interval_s: float = 1.0,
        on_updates: Callable[[list[Update]], None] | None = None,
    ) -> None:
        self.sb = sb
        self.detector = detector
        self.transport = transport
        self.self_addr = self_addr
        self.seeds = [s for s in seeds if s != self_addr]
        self.clock = clock
        self.rng = rng
        self.interval_s = interval_s
        self.on_updates = on_updates
        self.rounds = 0
        self.failed_rounds = 0
        self.bad_messages = 0
        self.last_success: float | None = None
        self.succeeded = asyncio.Event()

    # --- Views --------------------------------------------------------------------------------

    def peers(self) -> list[str]:
        """Known peers that have not left."""
        me = self.sb.node_id
        return [n for n in self.sb.nodes() if n != me and self.sb.get(n, KEY_STATUS) != LEFT]

    def is_up(self, node: str) -> bool:
        return node == self.sb.node_id or self.detector.is_up(node, self.clock())

    def addr(self, node: str) -> str | None:
        a = self.sb.get(node, KEY_ADDR)
        return a if isinstance(a, str) else None

    # --- Rounds -------------------------------------------------------------------------------

    def choose(self) -> str | None:
        now = self.clock()
        live: list[str] = []
        down: list[str] = []
        for node in self.peers():
            a = self.addr(node)
            if a is None:
                continue
            (live if self.detector.is_up(node, now) else down).append(a)
        return choose_peer(self.rng, live, down, self.seeds, self.self_addr)

    async def run(self) -> None:
        """Gossip forever (cancel to stop).

        The heartbeat and the next round never wait for a slow peer: each round
        runs on its own, a few at most at once, so one stopped node cannot make
        the others look silent to each other.
        """
        rounds: set[asyncio.Task[bool]] = set()
        try:
            while True:
                self.sb.beat()
                addr = self.choose()
                if addr is not None and len(rounds) < MAX_ROUNDS_IN_FLIGHT:
                    task = asyncio.ensure_future(self.round(addr))
                    rounds.add(task)
                    task.add_done_callback(rounds.discard)
                await asyncio.sleep(self.interval_s * (0.9 + 0.2 * self.rng.random()))
        finally:
            for t in rounds:
                t.cancel()

    async def round(self, addr: str) -> bool:
        """One push/pull exchange with the node at ``addr``."""
        self.rounds += 1
        syn = self.sb.make_syn()
        try:
            reply = await self.transport(addr, METHOD_SYN, to_wire(syn))
            ack = from_wire(KIND_ACK, reply)
            if not isinstance(ack, GossipAck):
                raise ProtocolError("expected an ACK")
        except ProtocolError as e:
            self.bad_messages += 1
            self.failed_rounds += 1
            log.warning("gossip with %s: bad answer (%s)", addr, e)
            return False
        except Exception as e:
            self.failed_rounds += 1
            log.debug("gossip with %s failed: %s", addr, e)
            return False
        ack2, updates = self.sb.on_ack(ack)
        self._applied(updates)
        if ack2.deltas:
            try:
                await self.transport(addr, METHOD_ACK2, to_wire(ack2))
            except Exception as e:
                log.debug("gossip ack2 to %s failed: %s", addr, e)
        self.last_success = self.clock()
        self.succeeded.set()
        return True

    # --- Peer side ----------------------------------------------------------------------------

    def handle_syn(self, body: Any, peer: str = "") -> Any:
        try:
            syn = from_wire(KIND_SYN, body)
        except ProtocolError:
            self.bad_messages += 1
            raise
        assert isinstance(syn, GossipSyn)
        return to_wire(self.sb.on_syn(syn))

    def handle_ack2(self, body: Any, peer: str = "") -> None:
        try:
            ack2 = from_wire(KIND_ACK2, body)
        except ProtocolError:
            self.bad_messages += 1
            raise
        assert isinstance(ack2, GossipAck2)
        self._applied(self.sb.on_ack2(ack2))

    def _applied(self, updates: list[Update]) -> None:
        if not updates:
            return
        observe(self.detector, updates, self.clock())
        if self.on_updates is not None:
            self.on_updates(updates)


def observe(detector: PhiAccrualDetector, updates: list[Update], now: float) -> None:
    """Feed applied updates to the failure detector: a new generation (a restart) starts
    its history afresh and counts as heard from; a heartbeat is an arrival. The one
    apply path, shared by the service and the simulator (``gossip.sim``)."""
    for u in updates:
        if u.new_generation:
            detector.reset(u.node)
            detector.heartbeat(u.node, now)
        elif u.key == KEY_HEARTBEAT:
            detector.heartbeat(u.node, now)
