"""The node: the one place where storage, RPC, gossip, the coordinator, handoff and
the client APIs (HTTP, Riak PB) are wired together. Implements the
``http_api.service.NodeService`` both client APIs serve, with one concurrency limit
between them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from dynamo.kv import crdt, datatypes
from dynamo.kv import object as objects
from dynamo.kv.coordinator import NOT_IN_A_CLUSTER, Coordinator
from dynamo.kv.index_query import IndexQueries
from dynamo.kv.listing import Listing
from dynamo.kv.peer_handlers import PeerHandlers
from dynamo.kv.replica import Replica
from dynamo.net import methods, tls
from dynamo.net.rpc import Rpc, RpcAPI, RpcConfig, RpcError
from dynamo.net.schema import Method
from dynamo.node import backup
from dynamo.node.cluster import Cluster
from dynamo.node.config import NodeConfig
from dynamo.node.env import REAL, Env
from dynamo.node.memory import Heap
from dynamo.node.metrics import Metrics
from dynamo.node.ownership import Ownership
from dynamo.node.removal import StillUp
from dynamo.node.stats import NodeStats
from dynamo.node.typed import TypedService
from dynamo.storage.contract import FAMILIES, StorageError, StoreAPI
from dynamo.storage.rocksdb import Store, StoreConfig
from gossip.membership import LEAVING, LEFT
from http_api import indexes
from http_api.access import AuthConfig, ConcurrencyLimit
from http_api.errors import BadRequest, Conflict, Unavailable
from http_api.guards import Front
from http_api.indexes import IndexPage, IndexQuery
from http_api.server import FRONT, make_app
from http_api.types import (
    DEFAULT_TYPE,
    BucketProps,
    Content,
    DeleteOptions,
    FetchResult,
    GetOptions,
    PutOptions,
    split_bucket,
)
from pb_api.server import FRAME_OVERHEAD_BYTES, PbConfig, PbServer, PbStats
from ring.position import storage_key

log = logging.getLogger(__name__)


class Node(TypedService):
    """One running node. ``start()``, then ``stopped.wait()``; ``stop()`` to end."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        env: Env = REAL,
        store: StoreAPI | None = None,
        rpc: RpcAPI | None = None,
    ) -> None:
        """A node on RocksDB and TCP, or (a simulation) on the given store and messaging."""
        self.config = config
        self.node_id = config.node_id
        self.env = env
        self.counters = NodeStats(env.wallclock)
        self.started_at = env.wallclock()
        self.db: StoreAPI = store or Store(
            config.data_dir,
            config.node_id,
            StoreConfig(
                block_cache_bytes=config.block_cache_bytes,
                write_buffer_bytes=config.write_buffer_bytes,
            ),
        )
        self.replica = Replica(
            self.db,
            env.rng,
            wallclock=env.wallclock,
            hint_ttl_s=config.hint_ttl_s,
            crdt_limits=crdt.Limits(
                max_elements=config.crdt_max_elements, max_depth=config.crdt_max_depth
            ),
        )
        ssl_server = ssl_client = None
        if config.peer_tls_cert_file and config.peer_tls_key_file and config.peer_tls_ca_file:
            ssl_server, ssl_client = tls.peer_contexts(
                config.peer_tls_cert_file, config.peer_tls_key_file, config.peer_tls_ca_file
            )
        self.rpc: RpcAPI = rpc or Rpc(
            RpcConfig(
                cluster=config.cluster_name,
                node_id=config.node_id,
                secret=config.secret(),
                max_frame_bytes=config.rpc_max_frame_bytes,
                max_version=config.rpc_max_protocol_version,
                routes=config.routes(),
                ssl_server=ssl_server,
                ssl_client=ssl_client,
            )
        )
        self.cluster = Cluster(config, self.db, self.rpc, env)
        self.cluster.on_removed = self._removed
        self.coordinator = Coordinator(
            node_id=config.node_id,
            replica=self.replica,
            membership=self.cluster,
            call=self._call,
            request=self._request,
            props=self.cluster.bucket_props,
            stats=self.counters,
            request_timeout_ms=config.request_timeout_ms,
            rpc_timeout_s=config.rpc_timeout_ms / 1000,
            hinted_handoff=config.hinted_handoff,
            max_siblings=config.max_siblings,
            max_stored_object_bytes=config.max_stored_object_bytes,
            sibling_warning=config.sibling_warning,
            env=env,
        )
        self.peer_handlers = PeerHandlers(self.coordinator)
        self.ownership = Ownership(config, self.db, self.replica, self.cluster, self._call, env)
        self.listing = Listing(config.node_id, self.replica, self.cluster, self._call)
        self.index = IndexQueries(
            config.node_id,
            self.replica,
            self.cluster,
            self._call,
            max_results=config.max_index_results,
            rng=env.rng,
        )
        self.metrics_registry = Metrics(self)
        self.counters.get_observers.append(self.metrics_registry.observe_get)
        self.stopped = asyncio.Event()
        self.exit_requested = asyncio.Event()  # the node wants its process to stop (it left)
        self._runner: web.AppRunner | None = None
        self.http_limit: Front | None = None
        self.pb: PbServer | None = None
        self.limit = ConcurrencyLimit(config.max_concurrent_requests)
        self._tasks: list[asyncio.Task[Any]] = []
        self.heap = Heap()
        self._register()

    # --- Wiring -------------------------------------------------------------------------------

    def _register(self) -> None:
        r = self.rpc.register
        r(methods.GET, self.peer_handlers.handle_get)
        r(methods.PUT, self.peer_handlers.handle_put)
        r(methods.COORD_PUT, self.coordinator.forwarding.handle_coord_put)
        self.listing.register(r)
        self.index.register(r)
        self.ownership.register(r)
        self.cluster.register()

    def _request(
        self, node: str, method: Method[Any, Any], body: Any, timeout_s: float
    ) -> asyncio.Future[Any]:
        addr = self.cluster.peer_addr(node)
        if addr is None:
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            fut.set_exception(RpcError(f"no address known for node {node!r}"))
            return fut
        return self.rpc.request(addr, method, body, timeout_s)

    async def _call(self, node: str, method: Method[Any, Any], body: Any, timeout_s: float) -> Any:
        addr = self.cluster.peer_addr(node)
        if addr is None:
            raise RpcError(f"no address known for node {node!r}")
        return await self.rpc.call(addr, method, body, timeout_s)

    async def start(self, http: bool = True) -> None:
        """Listen for peers (and clients, unless ``http`` is off), then run the services."""
        cfg = self.config
        await self.rpc.listen(cfg.host, cfg.peer_port)
        if http:
            app = make_app(
                self,
                auth=AuthConfig(token=cfg.http_auth_token, basic=cfg.http_auth_basic),
                max_concurrent=cfg.max_concurrent_requests,
                observe=self.metrics_registry.observe_request,
                limit=self.limit,
            )
            self.http_limit = app[FRONT]
            ssl_context = None
            if cfg.http_tls_cert_file and cfg.http_tls_key_file:
                ssl_context = tls.http_server_context(cfg.http_tls_cert_file, cfg.http_tls_key_file)
            if cfg.pb_port:
                await self._start_pb(ssl_context)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await self._runner.setup()
            site = web.TCPSite(
                self._runner,
                cfg.http_bind,
                cfg.http_port,
                reuse_address=True,
                ssl_context=ssl_context,
            )
            await site.start()
            if cfg.shared_http_port:  # the host's one client address, shared by its processes
                shared = web.TCPSite(
                    self._runner,
                    cfg.http_bind,
                    cfg.shared_http_port,
                    reuse_address=True,
                    reuse_port=True,
                    ssl_context=ssl_context,
                )
                await shared.start()
        await self.cluster.start()
        for aw in self.ownership.tasks():
            self._tasks.append(asyncio.ensure_future(aw))
        if cfg.malloc_trim_interval_s > 0 and self.heap.available:
            self._tasks.append(asyncio.create_task(self._trim_memory(), name="malloc-trim"))
        if self.cluster.status == LEAVING:  # a leave interrupted by a restart goes on
            self._tasks.append(asyncio.create_task(self._finish_leave(), name="leave"))
        log.info(
            "node %s up: http %s:%d, pb %s, peers %s, data %s (incarnation %s)",
            self.node_id,
            cfg.http_bind,
            cfg.http_port,
            f"{cfg.http_bind}:{cfg.pb_port}" if self.pb is not None else "off",
            cfg.peer_addr,
            cfg.data_dir,
            self.db.incarnation,
        )

    async def _trim_memory(self) -> None:
        while True:
            await asyncio.sleep(self.config.malloc_trim_interval_s)
            self.heap.trim()

    async def _start_pb(self, ssl_context: ssl.SSLContext | None) -> None:
        cfg = self.config
        self.pb = PbServer(
            self,
            PbConfig(
                max_frame_bytes=cfg.max_object_bytes + FRAME_OVERHEAD_BYTES,
                max_connections=cfg.pb_max_connections,
                stall_timeout_s=cfg.pb_stall_timeout_s,
                reuse_port=cfg.pb_reuse_port,
                auth=AuthConfig(token=cfg.http_auth_token, basic=cfg.http_auth_basic),
                ssl_context=ssl_context,
            ),
            limit=self.limit,
            observe=self.metrics_registry.observe_pb_request,
        )
        await self.pb.start(cfg.http_bind, cfg.pb_port)

    async def stop(self) -> None:
        """Stop serving, finish in-flight work briefly, flush and close RocksDB."""
        if self.db.closed:
            return
        log.info("node %s stopping", self.node_id)
        if self.pb is not None:
            await self.pb.close()
        if self._runner is not None:
            await self._runner.cleanup()
        me = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not me]
        for t in tasks:
            t.cancel()
        await self.cluster.stop()
        bg = list(self.coordinator.background)
        for t in bg:
            t.cancel()
        await asyncio.gather(*tasks, *bg, return_exceptions=True)
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
        self.refuse_datatype_bucket(bucket)
        return await self.coordinator.get(bucket, key, opts)

    async def store(
        self, bucket: bytes, key: bytes, content: Content, context: bytes | None, opts: PutOptions
    ) -> FetchResult | None:
        self.refuse_datatype_bucket(bucket)
        if datatypes.is_op(content) or content.content_type == datatypes.CRDT_TYPE:
            raise BadRequest(f"content type {content.content_type!r} is reserved for data types")
        if content.indexes:
            content = dataclasses.replace(content, indexes=indexes.normalize(content.indexes))
        return await self.coordinator.put(bucket, key, content, context, opts)

    async def index_query(self, bucket: bytes, query: IndexQuery) -> IndexPage:
        return await self.index.query(bucket, query)

    async def stream_index(self, bucket: bytes, query: IndexQuery) -> AsyncIterator[IndexPage]:
        async for page in self.index.stream(bucket, query):
            yield page

    async def delete(
        self, bucket: bytes, key: bytes, context: bytes | None, opts: DeleteOptions
    ) -> bool:
        return await self.coordinator.delete(bucket, key, context, opts)

    async def list_keys(self, bucket: bytes, timeout_ms: int | None) -> AsyncIterator[list[bytes]]:
        async for page in self.index.keys(bucket, timeout_ms or self.config.request_timeout_ms):
            yield page

    async def list_buckets(
        self, timeout_ms: int | None, btype: bytes = DEFAULT_TYPE
    ) -> AsyncIterator[list[bytes]]:
        async for page in self.index.buckets(self._timeout_s(timeout_ms)):
            mine = [b for t, b in map(split_bucket, page) if t == btype]
            if mine:
                yield mine

    def _timeout_s(self, timeout_ms: int | None) -> float:
        return (timeout_ms or self.config.request_timeout_ms) / 1000

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
        obj = self.replica.local_copy(storage_key(bucket, key)[1])
        return None if obj is None else objects.to_fetch_result(obj)

    def stats(self) -> dict[str, Any]:
        now = self.env.wallclock()
        out: dict[str, Any] = dict(self.counters.snapshot(now))
        ring = self.cluster.ring
        pending = self.db.hint_counts()
        out.update(
            nodename=self.node_id,
            # Riak's ring_members is the ring: members still joining are not in it (a
            # count of every known member once made "3 nodes agreed" true too early).
            ring_members=list(ring.members),
            known_members=self.cluster.members_not_left(),
            ring_num_partitions=len(ring.tokens),
            ring_creation_size=len(ring.tokens),
            connected_nodes=sorted(self.rpc.connected_nodes()),
            # The node-to-node protocol each connected peer speaks with us (upgrades).
            rpc_peer_protocol=self.rpc.peer_versions(),
            cluster_status=self.cluster.status,
            hints_pending=sum(pending.values()),
            node_uptime_s=round(now - self.started_at),
            storage_seq=self.db.seq,
            storage_write_failures_total=self.db.write_failures_total,
            storage_writes_refused=int(self.db.write_refusal is not None),
            storage_corrupt_objects_total=self.db.corrupt_total,
            # What grows when something leaks (the soak benchmark samples them)
            asyncio_tasks=len(asyncio.all_tasks()),
            rocksdb_mem_table_bytes=self._families_int("rocksdb.cur-size-all-mem-tables"),
            rocksdb_table_readers_bytes=self._families_int("rocksdb.estimate-table-readers-mem"),
            rocksdb_block_cache_bytes=self.db.property_int("rocksdb.block-cache-usage"),
            rocksdb_live_iterators=self.db.open_iterators,
            **self.heap.stats(),
            tictac_exchanges_total=self.ownership.tictac.exchanges,
            tictac_repaired_total=self.ownership.tictac.repaired,
            tictac_builds_total=self.ownership.tictac.builds,
            index_queries_total=self.index.queries,
            index_replans_total=self.index.replans,
            rpc_calls_total=self.rpc.stats.calls,
            rpc_timeouts_total=self.rpc.stats.timeouts,
            rpc_protocol_errors_total=self.rpc.stats.protocol_errors,
            rpc_auth_failures_total=self.rpc.stats.auth_failures,
            rpc_connect_failures_total=self.rpc.stats.connect_failures,
            gossip_rounds_total=self.cluster.gossip.rounds,
            effective_n_val_warning=len(ring) < self.cluster.default_props().n_val,
        )
        out.update(self._pb_stats(now))
        out.update(self.ownership.stats())
        return out

    def _pb_stats(self, now: float) -> dict[str, Any]:
        """Riak's PB connection figures (``pbc_connects``: opened in the last minute)."""
        s = self.pb.stats if self.pb is not None else PbStats()
        return {
            "pbc_connects": s.connects_last_minute(self.env.monotonic()),
            "pbc_connects_total": s.connects_total,
            "pbc_active": s.active,
            "pb_protocol_errors_total": s.protocol_errors + s.frames_too_large + s.stalls,
            "pb_refused_connections_total": s.refused_connections,
            "pb_auth_failures_total": s.auth_failures,
        }

    # --- AdminService -------------------------------------------------------------------------

    def members(self) -> dict[str, Any]:
        return self.cluster.members_json()

    def ring(self) -> dict[str, Any]:
        return self.cluster.ring_json()

    def preflist(self, bucket: bytes, key: bytes) -> dict[str, Any]:
        return self.cluster.preflist_json(bucket, key)

    def handoff(self) -> dict[str, Any]:
        return {"hints_pending": self.db.hint_counts(), "transfers": self.ownership.transfers()}

    async def backup(self, name: str) -> dict[str, Any]:
        if not isinstance(self.db, Store):
            raise BadRequest("this node's store is in memory: nothing to back up")
        work = functools.partial(
            backup.take,
            self.db,
            self.config.backup_root,
            name,
            now=self.env.wallclock(),
            marker_ttl_s=self.config.reaped_marker_ttl_s,
        )
        try:
            out = await asyncio.get_running_loop().run_in_executor(None, work)
        except backup.BackupExists as e:
            raise Conflict(str(e))
        except backup.BackupError as e:
            raise BadRequest(str(e))
        except StorageError as e:
            raise Unavailable(str(e))
        log.info("backup %s: %d bytes in %.1f s", out["path"], out["bytes"], out["seconds"])
        return out

    def health(self) -> list[str]:
        reasons = []
        if self.db.write_refusal is not None:
            reasons.append(f"storage refuses writes: {self.db.write_refusal}")
        if not len(self.cluster.ring):
            reasons.append(NOT_IN_A_CLUSTER)
        return reasons

    def aae(self) -> dict[str, Any]:
        return self.ownership.aae_status()

    async def join(self, seed: str) -> dict[str, Any]:
        ok = await self.cluster.join(seed)
        if not ok:
            raise Unavailable(f"seed {seed} did not answer a gossip round: check the address")
        return {"node": self.node_id, "joined_through": seed, "members": len(self.cluster.ring)}

    async def remove(self, node: str, replacement: str | None = None) -> dict[str, Any]:
        try:
            out = self.cluster.remove(node, replacement)
        except StillUp as e:
            raise Conflict(str(e))
        except ValueError as e:
            raise BadRequest(str(e))
        await self.cluster.spread()
        return out

    def _removed(self, why: str) -> None:
        log.error("%s", why)
        self.exit_requested.set()

    async def leave(self) -> dict[str, Any]:
        if self.cluster.status in (LEAVING, LEFT):
            return {"node": self.node_id, "status": self.cluster.status}
        self.cluster.set_status(LEAVING)
        self._tasks.append(asyncio.create_task(self._finish_leave(), name="leave"))
        return {"node": self.node_id, "status": LEAVING}

    async def _finish_leave(self) -> None:
        log.info("node %s leaving: handing its data over", self.node_id)
        await self.ownership.leave()
        self.cluster.set_status(LEFT)
        await self.cluster.spread()
        log.info("node %s left the cluster", self.node_id)
        self.exit_requested.set()

    def _families_int(self, name: str) -> int:
        return sum(self.db.property_int(name, f) for f in FAMILIES)

    def extra_metrics(self) -> dict[str, Any]:
        """Figures only ``/metrics`` shows (label sets, RocksDB)."""
        members = self.cluster.members_json()["members"]
        states: dict[str, int] = {}
        for m in members:
            state = m["status"] if m["status"] == "left" else ("up" if m["up"] else "down")
            states[state] = states.get(state, 0) + 1
        out: dict[str, Any] = {
            "members_by_state": states,
            "aae_peers": self.ownership.aae_service.status(),
            "hints_by_target": self.db.hint_counts(),
            "rpc_auth_failures_total": self.rpc.stats.auth_failures,
            "rpc_connect_failures_total": self.rpc.stats.connect_failures,
            "gossip_failed_rounds_total": self.cluster.gossip.failed_rounds,
            "rocksdb_live_sst_bytes": self.db.property_int("rocksdb.live-sst-files-size"),
            "rocksdb_pending_compaction_bytes": self.db.property_int(
                "rocksdb.estimate-pending-compaction-bytes"
            ),
            "rocksdb_estimated_keys": self.db.property_int("rocksdb.estimate-num-keys"),
        }
        limit = self.http_limit  # None when the node serves no HTTP (a simulation)
        out["http_in_flight"] = limit.in_flight if limit is not None else 0
        out["http_overload_refused_total"] = limit.refused if limit is not None else 0
        return out

    def metrics(self) -> bytes:
        return self.metrics_registry.render()
