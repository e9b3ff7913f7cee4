"""Moving data between nodes: anti-entropy, hint delivery, leave transfer, cleanup.

The wiring of ``gossip.aae_service``, ``handoff.delivery``, ``handoff.transfer``
and ``dynamo.node.maintenance`` to this node's store, ring and RPC.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from dynamo.kv import object as objects
from dynamo.kv.replica import Replica
from dynamo.net import methods
from dynamo.net.rpc import Call
from dynamo.net.schema import Method
from dynamo.node.cluster import Cluster
from dynamo.node.config import NodeConfig
from dynamo.node.env import REAL, Env
from dynamo.node.maintenance import Maintenance
from dynamo.node.tictac import TictacService
from dynamo.storage.contract import StoreAPI
from gossip.aae_service import AntiEntropyService
from gossip.antientropy import (
    AntiEntropy,
    range_spec,
    spec_hash,
    watermark_from_bytes,
    watermark_to_bytes,
)
from gossip.membership import LEAVING
from handoff.delivery import Batch, HintDeliveryService, reroute
from handoff.transfer import LeaveTransfer, TransferProgress, new_holders
from ring.position import storage_key_bkey, storage_key_position
from ring.ring import Ring

log = logging.getLogger(__name__)

META_AAE = b"aae/"
META_LEAVE = b"leave_progress"
APPLY_YIELD_EVERY = 64
MESSAGE_ENVELOPE_BYTES = 1024 * 1024  # room in a message for what is not the objects


class Ownership:
    def __init__(
        self,
        config: NodeConfig,
        store: StoreAPI,
        replica: Replica,
        cluster: Cluster,
        call: Call,
        env: Env = REAL,
    ):
        self.config = config
        self.env = env
        self.node_id = config.node_id
        self.store = store
        self.replica = replica
        self.cluster = cluster
        self.call = call
        self.rpc_timeout_s = config.rpc_timeout_ms / 1000
        self.aae = AntiEntropy(
            config.node_id,
            store.incarnation,
            max_round_bytes=config.aae_round_bytes,
            max_object_bytes=config.rpc_max_frame_bytes - MESSAGE_ENVELOPE_BYTES,
        )
        for peer, raw in store.meta_scan(META_AAE, b"", 100_000):
            self.aae.load(peer.decode(), *watermark_from_bytes(raw))
        self.aae_service = AntiEntropyService(
            self.aae,
            store,
            peers=self._aae_peers,
            spec=self.spec,
            n_val_of=self.n_val_of,
            call=lambda peer, name, body: call(
                peer, methods.METHODS[name], body, self.rpc_timeout_s * 2
            ),
            apply=self.apply,
            persist=self._persist_watermark,
            interval_s=config.aae_interval_s,
            quiet_interval_s=config.aae_quiet_interval_s,
            clock=env.monotonic,
        )
        self.hints = HintDeliveryService(
            store,
            self._deliver_hints,
            self._hint_target_reachable,
            batch=config.handoff_batch,
            batch_bytes=config.handoff_batch_bytes,
            rate_per_s=config.handoff_rate_per_s,
            interval_s=config.handoff_interval_s,
            expired=lambda raw: replica.hint_expired(objects.stored_seq(raw)),
            sweep_interval_s=max(1.0, min(60.0, config.hint_ttl_s / 10)),
            clock=env.monotonic,
        )
        self.maintenance = Maintenance(
            store,
            self.aae,
            node_id=config.node_id,
            ring=lambda: cluster.ring,
            n_val_of=self.n_val_of,
            leaving=lambda: cluster.status == LEAVING,
            grace_s=config.tombstone_grace_s,
            marker_ttl_s=config.reaped_marker_ttl_s,
            interval_s=config.maintenance_interval_s,
            env=env,
        )
        self.tictac = TictacService(
            config.node_id,
            store,
            cluster,
            lambda peer, name, body: call(
                peer, methods.METHODS[name], body, self.rpc_timeout_s * 2
            ),
            self.apply,
            exchange_interval_s=config.tictac_exchange_interval_s,
            rebuild_interval_s=config.tictac_rebuild_interval_s,
            rebuild_keys_per_s=config.tictac_rebuild_keys_per_s,
            build_keys_per_s=config.tictac_build_keys_per_s,
            env=env,
        )
        self.transfer: LeaveTransfer | None = None
        cluster.on_ring_change.append(self._ring_changed)

    def register(self, register: Callable[[Method[Any, Any], Any], None]) -> None:
        register(methods.AAE_PULL, self.aae_service.handle_pull)
        register(methods.AAE_FETCH, self.aae_service.handle_fetch)
        register(methods.HANDOFF, self.handle_handoff)
        register(methods.TICTAC, self.tictac.handle)

    def tasks(self) -> list[Awaitable[Any]]:
        return [
            self.aae_service.run(),
            self.hints.run(),
            self.maintenance.run(),
            self.tictac.run(),
        ]

    def _ring_changed(self, old: Ring, new: Ring) -> None:
        self.aae_service.poke()
        self.maintenance.ring_changed()

    # --- Anti-entropy -------------------------------------------------------------------------

    def n_val_of(self, objkey: bytes) -> int:
        return self.cluster.bucket_props(storage_key_bkey(objkey)[0]).n_val

    def spec(self) -> dict[int, list[tuple[int, int]]]:
        """The ranges this node replicates, per n_val in use."""
        return range_spec(self.cluster.ring, self.node_id, self.cluster.n_vals())

    def _aae_peers(self) -> list[str]:
        return [n for n in self.cluster.ring.members if n != self.node_id and self.cluster.is_up(n)]

    async def apply(self, entries: Sequence[tuple[bytes, bytes]]) -> int:
        changed = 0
        for i, (objkey, raw) in enumerate(entries):
            obj, _ = objects.decode(raw)
            allow_mult = self.cluster.bucket_props(storage_key_bkey(objkey)[0]).allow_mult
            _, c = self.replica.write(objkey, obj, None, allow_mult)
            changed += c
            if i % APPLY_YIELD_EVERY == APPLY_YIELD_EVERY - 1:
                await asyncio.sleep(0)
        return changed

    def _persist_watermark(self, peer: str, incarnation: str, spec: str, watermark: int) -> None:
        self.store.put_meta(
            META_AAE + peer.encode(), watermark_to_bytes(incarnation, spec, watermark)
        )

    def aae_status(self) -> dict[str, Any]:
        return {
            "peers": self.aae_service.status(),
            "spec": spec_hash(self.spec()),
            "head": self.store.seq,
            "rounds": self.aae_service.rounds,
            "objects_sent": self.aae.objects_out,
            "bytes_sent": self.aae.bytes_out,
            "objects_changed": self.aae_service.changed,
            "tictac": self.tictac.status(),
        }

    # --- Hints --------------------------------------------------------------------------------

    def _hint_target_reachable(self, target: str) -> bool:
        if target not in self.cluster.ring:
            return True  # it left: the hints go to the key's current primaries
        return self.cluster.is_up(target)

    async def _deliver_hints(self, target: str, batch: Batch) -> None:
        if target in self.cluster.ring:
            await self.call(target, methods.HANDOFF, batch, self.rpc_timeout_s)
        else:
            await self._reroute(batch)

    async def _reroute(self, batch: Batch) -> None:
        """Hints for a node that left: every current primary that is up gets them."""
        ring = self.cluster.ring
        per_node = reroute(
            batch,
            lambda objkey: ring.primaries(storage_key_position(objkey), self.n_val_of(objkey)),
            self.cluster.is_up,
        )
        if not per_node:
            raise RuntimeError("no primary is up for these hints")
        await self._send_all(per_node)

    async def _send_all(self, per_node: dict[str, Batch]) -> None:
        for node, items in per_node.items():
            if node == self.node_id:
                await self.handle_handoff(items, self.node_id)
            else:
                await self.call(node, methods.HANDOFF, items, self.rpc_timeout_s)

    async def handle_handoff(self, batch: Batch, peer: str) -> int:
        """Objects handed to us (hints, leave transfer): merge as primary copies, sync."""
        changed = await self.apply(batch)
        if changed:
            await self.store.sync_wal()
        return changed

    # --- Leave --------------------------------------------------------------------------------

    def _load_leave_progress(self) -> TransferProgress:
        raw = self.store.get_meta(META_LEAVE)
        if not raw:
            return TransferProgress()
        return TransferProgress.from_bytes(raw)

    def _save_leave_progress(self, p: TransferProgress) -> None:
        self.store.put_meta(META_LEAVE, p.to_bytes())

    async def leave(self) -> None:
        """Hand every object over to its future replicas; retries until done."""
        progress = self._load_leave_progress()
        progress.total = max(progress.total, self.store.property_int("rocksdb.estimate-num-keys"))
        future = self.cluster.ring.without(self.node_id)
        if not len(future):
            log.warning("leaving a cluster of one: there is nobody to hand the data to")
            return

        def holders(objkey: bytes) -> list[str]:
            pos = storage_key_position(objkey)
            now = self.cluster.ring  # as it is now; the future ring is fixed at the start
            return new_holders(now, future, self.node_id, pos, self.n_val_of(objkey))

        async def send(node: str, batch: Batch) -> None:
            await self.call(node, methods.HANDOFF, batch, self.rpc_timeout_s * 4)

        self.transfer = LeaveTransfer(
            self.store,
            new_holders=holders,
            send=send,
            save=self._save_leave_progress,
            progress=progress,
            batch=self.config.handoff_batch,
            batch_bytes=self.config.handoff_batch_bytes,
        )
        while True:
            try:
                await self.transfer.run()
                break
            except Exception as e:
                log.warning("leave transfer interrupted (%s): resuming", e)
                await asyncio.sleep(1.0)
        # Hints for others go to their targets, or to the current primaries.
        while self.store.hint_counts():
            for target in list(self.store.hint_counts()):
                await self.hints.deliver_to(target)
            if self.store.hint_counts():
                await asyncio.sleep(0.5)

    def transfers(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"kind": "hinted", "target": t} for t in sorted(self.hints.active)
        ]
        if self.transfer is not None:
            p = self.transfer.progress
            out.append(
                {
                    "kind": "leave",
                    "phase": p.phase,
                    "sent": p.sent,
                    "total": p.total,
                    "batches": p.batches,
                }
            )
        return out

    def stats(self) -> dict[str, Any]:
        lags = [p.lag for p in self.aae.peers.values()]
        m = self.maintenance.stats
        return {
            "aae_rounds_total": self.aae_service.rounds,
            "aae_failed_rounds_total": self.aae_service.failed_rounds,
            "aae_objects_oversized_total": self.aae_service.oversized,
            "aae_objects_sent_total": self.aae.objects_out,
            "aae_bytes_sent_total": self.aae.bytes_out,
            "aae_objects_received_total": sum(p.objects_in for p in self.aae.peers.values()),
            "aae_bytes_received_total": sum(p.bytes_in for p in self.aae.peers.values()),
            "aae_objects_changed_total": self.aae_service.changed,
            "aae_lag_max": max(lags, default=0),
            "tombstones_reaped_total": m.reaped,
            "objects_dropped_total": m.dropped,
            "cleanup_waiting": m.cleanup_waiting,
            "cleanup_passes_total": m.cleanup_passes,
            "transfers_in_progress": len(self.transfers()),
            "hints_delivered_total": self.hints.stats.delivered,
            "hints_expired_total": self.hints.stats.expired,
            "time": self.env.wallclock(),
        }
