"""Key listing as nodes before coverage plans asked for it (``keys``), still answered
for them during a rolling upgrade: this node lists the keys for which it is the first
up primary. Listing itself is a coverage query now (``kv.index_query``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dynamo.kv import object as objects
from dynamo.kv.replica import Replica
from dynamo.net import methods
from dynamo.net.methods import KeyPage, KeyPageRequest
from dynamo.net.rpc import Call
from dynamo.net.schema import Method
from dynamo.node.cluster import Cluster
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
