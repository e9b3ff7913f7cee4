"""Riak's secondary index queries over HTTP: ``/buckets/B/index/NAME/VALUE`` and
``/buckets/B/index/NAME/START/END`` (and under ``/types/T``).

- ``{"keys": [...]}``, or with ``return_terms=true`` on a range ``{"results":
  [{"term": "key"}, ...]}``; ``"continuation"`` when ``max_results`` was reached.
- ``stream=true``: ``multipart/mixed`` parts of the same JSON as nodes answer, the
  continuation in a last part of its own, as Riak streams.
- Parameters: ``max_results``, ``continuation``, ``return_terms``, ``term_regex``,
  ``timeout`` (ms; 0 or none: 60 s), ``pagination_sort`` (accepted: results
  are always sorted).
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from http_api import indexes, params
from http_api.errors import BadRequest, ServiceError
from http_api.guards import json_response
from http_api.indexes import IndexPage, IndexQuery
from http_api.service import NodeService

log = logging.getLogger(__name__)
MAX_RESULTS_LIMIT = 1_000_000


def _bool(q: dict[str, str], name: str) -> bool:
    raw = q.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise BadRequest(f"Invalid {name}. {q[name]!r} is not a boolean: use true or false")
    return raw == "true"


def parse(q: dict[str, str], rest: list[str]) -> IndexQuery:
    """The query of ``.../index/NAME/START[/END]`` and its parameters."""
    if len(rest) not in (2, 3):
        raise BadRequest(
            "use /buckets/{bucket}/index/{index}/{value} or .../index/{index}/{start}/{end}"
        )
    name = params.segment(rest[0], "index name").decode()
    terms = [_term(r) for r in rest[1:]]
    _bool(q, "pagination_sort")
    _bool(q, "stream")
    raw_max = q.get("max_results")
    max_results = None
    if raw_max is not None:
        if not (raw_max.isascii() and raw_max.isdigit()) or not 0 < int(raw_max) <= (
            MAX_RESULTS_LIMIT
        ):
            raise BadRequest(
                f"Invalid max_results. {raw_max!r} is not a positive integer"
                f" (at most {MAX_RESULTS_LIMIT})"
            )
        max_results = int(raw_max)
    timeout = q.get("timeout")
    timeout_ms = None if timeout in (None, "", "0") else params.timeout_ms(q)
    return indexes.query(
        name,
        terms[0],
        terms[1] if len(terms) == 2 else None,
        return_terms=_bool(q, "return_terms"),
        max_results=max_results,
        continuation=q.get("continuation"),
        term_regex=q.get("term_regex"),
        timeout_ms=timeout_ms,
    )


def _term(raw: str) -> str:
    try:
        return unquote_plus(raw, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("an index term is not valid UTF-8 once percent-decoded")


def body(query: IndexQuery, page: IndexPage, with_continuation: bool = True) -> dict[str, Any]:
    out: dict[str, Any]
    if query.with_terms:
        out = {"results": [{t: k.decode(errors="replace")} for t, k in page.results]}
    else:
        out = {"keys": [k.decode(errors="replace") for k in page.unique_keys()]}
    if with_continuation and page.continuation is not None:
        out["continuation"] = page.continuation
    return out


async def dispatch(
    svc: NodeService, request: web.Request, bucket: bytes, rest: list[str]
) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET"])
    q = dict(request.query)
    query = parse(q, rest)
    if not _bool(q, "stream"):
        return json_response(body(query, await svc.index_query(bucket, query)))
    boundary = secrets.token_hex(12)
    resp = web.StreamResponse(headers={"Content-Type": f"multipart/mixed; boundary={boundary}"})
    resp.enable_chunked_encoding()
    pages = svc.stream_index(bucket, query)
    first: IndexPage | None = None
    try:
        first = await anext(pages)  # errors before the first page are a plain 4xx or 503
    except StopAsyncIteration:
        pass
    await resp.prepare(request)
    continuation = None
    try:
        page = first
        while page is not None:
            continuation = page.continuation or continuation
            if page.results:
                await _part(resp, boundary, body(query, page, with_continuation=False))
            page = await anext(pages, None)
    except ServiceError as e:  # the status is sent: say it in a part, as Riak does
        await _part(resp, boundary, {"error": e.message})
        continuation = None
    if continuation is not None:
        await _part(resp, boundary, {"continuation": continuation})
    await resp.write(f"\r\n--{boundary}--\r\n".encode())
    await resp.write_eof()
    return resp


async def _part(resp: web.StreamResponse, boundary: str, data: dict[str, Any]) -> None:
    head = f"\r\n--{boundary}\r\nContent-Type: application/json\r\n\r\n"
    await resp.write(head.encode() + json.dumps(data).encode())
