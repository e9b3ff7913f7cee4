"""Riak's secondary index queries over PB: ``RpbIndexReq`` to the service's
``IndexQuery``, and its ``IndexPage`` answers back as ``RpbIndexResp``. The same
checked query HTTP builds (``http_api.indexes.query``), so the two front ends refuse
the same input with the same words. Pure conversions, and the handler over the service.

- ``qtype`` ``eq`` asks for the term in ``key``; ``range`` for ``range_min`` to
  ``range_max`` (both inclusive). ``$bucket`` and ``$key`` are asked the same way.
- ``return_terms`` on a range answers ``results`` (``RpbPair``: the term, the object's
  key); otherwise ``keys``, each once. ``continuation`` when more may follow.
- ``stream``: a response per chunk as nodes answer, then one with ``done`` (carrying the
  continuation, if any), as the listings end. Without it: one response.
- Riak's ``cover_context`` (parallel extraction) and ``return_body`` are refused with an
  ``RpbErrorResp`` saying so; ``pagination_sort`` is accepted (results are always sorted).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from http_api import indexes
from http_api.errors import BadRequest
from http_api.indexes import IndexPage, IndexQuery
from http_api.service import NodeService
from pb_api import convert
from pb_api.messages import Code, frame
from pb_api.proto import riak_kv_pb2 as kv
from pb_api.proto import riak_pb2 as core

#: The most results one page may ask for (``max_results``), as on HTTP.
MAX_RESULTS_LIMIT = 1_000_000


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise BadRequest(
            f"the {what} is not UTF-8: index names and terms are text (an _int term is its"
            " decimal digits)"
        )


def _terms(req: kv.RpbIndexReq) -> tuple[str, str | None]:
    """The term asked (eq), or the range's bounds."""
    if req.qtype == kv.RpbIndexReq.eq:
        if not req.HasField("key"):
            raise BadRequest(
                "an eq index query needs key: the term to match (for $bucket, the bucket's name)"
            )
        return _text(req.key, "index term (key)"), None
    if not (req.HasField("range_min") and req.HasField("range_max")):
        raise BadRequest(
            "a range index query needs both range_min and range_max (inclusive): for one term,"
            " send qtype eq with key"
        )
    return _text(req.range_min, "index term (range_min)"), _text(
        req.range_max, "index term (range_max)"
    )


def query_from_pb(req: kv.RpbIndexReq) -> IndexQuery:
    """The checked query an ``RpbIndexReq`` asks; ``BadRequest`` saying what to change."""
    if req.HasField("cover_context"):
        raise BadRequest(
            "cover_context is not supported: this node plans each query's coverage itself;"
            " send the query without it"
        )
    if req.return_body:
        raise BadRequest(
            "return_body is not supported on index queries: ask for the keys, then get each"
            " object (RpbGetReq)"
        )
    name = _text(req.index, "index name")
    start, end = _terms(req)
    max_results = req.max_results if req.HasField("max_results") else None
    if max_results is not None and max_results > MAX_RESULTS_LIMIT:
        raise BadRequest(
            f"max_results={max_results}: at most {MAX_RESULTS_LIMIT} a page (use the"
            " continuation for the next)"
        )
    continuation = req.continuation if req.HasField("continuation") else b""
    term_regex = req.term_regex if req.HasField("term_regex") else b""
    return indexes.query(
        name,
        start,
        end,
        return_terms=req.return_terms,
        max_results=max_results,
        continuation=_text(continuation, "continuation") or None,
        term_regex=_text(term_regex, "term_regex") or None,
        timeout_ms=convert.timeout_ms(req) if req.timeout else None,  # 0: the default, as Riak
    )


def page_to_pb(query: IndexQuery, page: IndexPage, *, continuation: bool = True) -> kv.RpbIndexResp:
    """One page: ``results`` when the query returns terms, else its ``keys`` (each once)."""
    if query.with_terms:
        pairs = [core.RpbPair(key=term.encode(), value=key) for term, key in page.results]
        resp = kv.RpbIndexResp(results=pairs)
    else:
        resp = kv.RpbIndexResp(keys=page.unique_keys())
    if continuation and page.continuation is not None:
        resp.continuation = page.continuation.encode()
    return resp


def done_to_pb(continuation: str | None) -> kv.RpbIndexResp:
    """A stream's last response: ``done``, and the continuation when more may follow."""
    resp = kv.RpbIndexResp(done=True)
    if continuation is not None:
        resp.continuation = continuation.encode()
    return resp


async def answer(
    svc: NodeService, bucket: bytes, query: IndexQuery, *, stream: bool
) -> AsyncIterator[bytes]:
    """The response frames to ``query`` of ``bucket`` (the store's name, type included)."""
    if not stream:
        page = await svc.index_query(bucket, query)
        yield frame(Code.INDEX_RESP, page_to_pb(query, page))
        return
    continuation = None
    async for page in svc.stream_index(bucket, query):
        continuation = page.continuation or continuation
        if page.results:
            yield frame(Code.INDEX_RESP, page_to_pb(query, page, continuation=False))
    yield frame(Code.INDEX_RESP, done_to_pb(continuation))


__all__ = ["MAX_RESULTS_LIMIT", "answer", "done_to_pb", "page_to_pb", "query_from_pb"]
