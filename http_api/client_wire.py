"""The wire side of our client (``http_api.client``): what goes to and comes back from a node.

The ``Request`` and ``Response`` an operation exchanges, the paths and query strings of the
HTTP API, the parsing of its responses into ``KVObject`` or the error the status calls for
(the errors are listed in ``http_api.client``), and the incremental parser of the key
stream. No I/O here: ``http_api.client`` re-exports every public name.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack
from urllib.parse import quote_plus, urlencode

from http_api import codec
from http_api.errors import (
    BadRequest,
    NotFound,
    Overloaded,
    PreconditionFailed,
    RequestTooLarge,
    ServiceError,
    Unavailable,
    UnsupportedMediaType,
    URITooLong,
)
from http_api.types import QUORUM_WORDS, Content, QuorumValue, Sibling

__all__ = [
    "DeleteParams", "KVObject", "ListStreamParser", "MalformedResponse", "QueryParams",
    "ReadParams", "Request", "Response", "SiblingsError", "UpdateParams", "WriteParams",
    "bucket_path", "error_for", "object_path", "parse_object", "quorum_query",
]  # fmt: skip


class SiblingsError(ValueError):
    """One value was asked of an object with several live siblings."""

    def __init__(self, bucket: str, key: str, count: int) -> None:
        super().__init__(
            f"{bucket}/{key} has {count} live siblings: pass a resolver (resolver=..., "
            "client.set_resolver) or read .siblings"
        )
        self.count = count


class MalformedResponse(ServiceError):
    """The node answered something the HTTP API does not allow: a bug on its side."""

    status = 502


@dataclass(frozen=True, slots=True)
class KVObject:
    """An object as read: its siblings (tombstones included) and its causal context.

    ``context`` is raw (the base64-decoded ``X-Riak-Vclock``): write it back and the write
    supersedes every sibling read. A tombstone reads as no siblings with a context.
    """

    bucket: str
    key: str
    siblings: list[Sibling] = field(default_factory=list)
    context: bytes | None = None

    @property
    def live(self) -> list[Sibling]:
        return [s for s in self.siblings if not s.content.deleted]

    @property
    def exists(self) -> bool:
        return any(not s.content.deleted for s in self.siblings)

    @property
    def has_siblings(self) -> bool:
        return len(self.live) > 1

    @property
    def tombstone(self) -> bool:
        return not self.exists and self.context is not None

    @property
    def content(self) -> Content | None:
        """The live sibling's content; None if there is none, ``SiblingsError`` if several."""
        live = self.live
        if len(live) > 1:
            raise SiblingsError(self.bucket, self.key, len(live))
        return live[0].content if live else None

    @property
    def value(self) -> bytes | None:
        content = self.content
        return content.value if content is not None else None


# --- Requests and responses ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    method: str
    path: str  # path and query string, quoted, relative to the client's base URL
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for n, v in self.headers if n.lower() == low), None)


# --- Paths and query strings ---------------------------------------------------------------


def bucket_path(bucket: str) -> str:
    return f"/buckets/{quote_plus(bucket)}"


def object_path(bucket: str, key: str) -> str:
    """``/buckets/{bucket}/keys/{key}``, each ``quote_plus``-ed: ``a b`` -> ``a+b``."""
    return f"{bucket_path(bucket)}/keys/{quote_plus(key)}"


class ReadParams(TypedDict, total=False):
    r: QuorumValue | None
    pr: QuorumValue | None
    basic_quorum: bool | None
    notfound_ok: bool | None
    timeout_ms: int | None


class WriteParams(TypedDict, total=False):
    w: QuorumValue | None
    dw: QuorumValue | None
    pw: QuorumValue | None
    timeout_ms: int | None


class DeleteParams(WriteParams, total=False):
    rw: QuorumValue | None
    r: QuorumValue | None
    pr: QuorumValue | None


class UpdateParams(ReadParams, WriteParams, total=False):
    pass


class QueryParams(DeleteParams, ReadParams, total=False):
    return_body: bool | None


_QUORUM_NAMES = frozenset({"r", "pr", "w", "dw", "pw", "rw"})
_FLAGS = {"basic_quorum": "basic_quorum", "notfound_ok": "notfound_ok", "return_body": "returnbody"}


def _query(params: Mapping[str, object]) -> str:
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if value is None:
            continue
        if name in _QUORUM_NAMES:
            if not (value in QUORUM_WORDS or (type(value) is int and value >= 0)):
                raise ValueError(f"{name}={value!r}: use an integer >= 0 or one of {QUORUM_WORDS}")
            pairs.append((name, str(value)))
        elif name in _FLAGS:
            if not isinstance(value, bool):
                raise ValueError(f"{name}={value!r}: use True, False or None (the default)")
            pairs.append((_FLAGS[name], "true" if value else "false"))
        elif name == "timeout_ms":
            if type(value) is not int or value < 1:
                raise ValueError(f"timeout_ms={value!r}: use a positive number of milliseconds")
            pairs.append(("timeout", str(value)))
        else:
            raise TypeError(f"unknown parameter {name!r}")
    return "?" + urlencode(pairs) if pairs else ""


def quorum_query(**params: Unpack[QueryParams]) -> str:
    """``?r=2&returnbody=true``: the parameters set (None means the bucket's default)."""
    return _query(params)


# --- Responses -----------------------------------------------------------------------------

_ERRORS: dict[int, type[ServiceError]] = {
    400: BadRequest,
    404: NotFound,
    412: PreconditionFailed,
    413: RequestTooLarge,
    414: URITooLong,
    415: UnsupportedMediaType,
    503: Unavailable,
}


def error_for(response: Response) -> ServiceError:
    """The exception for an error response, with the response text as its message."""
    message = response.body.decode("utf-8", "replace").strip() or f"HTTP {response.status}"
    retry_after = response.header("Retry-After")
    if response.status == 503 and retry_after is not None:
        seconds = retry_after.strip()
        return Overloaded(message, int(seconds) if seconds.isdigit() else 1)
    cls = _ERRORS.get(response.status)
    if cls is not None:
        return cls(message)
    error = ServiceError(message)
    error.status = response.status
    return error


def _malformed(response: Response, what: str) -> MalformedResponse:
    return MalformedResponse(f"HTTP {response.status} response {what}")


def _context(response: Response) -> bytes | None:
    raw = (response.header("X-Riak-Vclock") or "").strip()
    try:
        return base64.b64decode(raw, validate=True) if raw else None
    except (binascii.Error, ValueError):
        raise _malformed(response, "has an X-Riak-Vclock that is not base64")


def _boundary(content_type: str) -> str | None:
    main, _, rest = content_type.partition(";")
    for param in rest.split(";") if main.strip().lower() == "multipart/mixed" else ():
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"')
    return None


def parse_object(bucket: str, key: str, response: Response) -> KVObject:
    """A GET (or a ``returnbody`` write) response: 200 one sibling, 300 multipart siblings,
    404 not found (a tombstone when it carries a context); other statuses raise."""
    if response.status not in (200, 201, 300, 404):
        raise error_for(response)
    context = _context(response)
    if response.status == 404:
        return KVObject(bucket, key, [], context)
    if response.status == 300:
        boundary = _boundary(response.header("Content-Type") or "")
        if boundary is None:
            raise _malformed(response, "has siblings but no multipart/mixed body")
        parts = codec.parse_multipart(response.body, boundary)
        return KVObject(bucket, key, [Sibling(vtag=v, content=c) for v, c in parts], context)
    vtag, content = codec.content_from_response_headers(response.headers, response.body)
    return KVObject(bucket, key, [Sibling(vtag=vtag, content=content)], context)


def _json_field(response: Response, name: str) -> Any:
    """The JSON object of a 200 response, or its field ``name`` if given."""
    if response.status != 200:
        raise error_for(response)
    try:
        data = json.loads(response.body)
    except ValueError:
        raise _malformed(response, "is not JSON")
    if not isinstance(data, dict) or (name and name not in data):
        raise _malformed(response, f"is not a JSON object with {name or 'fields'!r}")
    return data[name] if name else data


def _names(items: object, field_name: str) -> list[str]:
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise MalformedResponse(f"{field_name!r} is not a list of strings")
    return items


class ListStreamParser:
    """Incremental parser of a ``?keys=stream`` (or ``?buckets=stream``) body: JSON objects
    back to back, ``{"keys": [...]}`` each, cut into chunks anywhere (even inside a UTF-8
    character). It buffers only the object not yet complete."""

    def __init__(self, field_name: str = "keys") -> None:
        self.field_name = field_name
        self.items: list[str] = []
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._decoder = json.JSONDecoder()
        self._buffer = ""

    def feed(self, chunk: bytes, final: bool = False) -> list[str]:
        """The names ``chunk`` completes (also appended to ``items``)."""
        try:
            text = self._utf8.decode(chunk, final)
        except UnicodeDecodeError:
            raise MalformedResponse(f"the {self.field_name} stream is not UTF-8")
        self._buffer += text
        return self._drain() if "}" in text else []

    def finish(self) -> list[str]:
        """All the names, once the body has ended; raises if it ended inside an object."""
        self.feed(b"", final=True)
        if self._buffer.strip():
            raise MalformedResponse(
                f"the {self.field_name} stream ends inside a JSON object: {self._buffer[:80]!r}"
            )
        return self.items

    def _drain(self) -> list[str]:
        found: list[str] = []
        buffer, pos = self._buffer, 0
        while True:
            while pos < len(buffer) and buffer[pos].isspace():
                pos += 1
            try:
                obj, pos = self._decoder.raw_decode(buffer, pos)
            except json.JSONDecodeError:
                break
            if not isinstance(obj, dict) or self.field_name not in obj:
                raise MalformedResponse(f"the {self.field_name} stream holds {obj!r}")
            found.extend(_names(obj[self.field_name], self.field_name))
        self._buffer = buffer[pos:]
        self.items.extend(found)
        return found
