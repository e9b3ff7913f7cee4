"""This node's view of the cluster: gossip state, failure detector, ring, bucket props.

The ring is a pure function of the members gossip reports (status ``valid`` or
``leaving``, with their weights); it is rebuilt when that set changes. ``down``
is this node's own opinion (phi above the threshold) and only steers
preference lists. Bucket props are last-writer-wins across the nodes that set
them, persisted here so they survive a restart of every node.

What gossip said of the other nodes is persisted too, whenever members, their
addresses or props change, and restored at start: a restarted node knows its
ring from the first request (its peers count as down until they are heard
from), instead of serving as a cluster of one until its first round and
acknowledging writes it holds alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import msgpack

from dynamo.net import methods
from dynamo.net.rpc import RpcAPI
from dynamo.node import removal
from dynamo.node.bucket_types import TYPE_ONLY_PROPS, BucketTypes
from dynamo.node.config import NodeConfig
from dynamo.node.env import REAL, Env
from dynamo.storage.contract import StorageError, StoreAPI
from gossip import bucket_types, membership
from gossip.membership import JOINING, LEAVING, LEFT, VALID
from gossip.phi import PhiAccrualDetector
from gossip.scuttlebutt import KEY_HEARTBEAT, KIND_ACK2, GossipAck2, Scuttlebutt, Update
from gossip.service import GossipService
from gossip.wire import from_wire, to_wire
from http_api.types import DEFAULT_TYPE, BucketProps, props_from_overrides, split_bucket
from ring.position import key_position
from ring.ring import Ring

log = logging.getLogger(__name__)

META_GENERATION = b"generation"
META_STATUS = b"status"
META_PROPS = b"bucket_props"
META_PEERS = b"gossip_peers"
DOWN_CACHE_S = 0.1


class LeftCluster(Exception):
    """This node left the cluster; it does not come back by itself."""


class Cluster:
    """Membership, liveness, ring and bucket props, as this node sees them."""

    def __init__(self, config: NodeConfig, store: StoreAPI, rpc: RpcAPI, env: Env = REAL) -> None:
        self.config = config
        self.env = env
        self.node_id = config.node_id
        self.store = store
        self.rpc = rpc
        last = store.get_meta(META_GENERATION)
        generation = max(int(last) + 1 if last else 1, int(env.wallclock()))
        store.put_meta(META_GENERATION, str(generation).encode(), sync=True)
        self.generation = generation
        self.sb = Scuttlebutt(self.node_id, generation)
        self.detector = PhiAccrualDetector(threshold=config.phi_threshold)
        self.gossip = GossipService(
            self.sb,
            self.detector,
            self._transport,
            self_addr=config.peer_addr,
            seeds=list(config.seeds),
            clock=env.monotonic,
            rng=env.rng,
            interval_s=config.gossip_interval_s,
            on_updates=self._on_updates,
        )
        stored = (store.get_meta(META_STATUS) or b"").decode()
        if stored == LEFT and not config.rejoin:
            raise LeftCluster(
                f"node {self.node_id} left the cluster: to join again, start it with"
                " --set rejoin=true, or wipe its data directory"
            )
        if stored in (VALID, LEAVING):
            status = stored
        elif config.seeds or not config.new_cluster:
            status = JOINING
            if not config.seeds:
                log.warning(
                    "node %s has no seeds and no cluster in its data directory: it waits to"
                    " be contacted by a cluster (or POST /admin/join). To found a new cluster"
                    " instead, start it with --new-cluster",
                    self.node_id,
                )
        else:
            status = VALID  # a new cluster, founded here
        membership.announce(
            self.sb,
            peer_addr=config.peer_addr,
            http_addr=config.http_addr,
            pb_addr=config.pb_addr,
            location=config.effective_location,
            data=store.incarnation,
            status=status,
            weight=config.weight,
        )
        self._persist_status(status)
        self._restore_peers()
        self._default_props = BucketProps(n_val=config.n_val)
        self._overrides: dict[str, tuple[float, dict[str, Any] | None]] = self._load_props()
        for bucket, (stamp, props) in self._overrides.items():
            membership.set_bucket_props(self.sb, bucket, props, stamp)
        self._props_cache: dict[bytes, BucketProps] = {}
        self.types = BucketTypes(self)
        self._ring = self._new_ring()
        self._down: frozenset[str] = frozenset()
        self._down_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._left = membership.PurgeLeft(config.left_purge_s)
        self.on_ring_change: list[Callable[[Ring, Ring], None]] = []
        self.on_removed: Callable[[str], None] | None = None  # an operator took us out

    # --- Gossip plumbing ----------------------------------------------------------------------

    async def _transport(self, addr: str, method: str, body: Any) -> Any:
        # A gossip exchange that takes longer than a few rounds is not worth waiting for.
        timeout_s = min(self.config.rpc_timeout_ms / 1000, 3 * self.config.gossip_interval_s)
        return await self.rpc.call(addr, methods.METHODS[method], body, timeout_s)

    def register(self) -> None:
        self.rpc.register(methods.GOSSIP_SYN, self.gossip.handle_syn)
        self.rpc.register(methods.GOSSIP_ACK2, self.gossip.handle_ack2)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gossip")

    async def _run(self) -> None:
        runner = asyncio.create_task(self.gossip.run())
        purger = asyncio.create_task(self._purge_left())
        try:
            if self.status == JOINING:
                await self.gossip.succeeded.wait()
                self.set_status(VALID)
                log.info("joined the cluster through gossip: %d members", len(self._ring))
                # Tell the peers now: until they hear it, we are not in their rings.
                await self.spread()
            await runner
        finally:
            runner.cancel()
            purger.cancel()

    async def _purge_left(self) -> None:
        """Forget members that left, ``left_purge_s`` after we saw them leave."""
        while True:
            await asyncio.sleep(max(self.config.gossip_interval_s, 1.0))
            due = self._left.due(self.sb, self.env.monotonic())
            for node in due:
                self.sb.purge(node)
                self.detector.forget(node)
                log.info("forgot %s: it left the cluster %.0fs ago", node, self._left.grace_s)
            if due:
                self._save_peers()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def _on_updates(self, updates: list[Update]) -> None:
        ring_changed = props_changed = addr_changed = types_changed = False
        for u in updates:
            if u.key == KEY_HEARTBEAT and not u.new_generation:
                continue
            if u.new_generation or u.key in (
                membership.KEY_STATUS,
                membership.KEY_WEIGHT,
                membership.KEY_LOCATION,
                membership.KEY_REMOVED,
            ):
                ring_changed = True
            if u.key.startswith(membership.PROPS_PREFIX):
                props_changed = True
            if u.key.startswith(bucket_types.TYPE_PREFIX) or u.key == bucket_types.KEY_HELD:
                types_changed = True
            if u.key in (membership.KEY_ADDR, membership.KEY_HTTP):
                addr_changed = True
            if u.key == membership.KEY_ADDR and isinstance(u.value, str):
                self.rpc.reset_backoff(u.value)
            if u.new_generation and u.node != self.node_id:
                addr = self.peer_addr(u.node)
                if addr:
                    self.rpc.reset_backoff(addr)
        if ring_changed:
            self._rebuild_ring()
            self._check_removed()
        if props_changed:
            self._merge_props()
        if types_changed and self.types.refresh():
            self._props_cache.clear()
            props_changed = True
        if ring_changed or props_changed or addr_changed:
            self._save_peers()
        self._down_at = 0.0

    def _save_peers(self) -> None:
        try:
            # Synced: membership changes are rare, and a power loss must not take the ring.
            self.store.put_meta(META_PEERS, msgpack.packb(to_wire(self.sb.snapshot())), sync=True)
        except StorageError as e:  # closing: the next start restores the last one saved
            log.debug("could not save the gossip state: %s", e)

    def _restore_peers(self) -> None:
        raw = self.store.get_meta(META_PEERS)
        if raw is None:
            return
        try:
            snapshot = from_wire(KIND_ACK2, msgpack.unpackb(raw))
        except Exception as e:  # a damaged copy only costs the head start
            log.warning("ignoring the saved gossip state (%s): waiting for the first round", e)
            return
        assert isinstance(snapshot, GossipAck2)
        self.sb.restore(snapshot)
        log.info("restored the last known state of %d peers", len(snapshot.deltas))

    def _new_ring(self) -> Ring:
        """The ring of what gossip says now: members, weights, locations."""
        return Ring(
            membership.ring_members(self.sb),
            self.config.tokens_per_node,
            membership.ring_locations(self.sb),
            membership.token_names(self.sb),
        )

    def _rebuild_ring(self) -> None:
        ring = self._new_ring()
        if ring == self._ring:
            return
        old, self._ring = self._ring, ring
        log.info("ring now has %d members (hash %s)", len(self._ring), self._ring.ring_hash)
        for cb in self.on_ring_change:
            cb(old, self._ring)

    # --- Views --------------------------------------------------------------------------------

    @property
    def ring(self) -> Ring:
        return self._ring

    @property
    def status(self) -> str:
        s = self.sb.get(self.node_id, membership.KEY_STATUS)
        return s if isinstance(s, str) else JOINING

    def down(self) -> frozenset[str]:
        now = self.env.monotonic()
        if now - self._down_at > DOWN_CACHE_S:
            self._down = frozenset(
                n
                for n in self._ring.members
                if n != self.node_id and not self.detector.is_up(n, now)
            )
            self._down_at = now
        return self._down

    def is_up(self, node: str) -> bool:
        return node == self.node_id or self.detector.is_up(node, self.env.monotonic())

    def peer_addr(self, node: str) -> str | None:
        return self.gossip.addr(node)

    def http_addr(self, node: str) -> str | None:
        a = self.sb.get(node, membership.KEY_HTTP)
        return a if isinstance(a, str) else None

    def members_not_left(self) -> list[str]:
        return [m.node for m in membership.members(self.sb) if m.status != LEFT]

    def _check_removed(self) -> None:
        removal.check_removed(self)

    def membership_changed(self) -> None:
        """Our own state changed who is in the ring: recompute it, keep it on disk."""
        self._rebuild_ring()
        self._save_peers()

    def remove(self, node: str, replacement: str | None = None) -> dict[str, Any]:
        """Take a node that never comes back out of the ring (``dynamo remove``), or hand
        its ranges to ``replacement`` (``dynamo replace``). ``ValueError`` says why not."""
        return removal.remove(self, node, replacement)

    def members_json(self) -> dict[str, Any]:
        now = self.env.monotonic()
        removed = membership.removals(self.sb)
        out = []
        for m in membership.members(self.sb):
            out.append(
                {
                    "node": m.node,
                    "peer_addr": m.peer_addr,
                    "http_addr": m.http_addr,
                    "pb_addr": m.pb_addr or None,
                    "location": m.location,
                    "removed": membership.is_removed(self.sb, m.node, removed),
                    "status": m.status,
                    "up": self.is_up(m.node),
                    "phi": 0.0
                    if m.node == self.node_id
                    else round(self.detector.phi(m.node, now), 3),
                    "heartbeat": m.heartbeat,
                    "incarnation": m.generation,
                }
            )
        return {"node": self.node_id, "members": out}

    def ring_json(self) -> dict[str, Any]:
        ring = self._ring
        n_val = self._default_props.n_val
        owned = {n: ring.owned_ranges(n, 1) for n in ring.members}
        return {
            "ring_hash": ring.ring_hash,
            "members": list(ring.members),
            "tokens_per_node": ring.tokens_per_node,
            "ownership": {n: round(s, 6) for n, s in ring.ownership().items()},
            "arcs": {n: [[str(lo), str(hi)] for lo, hi in rs] for n, rs in owned.items()},
            "locations": ring.locations,
            # Replicas held per location, and ranges whose primaries share a location
            # although the ring has enough locations, for the default n_val.
            "n_val": n_val,
            "location_ownership": {
                loc: round(s, 6) for loc, s in ring.location_ownership(n_val).items()
            },
            "location_violations": ring.location_violations(n_val),
        }

    def preflist_json(self, bucket: bytes, key: bytes) -> dict[str, Any]:
        props = self.bucket_props(bucket)
        pos = key_position(bucket, key)
        down = self.down()
        primaries = self._ring.primaries(pos, props.n_val)
        return {
            "position": pos,
            "partition": self._ring.partition(pos),
            "n_val": props.n_val,
            "primaries": list(primaries),
            "primary_locations": [self._ring.location(p) for p in primaries],
            "fallbacks": list(self._ring.fallbacks(pos, props.n_val, down)),
            "down": sorted(n for n in primaries if n in down),
            "preflist": [
                {"node": e.node, "role": e.role.value, "hint_for": e.hint_for}
                for e in self._ring.preflist(pos, props.n_val, down)
            ],
        }

    # --- Lifecycle ----------------------------------------------------------------------------

    def set_status(self, status: str) -> None:
        membership.set_status(self.sb, status)
        self._persist_status(status)
        self._rebuild_ring()

    def _persist_status(self, status: str) -> None:
        self.store.put_meta(META_STATUS, status.encode(), sync=True)

    async def join(self, seed: str) -> bool:
        """Gossip with ``seed`` now (and keep it as a seed)."""
        if seed not in self.gossip.seeds and seed != self.config.peer_addr:
            self.gossip.seeds.append(seed)
        return await self.gossip.round(seed)

    async def spread(self, rounds: int = 3) -> None:
        """Push our state to a few live peers now (e.g. before leaving)."""
        peers = [a for n in self.gossip.peers() if self.is_up(n) and (a := self.peer_addr(n))]
        self.env.rng.shuffle(peers)
        for addr in peers[:rounds]:
            await self.gossip.round(addr)

    # --- Bucket props -------------------------------------------------------------------------

    def _load_props(self) -> dict[str, tuple[float, dict[str, Any] | None]]:
        raw = self.store.get_meta(META_PROPS)
        if not raw:
            return {}
        return {b: (float(stamp), props) for b, (stamp, props) in json.loads(raw).items()}

    def _save_props(self) -> None:
        data = {b: [stamp, props] for b, (stamp, props) in self._overrides.items()}
        self.store.put_meta(META_PROPS, json.dumps(data).encode(), sync=True)

    def _merge_props(self) -> None:
        merged = membership.bucket_props(self.sb)
        changed = False
        for bucket, props in merged.items():
            stamp = self._stamp_of(bucket)
            if self._overrides.get(bucket) != (stamp, props):
                self._overrides[bucket] = (stamp, props)
                changed = True
        if changed:
            self._props_cache.clear()
            self._save_props()

    def _stamp_of(self, bucket: str) -> float:
        best = 0.0
        key = membership.props_key(bucket)
        for node in self.sb.nodes():
            v = self.sb.get(node, key)
            if isinstance(v, list) and v and isinstance(v[0], int | float):
                best = max(best, float(v[0]))
        return best

    def props_changed(self) -> None:
        """Bucket types changed here: props are read afresh."""
        self._props_cache.clear()

    def n_vals(self) -> list[int]:
        """Every n_val in use: the default, the bucket types' and those buckets set."""
        ns = {self._default_props.n_val}
        for t in self.types.known.values():
            ns.add(self.types.base_props(t.name, self._default_props).n_val)
        for name, (_, props) in self._overrides.items():
            if props is not None:
                ns.add(self.bucket_props(name.encode()).n_val)
        return sorted(ns)

    def default_props(self) -> BucketProps:
        return self._default_props

    def bucket_props(self, bucket: bytes) -> BucketProps:
        cached = self._props_cache.get(bucket)
        if cached is not None:
            return cached
        entry = self._overrides.get(bucket.decode())
        btype, _ = split_bucket(bucket)
        base = self._default_props
        if btype != DEFAULT_TYPE:
            base = self.types.base_props(btype.decode(), self._default_props)
        props = base
        if entry is not None and entry[1] is not None:
            own = {k: v for k, v in entry[1].items() if k not in TYPE_ONLY_PROPS}
            try:
                props = props_from_overrides(own, base)
            except ValueError as e:
                log.error("bucket %r has invalid props from gossip (%s): using defaults", bucket, e)
        self._props_cache[bucket] = props
        return props

    def _check_typed(self, bucket: bytes, props: dict[str, Any]) -> None:
        """A bucket's props may not change what its bucket type fixes (as in Riak)."""
        btype, _ = split_bucket(bucket)
        base = self._default_props
        if btype != DEFAULT_TYPE:
            base = self.types.base_props(btype.decode(), self._default_props)
        for name in TYPE_ONLY_PROPS:
            if name in props and props[name] != base.extra.get(name):
                raise ValueError(
                    f"{name} belongs to the bucket type {btype.decode()!r}, not to one bucket:"
                    " change it with dynamo bucket-type update (a datatype never changes)"
                )
        if base.extra.get("datatype") is not None and props.get("allow_mult") is False:
            raise ValueError("a data type bucket merges values: leave allow_mult true")

    def set_bucket_props(self, bucket: bytes, overrides: dict[str, Any] | None) -> None:
        """Set (merge) or, with ``None``, reset a bucket's props; spread by gossip."""
        name = bucket.decode()
        if overrides is None:
            merged: dict[str, Any] | None = None
        else:
            current = self._overrides.get(name, (0.0, None))[1] or {}
            merged = {**current, **overrides}
            merged.pop("name", None)
            self._check_typed(bucket, merged)
            props_from_overrides(merged, self._default_props)  # raises ValueError if invalid
        stamp = max(self.env.wallclock(), self._overrides.get(name, (0.0, None))[0] + 1e-6)
        membership.set_bucket_props(self.sb, name, merged, stamp)
        self._overrides[name] = (stamp, merged)
        self._props_cache.pop(bucket, None)
        self._save_props()
