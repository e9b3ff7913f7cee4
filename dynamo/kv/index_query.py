"""Coverage queries across the cluster: secondary indexes, ``$bucket``/``$key``, and key
and bucket listing, each range of the ring answered by exactly one replica.

The coordinator takes a plan from ``ring.coverage`` (few nodes, itself first, varied
between queries), asks each planned node for pages of what it holds in its ranges,
and merges them in Riak's order (term, then key). A node that fails mid-query has its
remaining ranges planned again among the others, resumed after the last entry it
gave. Keys a node holds only as hints are never answered (hints are not indexed).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from dynamo.kv import index
from dynamo.kv import object as objects
from dynamo.kv.index import Entry, Scan
from dynamo.kv.replica import Replica
from dynamo.net import methods
from dynamo.net.methods import IndexPageReply, IndexPageRequest, Ranges
from dynamo.net.rpc import Call, RpcError
from dynamo.net.schema import Method
from dynamo.node.cluster import Cluster
from dynamo.storage.contract import CF_INDEX, StoreAPI
from http_api.errors import RequestTooLarge, Unavailable
from http_api.indexes import BUCKET_FIELD, KEY_FIELD, IndexPage, IndexQuery
from ring import coverage
from ring.coverage import Coverage
from ring.position import storage_key_bkey

log = logging.getLogger(__name__)

PAGE = 1000  # entries a node sends per call
DEFAULT_TIMEOUT_MS = 60_000


class IndexQueries:
    def __init__(
        self,
        node_id: str,
        replica: Replica,
        cluster: Cluster,
        call: Call,
        *,
        max_results: int,
        rng: random.Random | None = None,
    ) -> None:
        self.node_id = node_id
        self.replica = replica
        self.cluster = cluster
        self.call = call
        self.max_results = max_results
        self.rng = rng or random.Random()
        self.queries = 0
        self.replans = 0

    def register(self, register: Callable[[Method[Any, Any], Any], None]) -> None:
        register(methods.INDEX, self.handle_index)
        register(methods.BUCKETS, self.handle_buckets)

    # --- Planning -------------------------------------------------------------------------

    def _up(self) -> list[str]:
        return [n for n in self.cluster.ring.members if self.cluster.is_up(n)]

    def plan(self, bucket: bytes) -> list[Coverage]:
        n = self.cluster.bucket_props(bucket).n_val
        p = coverage.plan(
            self.cluster.ring, n, self._up(), prefer=self.node_id, seed=self.rng.getrandbits(32)
        )
        if not p.complete:
            raise Unavailable(
                f"{len(p.uncovered)} ranges of the ring have no replica up: the query cannot"
                " cover every key; retry once nodes are back"
            )
        return list(p.parts)

    # --- Asking one node ------------------------------------------------------------------

    async def _ask(
        self, node: str, s: Scan, ranges: Ranges, after: Entry | None, limit: int
    ) -> IndexPageReply:
        req = IndexPageRequest(s.bucket, s.name, s.lo, s.hi, s.regex, ranges, after, limit)
        if node == self.node_id:
            return self.handle_index(req, node)
        timeout = self.cluster.config.rpc_timeout_ms / 1000
        reply: IndexPageReply = await self.call(node, methods.INDEX, req, timeout)
        return reply

    async def _part(
        self, s: Scan, part: Coverage, after: Entry | None, failed: set[str], page: int = PAGE
    ) -> AsyncGenerator[list[Entry]]:
        """Pages of one part of a plan, in order; if its node fails, its ranges are asked
        of the others from where it stopped."""
        while True:
            try:
                reply = await self._ask(part.node, s, part.ranges, after, page)
            except RpcError as e:
                failed.add(part.node)
                self.replans += 1
                log.info("coverage query: %s failed (%s); planning its ranges again", part.node, e)
                n = self.cluster.bucket_props(s.bucket).n_val
                again = coverage.replan(
                    self.cluster.ring,
                    n,
                    self._up(),
                    part,
                    exclude=failed,
                    seed=self.rng.getrandbits(32),
                )
                if not again.complete:
                    raise Unavailable(
                        f"node {part.node} did not answer ({e}) and no other replica of its"
                        " ranges is up: retry"
                    )
                for sub in again.parts:
                    async for entries in self._part(s, sub, after, failed, page):
                        yield entries
                return
            if reply.entries:
                yield reply.entries
                after = reply.entries[-1]
            if not reply.more:
                return

    async def _take(
        self, s: Scan, part: Coverage, after: Entry | None, limit: int, failed: set[str]
    ) -> tuple[list[Entry], bool]:
        """Up to ``limit`` entries of one part; True when it holds more."""
        out: list[Entry] = []
        pages = self._part(s, part, after, failed, min(PAGE, limit + 1))
        async for page in pages:
            out.extend(page)
            if len(out) > limit:
                await pages.aclose()
                return out[:limit], True
        return out, False

    # --- Queries --------------------------------------------------------------------------

    async def query(self, bucket: bytes, q: IndexQuery) -> IndexPage:
        """One page (with ``max_results``) or every result (up to the node's cap)."""
        self.queries += 1
        s = index.scan_of(bucket, q)
        after = index.decode_continuation(bucket, q)
        limit = q.max_results or self.max_results
        failed: set[str] = set()
        async with self._deadline(q):
            taken = await asyncio.gather(
                *(self._take(s, p, after, limit, failed) for p in self.plan(bucket))
            )
        entries = index.merged(e for e, _ in taken)
        more = any(m for _, m in taken) or len(entries) > limit
        if q.max_results is None and more:
            raise RequestTooLarge(
                f"the query matches more than {self.max_results} results: page it with"
                " max_results and continuation (or stream it with stream=true)"
            )
        entries = entries[:limit]
        cont = index.encode_continuation(bucket, q, entries[-1]) if more and entries else None
        return IndexPage(results=self._terms(q, entries), continuation=cont)

    async def stream(self, bucket: bytes, q: IndexQuery) -> AsyncIterator[IndexPage]:
        """Pages as nodes answer (unsorted across nodes, as Riak streams); with
        ``max_results``, the one sorted page in chunks, its continuation on the last."""
        if q.max_results is not None:
            page = await self.query(bucket, q)
            for i in range(0, len(page.results), PAGE):
                last = i + PAGE >= len(page.results)
                yield IndexPage(
                    results=page.results[i : i + PAGE],
                    continuation=page.continuation if last else None,
                )
            if not page.results:
                yield page
            return
        self.queries += 1
        s = index.scan_of(bucket, q)
        after = index.decode_continuation(bucket, q)
        failed: set[str] = set()
        async with self._deadline(q):
            for part in self.plan(bucket):
                async for entries in self._part(s, part, after, failed):
                    yield IndexPage(results=self._terms(q, entries))

    def _deadline(self, q: IndexQuery) -> Any:
        return _Deadline((q.timeout_ms or DEFAULT_TIMEOUT_MS) / 1000)

    @staticmethod
    def _terms(q: IndexQuery, entries: list[Entry]) -> tuple[tuple[str, bytes], ...]:
        """The results; terms decoded only when the answer shows them."""
        if not q.with_terms:
            return tuple(("", k) for _, k in entries)
        return tuple((index.decode_term(q.name, t), k) for t, k in entries)

    async def keys(self, bucket: bytes, timeout_ms: int) -> AsyncIterator[list[bytes]]:
        """A bucket's live keys in pages: the ``$bucket`` query, streamed."""
        q = IndexQuery(name=BUCKET_FIELD, start="", timeout_ms=timeout_ms)
        async for page in self.stream(bucket, q):
            if page.results:
                yield [k for _, k in page.results]

    async def buckets(self, timeout_s: float) -> AsyncIterator[list[bytes]]:
        """Buckets with a live key, each node asked for its ranges of the default n_val."""
        seen: set[bytes] = set()
        n = self.cluster.default_props().n_val
        p = coverage.plan(
            self.cluster.ring, n, self._up(), prefer=self.node_id, seed=self.rng.getrandbits(32)
        )
        if not p.complete:
            raise Unavailable("ranges of the ring have no replica up: retry listing buckets")
        for part in p.parts:
            try:
                if part.node == self.node_id:
                    names = self.handle_buckets(part.ranges, part.node)
                else:
                    names = await self.call(part.node, methods.BUCKETS, part.ranges, timeout_s)
            except RpcError as e:
                raise Unavailable(f"listing buckets: node {part.node} did not answer ({e}); retry")
            new = [b for b in names if b not in seen]
            seen.update(new)
            if new:
                yield new

    # --- Answering ------------------------------------------------------------------------

    def handle_index(self, req: IndexPageRequest, peer: str) -> IndexPageReply:
        return answer(self.replica.store, req)

    def handle_buckets(self, ranges: Ranges | None, peer: str) -> list[bytes]:
        """Buckets with a live key in ``ranges`` (all this node holds for None: an old peer)."""
        store = self.replica.store
        bounds = index.object_bounds(ranges) if ranges is not None else [(b"", None)]
        out: set[bytes] = set()
        for start, end in bounds:
            for objkey, raw in store.scan(start, end):
                b, _ = storage_key_bkey(objkey)
                if b not in out and not objects.is_tombstone(objects.decode(raw)[0]):
                    out.add(b)
        return sorted(out)


def answer(store: StoreAPI, req: IndexPageRequest) -> IndexPageReply:
    """One node's page: its entries in ``req.ranges`` past ``req.after``, sorted."""
    s = Scan(req.bucket, req.name, req.lo, req.hi, req.regex)
    limit = max(1, min(req.limit, PAGE))
    if req.name in (BUCKET_FIELD, KEY_FIELD):
        rows = (
            (objkey, objects.is_tombstone(objects.decode(raw)[0]))
            for start, end in index.object_bounds(req.ranges)
            for objkey, raw in store.scan(start, end)
        )
        entries, more = index.key_page(rows, s, req.after, limit)
    else:
        start, end = index.index_bounds(s, req.after)
        entries, more = index.term_page(
            store.scan(start, end, CF_INDEX), s, req.ranges, req.after, limit
        )
    return IndexPageReply(entries, more)


class _Deadline:
    """``asyncio.timeout`` whose expiry is a 503 that says what to do."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._cm = asyncio.timeout(seconds)

    async def __aenter__(self) -> None:
        await self._cm.__aenter__()

    async def __aexit__(self, et: Any, e: Any, tb: Any) -> bool:
        try:
            await self._cm.__aexit__(et, e, tb)
        except TimeoutError:
            raise Unavailable(
                f"the query did not finish in {self.seconds:g} s: narrow it, page it with"
                " max_results, or raise timeout"
            ) from None
        return False
