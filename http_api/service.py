"""The service the HTTP API serves, declared here so ``http_api`` never imports the node.

Buckets and keys are bytes (UTF-8 of the decoded path segments). Contexts are
opaque bytes (base64 only on the wire). Errors are ``http_api.errors``
exceptions; anything else escaping a call is a bug and becomes a 500.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from http_api.errors import NotFound
from http_api.indexes import IndexPage, IndexQuery
from http_api.types import (
    DEFAULT_TYPE,
    BucketProps,
    Content,
    Datatype,
    DeleteOptions,
    FetchResult,
    GetOptions,
    PutOptions,
)

JSON = dict[str, Any]
#: The Riak KV release whose API we serve: clients parse it as three integers.
RIAK_KV_VERSION = "3.0.16"


def active_preflist(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Riak's preflist of a key from the node's: ``partition`` (the index of the ring
    range holding the key), ``node``, ``primary`` (false for a fallback standing in)."""
    partition = int(data.get("partition", -1))
    if partition < 0:
        raise NotFound("this node has no ring yet: it is not part of a cluster")
    return [
        {"partition": partition, "node": e["node"], "primary": e.get("role") == "primary"}
        for e in data.get("preflist", [])
    ]


class KVService(Protocol):
    """Objects, buckets and their properties."""

    @property
    def node_name(self) -> str: ...

    @property
    def max_object_bytes(self) -> int: ...

    async def fetch(self, bucket: bytes, key: bytes, opts: GetOptions) -> FetchResult:
        """A quorum read; ``FetchResult()`` when nothing is there."""
        ...

    async def store(
        self, bucket: bytes, key: bytes, content: Content, context: bytes | None, opts: PutOptions
    ) -> FetchResult | None:
        """A quorum write; returns the object after the write when ``opts.return_body``."""
        ...

    async def delete(
        self, bucket: bytes, key: bytes, context: bytes | None, opts: DeleteOptions
    ) -> bool:
        """Write a tombstone; False when there was nothing to delete."""
        ...

    def list_keys(self, bucket: bytes, timeout_ms: int | None) -> AsyncIterator[list[bytes]]:
        """Live keys of a bucket in chunks, from every node."""
        ...

    def list_buckets(
        self, timeout_ms: int | None, btype: bytes = DEFAULT_TYPE
    ) -> AsyncIterator[list[bytes]]:
        """Buckets of type ``btype`` holding at least one live key, in chunks."""
        ...

    async def index_query(self, bucket: bytes, query: IndexQuery) -> IndexPage:
        """A secondary index query: one page with ``max_results``, else every result
        (``RequestTooLarge`` past the node's cap); ``BadRequest`` for a bad continuation."""
        ...

    def stream_index(self, bucket: bytes, query: IndexQuery) -> AsyncIterator[IndexPage]:
        """The same results in chunks as nodes answer; the continuation on the last."""
        ...

    def check_type(self, btype: bytes) -> None:
        """``NotFound`` unless bucket type ``btype`` exists and is active."""
        ...

    def type_props(self, btype: bytes) -> BucketProps:
        """The props every bucket of type ``btype`` starts from; ``NotFound`` if none."""
        ...

    async def fetch_datatype(self, bucket: bytes, key: bytes, opts: GetOptions) -> Datatype:
        """A data type's value; ``BadRequest`` for a bucket whose type holds none."""
        ...

    async def update_datatype(
        self,
        bucket: bytes,
        key: bytes,
        op: dict[str, Any],
        context: bytes | None,
        opts: PutOptions,
    ) -> Datatype | None:
        """Apply an operation (Riak's JSON shape); the value after it under
        ``opts.return_body``."""
        ...

    def bucket_props(self, bucket: bytes) -> BucketProps: ...

    def default_props(self) -> BucketProps: ...

    async def set_bucket_props(self, bucket: bytes, overrides: JSON) -> None:
        """Merge ``overrides`` into the bucket's props; ``BadRequest`` if invalid."""
        ...

    async def reset_bucket_props(self, bucket: bytes) -> None: ...

    def stats(self) -> JSON:
        """Riak-style counters and percentiles (the server caches it for about a second)."""
        ...

    def local_copy(self, bucket: bytes, key: bytes) -> FetchResult | None:
        """This node's own stored copy (primary data or hints), without any quorum."""
        ...


class AdminService(Protocol):
    """Cluster views and operations behind ``/admin``. Each returns JSON-ready data."""

    def members(self) -> JSON: ...

    def ring(self) -> JSON: ...

    def preflist(self, bucket: bytes, key: bytes) -> JSON: ...

    def handoff(self) -> JSON: ...

    async def backup(self, name: str) -> JSON:
        """Checkpoint this node into ``backup_root/name`` (``BadRequest`` when backups are
        off or the name is bad, ``Conflict`` when it exists): the manifest, size, time."""
        ...

    def health(self) -> list[str]:
        """Why this node cannot take writes now (a full disk, no cluster yet): empty
        when it can. ``/admin/health`` answers 503 with them (a readiness probe)."""
        ...

    def aae(self) -> JSON: ...

    async def join(self, seed: str) -> JSON: ...

    async def leave(self) -> JSON: ...

    def bucket_types(self) -> JSON: ...

    def bucket_type_status(self, name: str) -> JSON: ...

    async def create_bucket_type(self, name: str, props: JSON) -> JSON: ...

    async def update_bucket_type(self, name: str, props: JSON) -> JSON: ...

    async def activate_bucket_type(self, name: str) -> JSON:
        """``Conflict`` while some ring member does not hold the type yet."""
        ...

    async def remove(self, node: str, replacement: str | None = None) -> JSON:
        """Take a node that never comes back out of the ring (or hand its ranges to
        ``replacement``); ``Conflict`` while it still answers."""
        ...

    def metrics(self) -> bytes:
        """Prometheus text exposition."""
        ...


class NodeService(KVService, AdminService, Protocol):
    """Everything one node serves."""
