"""Our Python client for the Riak-compatible HTTP API: a pure core and two thin shells.

``ClientCore`` does everything but I/O, in the sans-I/O manner of h11: each operation
(``get_op``, ``update_op``, ...) is a generator that yields the steps it needs carried out
(a ``Request``, a ``Streamed`` request, a ``Backoff``), is sent back each ``Response`` and
returns the result. ``AsyncClient`` (aiohttp, below) and ``Client`` (``http.client``, in
``http_api.client_sync``) turn every ``x_op`` into a method ``x`` that carries them out.
The wire-level pieces (requests, responses and their parsing, paths and query strings) are
in ``http_api.client_wire``, re-exported here.

Errors, raised from the status the node answered with (the message is its body)::

    ServiceError                  any other status, kept in ``.status``
    ├── BadRequest (400)          └── URITooLong (414)
    ├── NotFound (404)            on a route other than an object's
    ├── PreconditionFailed (412)  ``if_none_match`` and the key has a live value
    ├── RequestTooLarge (413)
    ├── UnsupportedMediaType (415)
    ├── Unavailable (503)         quorum not met or timed out: ``update`` retries it
    │   └── Overloaded (503)      sent with ``Retry-After``: ``.retry_after_s``
    └── MalformedResponse (502)   the node answered what the API does not allow (its bug)
    SiblingsError (ValueError)    one value asked of several live siblings: use a resolver

Transport failures stay the library's own (``aiohttp.ClientError``, ``OSError``).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeAlias, TypeVar, Unpack
from urllib.parse import unquote_plus, urlsplit

import aiohttp
from yarl import URL

from http_api import codec
from http_api.client_datatypes import HttpDatatypeOps
from http_api.client_index import HttpIndexOps, IndexResult
from http_api.client_ops import (
    Backoff,
    update_backoff_s,
    update_cycle,
)
from http_api.client_wire import (
    DeleteParams,
    KVObject,
    ListStreamParser,
    MalformedResponse,
    QueryParams,
    ReadParams,
    Request,
    Response,
    SiblingsError,
    UpdateParams,
    WriteParams,
    _json_field,
    _malformed,
    _names,
    _query,
    bucket_path,
    error_for,
    object_path,
    parse_object,
    quorum_query,
)
from http_api.resolvers import Resolver, Resolvers

__all__ = [
    "AsyncClient", "Backoff", "ClientCore", "DeleteParams", "IndexResult", "KVObject",
    "ListStreamParser", "MalformedResponse", "QueryParams", "ReadParams", "Request", "Response",
    "SiblingsError", "Streamed", "UpdateParams", "WriteParams", "bucket_path", "drive",
    "error_for", "object_path", "parse_object", "quorum_query", "update_backoff_s",
    "update_cycle",
]  # fmt: skip

P = ParamSpec("P")
T = TypeVar("T")
Auth: TypeAlias = str | tuple[str, str]  # a bearer token, or (user, password) for Basic
Indexes: TypeAlias = Iterable[tuple[str, str | int]]  # [("age_int", 42), ("tag_bin", "x")]

ACCEPT_OBJECT = "multipart/mixed, application/json, */*;q=0.5"
USER_AGENT = "dynamo-client/0.1"
DEFAULT_BINARY_TYPE = "application/octet-stream"
DEFAULT_TEXT_TYPE = "text/plain; charset=utf-8"
STREAM_READ_BYTES = 64 * 1024


# --- Steps an operation asks its shell to carry out ----------------------------------------


@dataclass(frozen=True, slots=True)
class Streamed:
    """A request whose 200 body the shell feeds to ``parser`` chunk by chunk, leaving
    ``Response.body`` empty; a body of any other status is read whole."""

    request: Request
    parser: ListStreamParser


Step: TypeAlias = Request | Streamed | Backoff
Op: TypeAlias = Generator[Step, Response | None, T]


def _call(step: Request | Streamed) -> Generator[Step, Response | None, Response]:
    response = yield step
    assert response is not None, "a shell answers every request with a Response"
    return response


def drive(
    op: Op[T], exchange: Callable[[Request | Streamed], Response], sleep: Callable[[float], object]
) -> T:
    """Run ``op`` to its result with a blocking ``exchange`` and ``sleep``."""
    try:
        step = next(op)
        while True:
            if isinstance(step, Backoff):
                sleep(step.delay_s)
                step = op.send(None)
            else:
                step = op.send(exchange(step))
    except StopIteration as stop:
        result: T = stop.value
        return result
    finally:
        op.close()


# --- The core both flavours share ----------------------------------------------------------


class ClientCore(Resolvers, HttpDatatypeOps, HttpIndexOps):
    """Base URL, headers, resolvers, and every operation as a generator of steps (no I/O).

    Resolver precedence on a read: the call's ``resolver=``, else the bucket's
    (``set_resolver``), else the client's (constructor). With none, several live siblings
    are returned as they are.
    """

    def __init__(
        self,
        base_url: str,
        *,
        resolver: Resolver | None = None,
        timeout_s: float = 10.0,
        auth: Auth | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url {base_url!r}: use http://host:port")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s!r}: use a positive number of seconds")
        super().__init__(resolver)
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers: tuple[tuple[str, str], ...] = (("User-Agent", USER_AGENT),)
        if isinstance(auth, str):
            self._headers += (("Authorization", f"Bearer {auth}"),)
        elif auth is not None:
            basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self._headers += (("Authorization", f"Basic {basic}"),)

    def request(
        self, method: str, path: str, headers: tuple[tuple[str, str], ...] = (), body: bytes = b""
    ) -> Request:
        has_body = bool(body) or method in ("PUT", "POST")
        return Request(
            method=method,
            path=path,
            headers=self._headers + headers,
            body=body if has_body else None,
        )

    def write_request(
        self,
        method: str,
        path: str,
        value: bytes | str,
        content_type: str | None,
        meta: Mapping[str, str] | None,
        context: bytes | None = None,
        if_none_match: bool = False,
        indexes: Indexes | None = None,
    ) -> Request:
        if isinstance(value, str):
            body, ctype = value.encode(), content_type or DEFAULT_TEXT_TYPE
        else:
            body, ctype = bytes(value), content_type or DEFAULT_BINARY_TYPE
        headers = [("Content-Type", ctype), ("Accept", ACCEPT_OBJECT)]
        if context:
            headers.append(("X-Riak-Vclock", base64.b64encode(context).decode()))
        if if_none_match:
            headers.append(("If-None-Match", "*"))
        headers.extend((f"X-Riak-Meta-{name}", v) for name, v in (meta or {}).items())
        fields = ((name, str(v)) for name, v in indexes or ())
        headers.extend((f"X-Riak-Index-{name}", v) for name, v in codec.joined_indexes(fields))
        return self.request(method, path, tuple(headers), body)

    # --- Operations: the shells make ``x_op`` their method ``x`` ---------------------------

    def stats_op(self) -> Op[dict[str, Any]]:
        accept = (("Accept", "application/json"),)
        stats: dict[str, Any] = _json_field(
            (yield from _call(self.request("GET", "/stats", accept))), ""
        )
        return stats

    def get_op(
        self,
        bucket: str,
        key: str,
        *,
        resolver: Resolver | None = None,
        **params: Unpack[ReadParams],
    ) -> Op[KVObject]:
        """Read an object; with several live siblings and a resolver, resolve them."""
        path = object_path(bucket, key) + _query(params)
        response = yield from _call(self.request("GET", path, (("Accept", ACCEPT_OBJECT),)))
        return self.resolved(parse_object(bucket, key, response), resolver)

    def put_op(
        self,
        bucket: str,
        key: str,
        value: bytes | str,
        *,
        content_type: str | None = None,
        context: bytes | None = None,
        meta: Mapping[str, str] | None = None,
        return_body: bool = False,
        if_none_match: bool = False,
        indexes: Indexes | None = None,
        **params: Unpack[WriteParams],
    ) -> Op[KVObject | None]:
        """Write a value (a str as UTF-8 text unless ``content_type`` says otherwise). Pass
        the context read to supersede what was read; without one the write may become a
        sibling. ``indexes``: secondary index entries, ``[("age_int", 42), ...]``. Returns
        the object written with ``return_body``, else None."""
        path = object_path(bucket, key) + _query({**params, "return_body": return_body or None})
        request = self.write_request(
            "PUT", path, value, content_type, meta, context, if_none_match, indexes
        )
        response = yield from _call(request)
        if response.status == 204:
            return None
        if response.status not in (200, 300):
            raise error_for(response)
        return parse_object(bucket, key, response)

    def store_op(
        self,
        obj: KVObject,
        value: bytes | str,
        *,
        content_type: str | None = None,
        meta: Mapping[str, str] | None = None,
        return_body: bool = False,
        indexes: Indexes | None = None,
        **params: Unpack[WriteParams],
    ) -> Op[KVObject | None]:
        """``put`` to ``obj``'s key with its context: supersedes what ``obj`` was read with."""
        return (
            yield from self.put_op(
                obj.bucket, obj.key, value, content_type=content_type, context=obj.context,
                meta=meta, return_body=return_body, indexes=indexes, **params,
            )
        )  # fmt: skip

    def post_op(
        self,
        bucket: str,
        value: bytes | str,
        *,
        content_type: str | None = None,
        meta: Mapping[str, str] | None = None,
        indexes: Indexes | None = None,
        **params: Unpack[WriteParams],
    ) -> Op[str]:
        """Store under a key the node chooses; returns that key."""
        path = bucket_path(bucket) + "/keys" + _query(params)
        request = self.write_request("POST", path, value, content_type, meta, indexes=indexes)
        response = yield from _call(request)
        location = response.header("Location") or ""
        if response.status != 201:
            raise error_for(response)
        if "/keys/" not in location:
            raise _malformed(response, "has no Location /buckets/{bucket}/keys/{key}")
        return unquote_plus(location.rsplit("/keys/", 1)[1])

    def delete_op(
        self, bucket: str, key: str, *, context: bytes | None = None, **params: Unpack[DeleteParams]
    ) -> Op[bool]:
        """Write a tombstone (over ``context``, else over what the node reads); False if
        there was nothing to delete."""
        headers = (("X-Riak-Vclock", base64.b64encode(context).decode()),) if context else ()
        path = object_path(bucket, key) + _query(params)
        response = yield from _call(self.request("DELETE", path, headers))
        if response.status not in (204, 404):
            raise error_for(response)
        return response.status == 204

    def _list(self, path: str, name: str, stream: bool) -> Op[list[str]]:
        request = self.request("GET", f"{path}?{name}={'stream' if stream else 'true'}")
        if not stream:
            return _names(_json_field((yield from _call(request)), name), name)
        parser = ListStreamParser(name)
        response = yield from _call(Streamed(request, parser))
        if response.status != 200:
            raise error_for(response)
        return parser.finish()

    def list_keys_op(self, bucket: str, stream: bool = False) -> Op[list[str]]:
        """The bucket's live keys (an expensive call). ``stream``: bounded memory per chunk."""
        return (yield from self._list(bucket_path(bucket) + "/keys", "keys", stream))

    def list_buckets_op(self, stream: bool = False) -> Op[list[str]]:
        return (yield from self._list("/buckets", "buckets", stream))

    def get_bucket_props_op(self, bucket: str) -> Op[dict[str, Any]]:
        response = yield from _call(self.request("GET", bucket_path(bucket) + "/props"))
        props = _json_field(response, "props")
        if not isinstance(props, dict):
            raise _malformed(response, "has props that are not a JSON object")
        return props

    def _props_change(self, request: Request) -> Op[None]:
        response = yield from _call(request)
        if response.status != 204:
            raise error_for(response)

    def set_bucket_props_op(self, bucket: str, props: Mapping[str, object]) -> Op[None]:
        body = json.dumps({"props": dict(props)}).encode()
        json_type = (("Content-Type", "application/json"),)
        yield from self._props_change(
            self.request("PUT", bucket_path(bucket) + "/props", json_type, body)
        )

    def reset_bucket_props_op(self, bucket: str) -> Op[None]:
        yield from self._props_change(self.request("DELETE", bucket_path(bucket) + "/props"))

    def update_op(
        self,
        bucket: str,
        key: str,
        fn: Callable[[bytes | None], bytes],
        *,
        resolver: Resolver | None = None,
        retries: int = 5,
        content_type: str | None = None,
        return_body: bool = False,
        **params: Unpack[UpdateParams],
    ) -> Op[KVObject | None]:
        """Read-modify-write with the read's context (``update_cycle``)."""
        return (
            yield from update_cycle(
                self, bucket, key, fn, resolver=resolver, retries=retries,
                content_type=content_type, return_body=return_body, **params,
            )
        )  # fmt: skip

    def preflist_op(self, bucket: str, key: str) -> Op[list[dict[str, Any]]]:
        """The key's active preference list, as Riak: ``partition``, ``node``, ``primary``."""
        response = yield from _call(self.request("GET", object_path(bucket, key) + "/preflist"))
        items = _json_field(response, "preflist")
        if not isinstance(items, list):
            raise _malformed(response, "has a preflist that is not a list")
        return items


# --- The asyncio flavour -------------------------------------------------------------------


def _async(
    op: Callable[Concatenate[ClientCore, P], Op[T]],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]:
    @functools.wraps(op)
    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._drive(op(self, *args, **kwargs))

    method.__name__ = op.__name__.removesuffix("_op")
    method.__qualname__ = f"AsyncClient.{method.__name__}"
    return method


class AsyncClient(ClientCore):
    """The client on aiohttp: ``async with AsyncClient(url) as c:``, or call ``close()``.

    ``session``: an aiohttp session to share (``close()`` leaves it open); by default the
    client opens its own on first use. Every request is bounded by ``timeout_s``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        resolver: Resolver | None = None,
        timeout_s: float = 10.0,
        session: aiohttp.ClientSession | None = None,
        auth: Auth | None = None,
    ) -> None:
        super().__init__(base_url, resolver=resolver, timeout_s=timeout_s, auth=auth)
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _exchange(self, step: Request | Streamed) -> Response:
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=False)
        request = step.request if isinstance(step, Streamed) else step
        async with self._session.request(
            request.method,
            URL(self.base_url + request.path, encoded=True),
            headers=list(request.headers),
            data=request.body,
            timeout=self._timeout,
            allow_redirects=False,
            auto_decompress=False,
        ) as response:
            body = b""
            if isinstance(step, Streamed) and response.status == 200:
                async for chunk in response.content.iter_any():
                    step.parser.feed(chunk)
            else:
                body = await response.read()
            return Response(
                status=response.status, headers=tuple(response.headers.items()), body=body
            )

    async def _drive(self, op: Op[T]) -> T:
        try:
            step = next(op)
            while True:
                if isinstance(step, Backoff):
                    await asyncio.sleep(step.delay_s)
                    step = op.send(None)
                else:
                    step = op.send(await self._exchange(step))
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            op.close()

    async def ping(self) -> bool:
        """True if the node answers ``/ping`` with 200; False on any other answer or none."""
        try:
            return (await self._exchange(self.request("GET", "/ping"))).status == 200
        except (aiohttp.ClientError, OSError):
            return False

    stats = _async(ClientCore.stats_op)
    get = _async(ClientCore.get_op)
    put = _async(ClientCore.put_op)
    store = _async(ClientCore.store_op)
    post = _async(ClientCore.post_op)
    delete = _async(ClientCore.delete_op)
    list_keys = _async(ClientCore.list_keys_op)
    list_buckets = _async(ClientCore.list_buckets_op)
    get_bucket_props = _async(ClientCore.get_bucket_props_op)
    set_bucket_props = _async(ClientCore.set_bucket_props_op)
    reset_bucket_props = _async(ClientCore.reset_bucket_props_op)
    update = _async(ClientCore.update_op)
    preflist = _async(ClientCore.preflist_op)
    index = _async(ClientCore.index_op)
    fetch_datatype = _async(ClientCore.fetch_datatype_op)
    update_datatype = _async(ClientCore.update_datatype_op)
