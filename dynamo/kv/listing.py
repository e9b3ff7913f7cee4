"""Key and bucket listing across the cluster: a coverage plan, streamed in pages.

Each up node lists the keys for which it is the first up primary, so no key is
listed twice and no node or coordinator holds a bucket's keys in memory.
Tombstoned keys are not listed. Expensive by nature: every node scans its store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from dynamo.kv import object as objects
from dynamo.kv.replica import Replica
from dynamo.net import methods
from dynamo.net.methods import KeyPage, KeyPageRequest
from dynamo.net.rpc import Call, RpcError
from dynamo.net.schema import Method
from dynamo.node.cluster import Cluster
from http_api.errors import Unavailable
from ring.position import storage_key_bkey, storage_key_position

KEYS_PAGE = 1000


class Listing:
    def __init__(self, node_id: str, replica: Replica, cluster: Cluster, call: Call) -> None:
        self.node_id = node_id
        self.replica = replica
        self.cluster = cluster
        self.call = call

    def register(self, register: Callable[[Method[Any, Any], Any], None]) -> None:
        register(methods.KEYS, self.handle_keys)
        register(methods.BUCKETS, self.handle_buckets)

    def _up_members(self) -> list[str]:
        return [n for n in self.cluster.ring.members if self.cluster.is_up(n)]

    async def keys(self, bucket: bytes, timeout_s: float) -> AsyncIterator[list[bytes]]:
        down = tuple(sorted(self.cluster.down()))
        for node in self._up_members():
            after = b""
            while True:
                ask = KeyPageRequest(bucket, after, down)
                try:
                    if node == self.node_id:
                        page = self.handle_keys(ask, node)
                    else:
                        page = await self.call(node, methods.KEYS, ask, timeout_s)
                except RpcError as e:
                    raise Unavailable(f"listing keys: node {node} did not answer ({e}); retry")
                if page.keys:
                    yield list(page.keys)
                after = page.after
                if not after:
                    break

    def handle_keys(self, req: KeyPageRequest, peer: str) -> KeyPage:
        """One page of the keys this node covers; the cursor is empty at the end."""
        bucket, after = req.bucket, req.after
        down_set = frozenset(req.down)
        ring = self.cluster.ring
        n_val = self.cluster.bucket_props(bucket).n_val
        out: list[bytes] = []
        for objkey, raw in self.replica.store.scan(after + b"\x00" if after else b""):
            b, k = storage_key_bkey(objkey)
            if b != bucket:
                continue
            pos = storage_key_position(objkey)
            first = next((n for n in ring.primaries(pos, n_val) if n not in down_set), None)
            if first != self.node_id or objects.is_tombstone(objects.decode(raw)[0]):
                continue
            out.append(k)
            if len(out) >= KEYS_PAGE:
                return KeyPage(out, objkey)
        return KeyPage(out, b"")

    async def buckets(self, timeout_s: float) -> AsyncIterator[list[bytes]]:
        seen: set[bytes] = set()
        for node in self._up_members():
            try:
                if node == self.node_id:
                    names = self.handle_buckets(None, node)
                else:
                    names = await self.call(node, methods.BUCKETS, None, timeout_s)
            except RpcError as e:
                raise Unavailable(f"listing buckets: node {node} did not answer ({e}); retry")
            new = [b for b in names if b not in seen]
            seen.update(new)
            if new:
                yield new

    def handle_buckets(self, body: Any, peer: str) -> list[bytes]:
        return sorted({b for b, _ in self.replica.live_keys()})
