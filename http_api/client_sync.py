"""The blocking flavour of our client, on ``http.client``: one keep-alive connection each.

Everything but the socket work is ``http_api.client.ClientCore``'s (errors are listed
there); ``Client`` has the same methods as ``AsyncClient``, without ``await``.
"""

from __future__ import annotations

import functools
import http.client
import time
from collections.abc import Callable
from types import TracebackType
from typing import Concatenate, ParamSpec, Self, TypeVar
from urllib.parse import urlsplit

from http_api.client import (
    STREAM_READ_BYTES,
    Auth,
    ClientCore,
    Op,
    Request,
    Response,
    Streamed,
    drive,
)
from http_api.client_datatypes import DatatypeFactories
from http_api.resolvers import Resolver

__all__ = ["Client"]

P = ParamSpec("P")
T = TypeVar("T")

# How a keep-alive connection the node has closed shows (RemoteDisconnected is a reset).
_DROPPED = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


def _blocking(
    op: Callable[Concatenate[ClientCore, P], Op[T]],
) -> Callable[Concatenate[Client, P], T]:
    @functools.wraps(op)
    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return drive(op(self, *args, **kwargs), self._exchange, time.sleep)

    method.__name__ = op.__name__.removesuffix("_op")
    method.__qualname__ = f"Client.{method.__name__}"
    return method


class Client(ClientCore, DatatypeFactories):
    """The blocking client: ``with Client(url) as c:``, or call ``close()``.

    Not thread-safe: it holds one connection, kept alive between requests and opened again
    when the node closes it. A request that finds its idle connection dropped is sent once
    more on a new one. ``timeout_s`` bounds each socket operation.
    """

    def __init__(
        self,
        base_url: str,
        *,
        resolver: Resolver | None = None,
        timeout_s: float = 10.0,
        auth: Auth | None = None,
    ) -> None:
        super().__init__(base_url, resolver=resolver, timeout_s=timeout_s, auth=auth)
        parts = urlsplit(self.base_url)
        self._prefix = parts.path
        self._host = parts.hostname or ""
        self._port = parts.port
        self._https = parts.scheme == "https"
        self._conn: http.client.HTTPConnection | None = None
        self._closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.timeout_s)
        return self._conn

    def _exchange(self, step: Request | Streamed) -> Response:
        request = step.request if isinstance(step, Streamed) else step
        for attempt in (1, 2):
            conn = self._connection()
            reused = conn.sock is not None
            try:
                conn.request(
                    request.method,
                    self._prefix + request.path,
                    body=request.body,
                    headers=dict(request.headers),
                )
                response = conn.getresponse()
            except _DROPPED:
                conn.close()
                if reused and attempt == 1:
                    continue  # nothing was answered: the node had closed the idle connection
                raise
            except BaseException:
                conn.close()  # in an unknown state: the next request starts afresh
                raise
            try:
                body = b""
                if isinstance(step, Streamed) and response.status == 200:
                    while chunk := response.read1(STREAM_READ_BYTES):
                        step.parser.feed(chunk)
                else:
                    body = response.read()
            except BaseException:
                conn.close()
                raise
            return Response(status=response.status, headers=tuple(response.getheaders()), body=body)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def ping(self) -> bool:
        """True if the node answers ``/ping`` with 200; False on any other answer or none."""
        try:
            return self._exchange(self.request("GET", "/ping")).status == 200
        except (OSError, http.client.HTTPException):
            return False

    stats = _blocking(ClientCore.stats_op)
    get = _blocking(ClientCore.get_op)
    put = _blocking(ClientCore.put_op)
    store = _blocking(ClientCore.store_op)
    post = _blocking(ClientCore.post_op)
    delete = _blocking(ClientCore.delete_op)
    list_keys = _blocking(ClientCore.list_keys_op)
    list_buckets = _blocking(ClientCore.list_buckets_op)
    get_bucket_props = _blocking(ClientCore.get_bucket_props_op)
    set_bucket_props = _blocking(ClientCore.set_bucket_props_op)
    reset_bucket_props = _blocking(ClientCore.reset_bucket_props_op)
    update = _blocking(ClientCore.update_op)
    preflist = _blocking(ClientCore.preflist_op)
    index = _blocking(ClientCore.index_op)
    fetch_datatype = _blocking(ClientCore.fetch_datatype_op)
    update_datatype = _blocking(ClientCore.update_datatype_op)
