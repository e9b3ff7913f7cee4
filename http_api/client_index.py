"""Secondary index queries in our HTTP client (no I/O): ``index_op`` for one page or every
result, streamed or not, and ``IndexResult``.

    page = client.index("users", "email_bin", "ann@example.com")          # exact match
    page = client.index("users", "age_int", 20, 29, max_results=100)       # a range, paged
    while page.continuation:
        page = client.index("users", "age_int", 20, 29, max_results=100,
                            continuation=page.continuation)
    client.index("users", "age_int", 20, 29, return_terms=True).results   # [(23, "ann"), ...]
    client.index("users", "$bucket", "users", stream=True).keys           # every key
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack
from urllib.parse import quote_plus, urlencode

from http_api.client_wire import Request, Response, _boundary, _malformed, error_for

Term = str | int


class IndexOptions(TypedDict, total=False):
    """A query's options, the same over HTTP and PB."""

    max_results: int | None  # one page of this many, with the next page's continuation
    continuation: str | None  # the previous page's, unchanged
    return_terms: bool  # on a range: (term, key) pairs in ``results``
    term_regex: str | None  # only terms this matches (not on _int indexes)
    stream: bool  # the node sends results as nodes answer
    timeout_ms: int | None
    bucket_type: str | None


@dataclass(frozen=True, slots=True)
class IndexResult:
    """Keys (each once, in the node's order), ``(term, key)`` pairs when terms were asked
    on a range, and the continuation of the next page (None on the last)."""

    keys: list[str] = field(default_factory=list)
    results: list[tuple[Term, str]] = field(default_factory=list)
    continuation: str | None = None


def index_path(bucket: str, name: str, start: Term, end: Term | None, btype: str | None) -> str:
    path = f"/buckets/{quote_plus(bucket)}/index/{quote_plus(name)}/{quote_plus(str(start))}"
    if end is not None:
        path += f"/{quote_plus(str(end))}"
    return f"/types/{quote_plus(btype)}{path}" if btype else path


def _term(name: str, raw: str) -> Term:
    return int(raw) if name.lower().endswith("_int") else raw


def _absorb(out: IndexResult, name: str, data: Any, response: Response) -> None:
    if not isinstance(data, dict):
        raise _malformed(response, "holds an index part that is not a JSON object")
    if "error" in data:
        broken = Response(status=503, body=str(data["error"]).encode())
        raise error_for(broken)  # the stream broke off after its 200
    for k in data.get("keys", []):
        if k not in out.keys:
            out.keys.append(k)
    for pair in data.get("results", []):
        ((term, k),) = pair.items()
        out.results.append((_term(name, term), k))
        if k not in out.keys:
            out.keys.append(k)


class HttpIndexOps:
    """``index_op`` over HTTP (no I/O)."""

    def request(
        self, method: str, path: str, headers: tuple[tuple[str, str], ...] = (), body: bytes = b""
    ) -> Request:
        raise NotImplementedError

    def index_op(
        self,
        bucket: str,
        name: str,
        start: Term,
        end: Term | None = None,
        **opts: Unpack[IndexOptions],
    ) -> Generator[Request, Response | None, IndexResult]:
        """Keys whose index ``name`` holds ``start`` (or a term from ``start`` to ``end``);
        ``$bucket`` and ``$key`` as Riak. One page of ``max_results`` with the next page's
        continuation, or every result; ``stream`` asks the node to send them as found."""
        stream = bool(opts.get("stream"))
        params = {
            "max_results": opts.get("max_results"),
            "continuation": opts.get("continuation"),
            "return_terms": "true" if opts.get("return_terms") else None,
            "term_regex": opts.get("term_regex"),
            "stream": "true" if stream else None,
            "timeout": opts.get("timeout_ms"),
        }
        pairs = [(k, str(v)) for k, v in params.items() if v is not None]
        path = index_path(bucket, name, start, end, opts.get("bucket_type"))
        path += "?" + urlencode(pairs) if pairs else ""
        response = yield self.request("GET", path)
        assert response is not None
        if response.status != 200:
            raise error_for(response)
        out = IndexResult()
        if not stream:
            try:
                data = json.loads(response.body)
            except ValueError:
                raise _malformed(response, "is not JSON")
            _absorb(out, name, data, response)
            cont = data.get("continuation")
            return IndexResult(out.keys, out.results, cont if isinstance(cont, str) else None)
        boundary = _boundary(response.header("Content-Type") or "")
        if boundary is None:
            raise _malformed(response, "is a stream without a multipart/mixed boundary")
        cont = None
        for part in _parts(response.body, boundary):
            try:
                data = json.loads(part)
            except ValueError:
                raise _malformed(response, "holds an index part that is not JSON")
            _absorb(out, name, data, response)
            if isinstance(data.get("continuation"), str):
                cont = data["continuation"]
        return IndexResult(out.keys, out.results, cont)


def _parts(body: bytes, boundary: str) -> list[bytes]:
    delim = re.compile(rb"\r?\n--" + re.escape(boundary.encode()) + rb"(?:--)?\r?\n?")
    out = []
    for part in delim.split(body)[1:]:
        _, sep, payload = part.partition(b"\r\n\r\n")
        if sep and payload.strip():
            out.append(payload)
    return out
