"""Secondary index queries in our PB client, both ways (no I/O): the ``RpbIndexReq`` of
``index`` (``pb_api.client_core.PbClientCore.index_op``) and its ``RpbIndexResp``
answers as the HTTP client's ``IndexResult``, so both clients return the same thing.

    page = client.index("users", "age_int", 20, 29, max_results=100)      # a range, paged
    client.index("users", "age_int", 20, 29, return_terms=True).results  # [(23, "ann"), ...]
    client.index("users", "$bucket", "users", stream=True).keys          # every key
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Unpack

from google.protobuf.message import Message

from http_api.client_index import IndexOptions, IndexResult, Term
from pb_api.proto import riak_kv_pb2 as kv


def index_req(
    bucket: str, name: str, start: Term, end: Term | None = None, **opts: Unpack[IndexOptions]
) -> kv.RpbIndexReq:
    """The request: ``eq`` for one term, ``range`` from ``start`` to ``end``; options only
    when asked (as Riak's clients send them)."""
    req = kv.RpbIndexReq(bucket=bucket.encode(), index=name.encode())
    if end is None:
        req.qtype = kv.RpbIndexReq.eq
        req.key = str(start).encode()
    else:
        req.qtype = kv.RpbIndexReq.range
        req.range_min, req.range_max = str(start).encode(), str(end).encode()
    if (max_results := opts.get("max_results")) is not None:
        req.max_results = max_results
    if continuation := opts.get("continuation"):
        req.continuation = continuation.encode()
    if opts.get("return_terms"):
        req.return_terms = True
    if (term_regex := opts.get("term_regex")) is not None:
        req.term_regex = term_regex.encode()
    if opts.get("stream"):
        req.stream = True
    if (timeout_ms := opts.get("timeout_ms")) is not None:
        req.timeout = timeout_ms
    if (bucket_type := opts.get("bucket_type")) is not None:
        req.type = bucket_type.encode()
    return req


def index_result(name: str, answer: Iterable[Message | None]) -> IndexResult:
    """Every response of one query as one result: keys each once in the node's order (a
    ``results`` pair's key included, as the HTTP client), ``_int`` terms as integers, and
    the continuation the node sent (None on the last page)."""
    as_int = name.lower().endswith("_int")
    keys: dict[str, None] = {}
    results: list[tuple[Term, str]] = []
    continuation = None
    for resp in answer:
        if not isinstance(resp, kv.RpbIndexResp):
            raise TypeError(f"an index query answered with {type(resp).__name__}")
        for raw in resp.keys:
            keys.setdefault(raw.decode())
        for pair in resp.results:
            term, key = pair.key.decode(), pair.value.decode()
            results.append((int(term) if as_int else term, key))
            keys.setdefault(key)
        if resp.HasField("continuation"):
            continuation = resp.continuation.decode()
    return IndexResult(list(keys), results, continuation)


__all__ = ["index_req", "index_result"]
