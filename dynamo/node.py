"""The node: the one place where storage, RPC, gossip, the coordinator, handoff and
the HTTP API are wired together. Implements the ``http_api.service.NodeService``
the HTTP layer serves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from dynamo import object as objects
from dynamo.cluster import Cluster
from dynamo.config import NodeConfig
from dynamo.coordinator import Coordinator, object_key
from dynamo.metrics import Metrics
from dynamo.replica import Replica
from dynamo.rpc import Rpc, RpcConfig, RpcError
from dynamo.stats import NodeStats
from dynamo.storage import Store, StoreConfig
from gossip.membership import LEAVING, LEFT
from handoff.delivery import Batch, HintDeliveryService
from http_api.errors import BadRequest, Unavailable
from http_api.server import make_app
from http_api.types import (
    BucketProps,
    Content,
    DeleteOptions,
    FetchResult,
    GetOptions,
    PutOptions,
)
from ring.position import decode_bkey

log = logging.getLogger(__name__)

KEYS_PAGE = 1000


class Node:
    """One running node. ``start()``, then ``stopped.wait()``; ``stop()`` to end."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.counters = NodeStats()
        self.started_at = time.time()
        self.db = Store(
            config.data_dir,
            config.node_id,
            StoreConfig(
                block_cache_bytes=config.block_cache_bytes,
                write_buffer_bytes=config.write_buffer_bytes,
            ),
        )
        self.replica = Replica(self.db)
        self.rpc = Rpc(
            RpcConfig(cluster=config.cluster_name, node_id=config.node_id, secret=config.secret())
        )
        self.cluster = Cluster(config, self.db, self.rpc)
        self.coordinator = Coordinator(
            node_id=config.node_id,
            replica=self.replica,
            membership=self.cluster,
            call=self._call,
            props=self.cluster.bucket_props,
            stats=self.counters,
            request_timeout_ms=config.request_timeout_ms,
            rpc_timeout_s=config.rpc_timeout_ms / 1000,
            hinted_handoff=config.hinted_handoff,
            max_siblings=config.max_siblings,
            sibling_warning=config.sibling_warning,
        )
        self.hints = HintDeliveryService(
            self.db,
            self._deliver_hints,
            self.cluster.is_up,
            batch=config.handoff_batch,
            rate_per_s=config.handoff_rate_per_s,
            interval_s=config.handoff_interval_s,
        )
        self.metrics_registry = Metrics(self)
        self.stopped = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._register()

    # --- Wiring -------------------------------------------------------------------------------

    def _register(self) -> None:
        r = self.rpc.register
        r("get", self.coordinator.handle_get)
        r("put", self.coordinator.handle_put)
        r("coord_put", self.coordinator.handle_coord_put)
        r("keys", self._handle_keys)
        r("buckets", self._handle_buckets)
        r("handoff", self._handle_handoff)
        self.cluster.register()

    async def _call(self, node: str, method: str, body: Any, timeout_s: float) -> Any:
        addr = self.cluster.peer_addr(node)
        if addr is None:
            raise RpcError(f"no address known for node {node!r}")
        return await self.rpc.call(addr, method, body, timeout_s)

    async def start(self) -> None:
        cfg = self.config
        await self.rpc.listen(cfg.host, cfg.peer_port)
        app = make_app(self)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.http_bind, cfg.http_port, reuse_address=True)
        await site.start()
        await self.cluster.start()
        self._tasks.append(asyncio.create_task(self.hints.run(), name="handoff"))
        log.info(
            "node %s up: http %s:%d, peers %s, data %s (incarnation %s)",
            self.node_id,
            cfg.http_bind,
            cfg.http_port,
            cfg.peer_addr,
            cfg.data_dir,
            self.db.incarnation,
        )

    async def stop(self) -> None:
        """Stop serving, finish in-flight work briefly, flush and close RocksDB."""
        if self.db.closed:
            return
        log.info("node %s stopping", self.node_id)
        if self._runner is not None:
            await self._runner.cleanup()
        for t in self._tasks:
            t.cancel()
        await self.cluster.stop()
        bg = list(self.coordinator.background)
        for t in bg:
            t.cancel()
        await asyncio.gather(*self._tasks, *bg, return_exceptions=True)
        await self.rpc.close()
        self.db.close()
        self.stopped.set()
        log.info("node %s stopped", self.node_id)

    # --- KVService ----------------------------------------------------------------------------

    @property
    def node_name(self) -> str:
        return self.node_id

    @property
    def max_object_bytes(self) -> int:
        return self.config.max_object_bytes

    async def fetch(self, bucket: bytes, key: bytes, opts: GetOptions) -> FetchResult:
        return await self.coordinator.get(bucket, key, opts)

    async def store(
        self, bucket: bytes, key: bytes, content: Content, context: bytes | None, opts: PutOptions
    ) -> FetchResult | None:
        return await self.coordinator.put(bucket, key, content, context, opts)

    async def delete(
        self, bucket: bytes, key: bytes, context: bytes | None, opts: DeleteOptions
    ) -> bool:
        return await self.coordinator.delete(bucket, key, context, opts)

    def _owners_for_listing(self) -> list[str]:
        return [n for n in self.cluster.ring.members if self.cluster.is_up(n)]

    async def list_keys(self, bucket: bytes, timeout_ms: int | None) -> AsyncIterator[list[bytes]]:
        """Each up node lists the keys for which it is the first up primary: a coverage
        plan, so no key is listed twice and no set of keys is held in memory."""
        down = sorted(self.cluster.down())
        timeout_s = (timeout_ms or self.config.request_timeout_ms) / 1000
        for node in self._owners_for_listing():
            after = b""
            while True:
                try:
                    page, after = await self._keys_page(node, bucket, after, down, timeout_s)
                except RpcError as e:
                    raise Unavailable(f"listing keys: node {node} did not answer ({e}); retry")
                if page:
                    yield page
                if not after:
                    break

    async def _keys_page(
        self, node: str, bucket: bytes, after: bytes, down: list[str], timeout_s: float
    ) -> tuple[list[bytes], bytes]:
        if node == self.node_id:
            return self._handle_keys([bucket, after, down], self.node_id)
        page, nxt = await self._call(node, "keys", [bucket, after, down], timeout_s)
        return list(page), nxt

    def _handle_keys(self, body: Any, peer: str) -> tuple[list[bytes], bytes]:
        bucket, after, down = body
        down_set = frozenset(down)
        ring = self.cluster.ring
        out: list[bytes] = []
        last = b""
        for objkey, raw in self.db.scan(after + b"\x00" if after else b""):
            last = objkey
            b, k = decode_bkey(objkey[8:])
            if b != bucket:
                continue
            props = self.cluster.bucket_props(b)
            pos = int.from_bytes(objkey[:8], "big")
            first = next((n for n in ring.primaries(pos, props.n_val) if n not in down_set), None)
            if first != self.node_id:
                continue
            if objects.is_tombstone(objects.decode(raw)[0]):
                continue
            out.append(k)
            if len(out) >= KEYS_PAGE:
                return out, last
        return out, b""

    async def list_buckets(self, timeout_ms: int | None) -> AsyncIterator[list[bytes]]:
        timeout_s = (timeout_ms or self.config.request_timeout_ms) / 1000
        seen: set[bytes] = set()
        for node in self._owners_for_listing():
            try:
                if node == self.node_id:
                    names = self._handle_buckets(None, node)
                else:
                    names = await self._call(node, "buckets", None, timeout_s)
            except RpcError as e:
                raise Unavailable(f"listing buckets: node {node} did not answer ({e}); retry")
            new = [b for b in names if b not in seen]
            seen.update(new)
            if new:
                yield new

    def _handle_buckets(self, body: Any, peer: str) -> list[bytes]:
        names: set[bytes] = set()
        for b, _ in self.replica.live_keys():
            names.add(b)
        return sorted(names)

    def bucket_props(self, bucket: bytes) -> BucketProps:
        return self.cluster.bucket_props(bucket)

    def default_props(self) -> BucketProps:
        return self.cluster.default_props()

    async def set_bucket_props(self, bucket: bytes, overrides: dict[str, Any]) -> None:
        try:
            self.cluster.set_bucket_props(bucket, overrides)
        except ValueError as e:
            raise BadRequest(str(e))

    async def reset_bucket_props(self, bucket: bytes) -> None:
        self.cluster.set_bucket_props(bucket, None)

    def local_copy(self, bucket: bytes, key: bytes) -> FetchResult | None:
        obj = self.replica.local_copy(object_key(bucket, key)[1])
        return None if obj is None else objects.to_fetch_result(obj)

    def stats(self) -> dict[str, Any]:
        now = time.time()
        out: dict[str, Any] = dict(self.counters.snapshot(now))
        ring = self.cluster.ring
        pending = self.db.hint_counts()
        out.update(
            nodename=self.node_id,
            ring_members=self.cluster.members_not_left(),
            ring_num_partitions=len(ring.tokens),
            ring_creation_size=len(ring.tokens),
            connected_nodes=sorted(self.rpc.connected_nodes()),
            cluster_status=self.cluster.status,
            hints_pending=sum(pending.values()),
            hints_delivered_total=self.hints.stats.delivered,
            node_uptime_s=round(now - self.started_at),
            storage_seq=self.db.seq,
            rpc_calls_total=self.rpc.stats.calls,
            rpc_timeouts_total=self.rpc.stats.timeouts,
            rpc_protocol_errors_total=self.rpc.stats.protocol_errors,
            gossip_rounds_total=self.cluster.gossip.rounds,
            effective_n_val_warning=len(ring) < self.cluster.default_props().n_val,
        )
        return out

    # --- AdminService -------------------------------------------------------------------------

    def members(self) -> dict[str, Any]:
        return self.cluster.members_json()

    def ring(self) -> dict[str, Any]:
        return self.cluster.ring_json()

    def preflist(self, bucket: bytes, key: bytes) -> dict[str, Any]:
        return self.cluster.preflist_json(bucket, key)

    def handoff(self) -> dict[str, Any]:
        return {
            "hints_pending": self.db.hint_counts(),
            "transfers": [{"kind": "hinted", "target": t} for t in sorted(self.hints.active)],
        }

    def aae(self) -> dict[str, Any]:
        return {"peers": {}}

    async def join(self, seed: str) -> dict[str, Any]:
        ok = await self.cluster.join(seed)
        if not ok:
            raise Unavailable(f"seed {seed} did not answer a gossip round: check the address")
        return {"node": self.node_id, "joined_through": seed, "members": len(self.cluster.ring)}

    async def leave(self) -> dict[str, Any]:
        if self.cluster.status in (LEAVING, LEFT):
            return {"node": self.node_id, "status": self.cluster.status}
        self.cluster.set_status(LEAVING)
        self._tasks.append(asyncio.create_task(self._finish_leave(), name="leave"))
        return {"node": self.node_id, "status": LEAVING}

    async def _finish_leave(self) -> None:
        log.warning(
            "node %s leaving: its data is not transferred yet; the remaining replicas keep it",
            self.node_id,
        )
        self.cluster.set_status(LEFT)
        await self.cluster.spread()
        await self.stop()

    def metrics(self) -> bytes:
        return self.metrics_registry.render()

    # --- Handoff ------------------------------------------------------------------------------

    async def _deliver_hints(self, target: str, batch: Batch) -> None:
        await self._call(target, "handoff", batch, self.config.rpc_timeout_ms / 1000)
        self.counters.hints_delivered_total += len(batch)

    async def _handle_handoff(self, body: Any, peer: str) -> int:
        changed = 0
        for objkey, raw in body:
            incoming, _ = objects.decode(raw)
            bucket = decode_bkey(objkey[8:])[0]
            _, c = self.replica.write(
                objkey, incoming, None, self.cluster.bucket_props(bucket).allow_mult
            )
            changed += c
        if changed:
            await self.db.sync_wal()
        return changed
