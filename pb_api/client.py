"""Our Python client over Riak's Protocol Buffers: the HTTP client's API, faster.

    from pb_api.client import connect
    with connect("pb://127.0.0.1:8087") as c:            # or connect(url, protocol="http")
        c.put("carts", "alice", b'["apple"]', content_type="application/json")
        print(c.get("carts", "alice").value)

``PbClient`` (blocking, one socket) and ``AsyncPbClient`` (asyncio) carry out the
operations of ``pb_api.client_core.PbClientCore``; objects, resolvers, ``update`` and
the errors are the HTTP client's (``http_api.client``). Over TLS (``tls=`` an
``ssl.SSLContext``) the client sends Riak's ``RpbStartTls`` and upgrades the socket;
with ``auth=(user, password)`` it then authenticates (``RpbAuthReq``).
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import struct
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Concatenate, Literal, ParamSpec, Self, TypeVar
from urllib.parse import urlsplit

from http_api.client_datatypes import DatatypeFactories
from http_api.client_ops import Backoff
from http_api.client_sync import Client
from http_api.resolvers import Resolver
from pb_api import messages
from pb_api.client_core import Answer, Call, Op, PbClientCore, error_for
from pb_api.messages import Code
from pb_api.proto import riak_pb2 as core

P = ParamSpec("P")
T = TypeVar("T")
DEFAULT_PB_PORT = 8087
_LEN = struct.Struct(">I")


class PbProtocolError(ConnectionError):
    """The node answered what Riak's PB protocol does not allow (the socket is closed)."""


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"pb://{url}")
    if parts.scheme not in ("pb", "tcp") or not parts.hostname:
        raise ValueError(f"{url!r}: use pb://host:port (or host:port)")
    return parts.hostname, parts.port or DEFAULT_PB_PORT


class _Framing:
    """What both shells do with bytes: frames out, answers checked."""

    @staticmethod
    def encode(call: Call) -> bytes:
        return messages.frame(call.code, call.body)

    @staticmethod
    def answer(call: Call, code: int, body: bytes) -> tuple[Any, bool]:
        """(the decoded response, whether the answer is complete); raises the error an
        ``RpbErrorResp`` stands for."""
        if code == Code.ERROR_RESP:
            err = messages.decode(code, body)
            assert isinstance(err, core.RpbErrorResp)
            raise error_for(err.errmsg.decode(errors="replace"))
        if code != call.expect:
            raise PbProtocolError(f"answer code {code} to request {call.code}, not {call.expect}")
        msg = messages.decode(code, body)
        done = not call.streamed or bool(getattr(msg, "done", False))
        return msg, done


def _blocking(
    op: Callable[Concatenate[PbClientCore, P], Op[T]],
) -> Callable[Concatenate[PbClient, P], T]:
    @functools.wraps(op)
    def method(self: PbClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._drive(op(self, *args, **kwargs))

    method.__name__ = op.__name__.removesuffix("_op")
    method.__qualname__ = f"PbClient.{method.__name__}"
    return method


class PbClient(PbClientCore, DatatypeFactories):
    """The blocking PB client: ``with PbClient("pb://host:8087") as c:``. One socket, opened
    on first use and again after a failure; not thread-safe. ``timeout_s`` bounds each
    socket operation."""

    def __init__(
        self,
        url: str = f"pb://127.0.0.1:{DEFAULT_PB_PORT}",
        *,
        resolver: Resolver | None = None,
        timeout_s: float = 10.0,
        tls: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(resolver)
        self.host, self.port = _address(url)
        self.timeout_s = timeout_s
        self.tls = tls
        self.auth = auth
        self._sock: socket.socket | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), self.timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            try:
                if self.tls is not None:
                    self._exchange(Call(Code.START_TLS, None, Code.START_TLS))
                    self._sock = self.tls.wrap_socket(sock, server_hostname=self.host)
                if self.auth is not None:
                    user, password = self.auth
                    req = core.RpbAuthReq(user=user.encode(), password=password.encode())
                    self._exchange(Call(Code.AUTH_REQ, req, Code.AUTH_RESP))
            except BaseException:
                self.close()
                raise
        return self._sock

    def _read(self, n: int) -> bytes:
        assert self._sock is not None
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise PbProtocolError("the node closed the connection")
            buf += chunk
        return bytes(buf)

    def _exchange(self, call: Call) -> Answer:
        sock = self._sock if self._sock is not None else self._socket()
        try:
            sock.sendall(_Framing.encode(call))
            out: Answer = []
            while True:
                (length,) = _LEN.unpack(self._read(4))
                data = self._read(length)
                msg, done = _Framing.answer(call, data[0], data[1:])
                out.append(msg)
                if done:
                    return out
        except (OSError, PbProtocolError, messages.BadBody):
            self.close()  # in an unknown state: the next call starts afresh
            raise

    def _drive(self, op: Op[T]) -> T:
        try:
            step = next(op)
            while True:
                if isinstance(step, Backoff):
                    time.sleep(step.delay_s)
                    step = op.send(None)
                else:
                    step = op.send(self._exchange(step))
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            op.close()

    def ping(self) -> bool:
        """True if the node answers a ping; False on any failure."""
        try:
            self._exchange(Call(Code.PING_REQ, None, Code.PING_RESP))
            return True
        except (OSError, PbProtocolError, messages.BadBody):
            return False

    get = _blocking(PbClientCore.get_op)
    put = _blocking(PbClientCore.put_op)
    store = _blocking(PbClientCore.store_op)
    post = _blocking(PbClientCore.post_op)
    delete = _blocking(PbClientCore.delete_op)
    list_keys = _blocking(PbClientCore.list_keys_op)
    list_buckets = _blocking(PbClientCore.list_buckets_op)
    index = _blocking(PbClientCore.index_op)
    get_bucket_props = _blocking(PbClientCore.get_bucket_props_op)
    set_bucket_props = _blocking(PbClientCore.set_bucket_props_op)
    reset_bucket_props = _blocking(PbClientCore.reset_bucket_props_op)
    update = _blocking(PbClientCore.update_op)
    preflist = _blocking(PbClientCore.preflist_op)
    server_info = _blocking(PbClientCore.server_info_op)
    fetch_datatype = _blocking(PbClientCore.fetch_datatype_op)
    update_datatype = _blocking(PbClientCore.update_datatype_op)


def _async(
    op: Callable[Concatenate[PbClientCore, P], Op[T]],
) -> Callable[Concatenate[AsyncPbClient, P], Coroutine[Any, Any, T]]:
    @functools.wraps(op)
    async def method(self: AsyncPbClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._drive(op(self, *args, **kwargs))

    method.__name__ = op.__name__.removesuffix("_op")
    method.__qualname__ = f"AsyncPbClient.{method.__name__}"
    return method


class AsyncPbClient(PbClientCore):
    """The asyncio PB client: ``async with AsyncPbClient(url) as c:``. One connection;
    calls on it are serialised (Riak's PB answers in order), so share one per task or
    open several for concurrency."""

    def __init__(
        self,
        url: str = f"pb://127.0.0.1:{DEFAULT_PB_PORT}",
        *,
        resolver: Resolver | None = None,
        timeout_s: float = 10.0,
        tls: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(resolver)
        self.host, self.port = _address(url)
        self.timeout_s = timeout_s
        self.tls = tls
        self.auth = auth
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass  # already gone: nothing more to close

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._streams is None:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout_s
            )
            self._streams = (reader, writer)
            try:
                if self.tls is not None:
                    await self._send(Call(Code.START_TLS, None, Code.START_TLS))
                    await writer.start_tls(self.tls, server_hostname=self.host)
                if self.auth is not None:
                    user, password = self.auth
                    req = core.RpbAuthReq(user=user.encode(), password=password.encode())
                    await self._send(Call(Code.AUTH_REQ, req, Code.AUTH_RESP))
            except BaseException:
                await self.close()
                raise
        return self._streams

    async def _send(self, call: Call) -> Answer:
        assert self._streams is not None
        reader, writer = self._streams
        writer.write(_Framing.encode(call))
        out: Answer = []
        while True:
            (length,) = _LEN.unpack(await reader.readexactly(4))
            data = await reader.readexactly(length)
            msg, done = _Framing.answer(call, data[0], data[1:])
            out.append(msg)
            if done:
                return out

    async def _exchange(self, call: Call) -> Answer:
        async with self._lock:
            await self._connect()
            try:
                return await asyncio.wait_for(self._send(call), self.timeout_s)
            except (OSError, PbProtocolError, messages.BadBody, TimeoutError, EOFError):
                await self.close()
                raise
            except asyncio.IncompleteReadError as e:
                await self.close()
                raise PbProtocolError("the node closed the connection") from e

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
        try:
            await self._exchange(Call(Code.PING_REQ, None, Code.PING_RESP))
            return True
        except (OSError, PbProtocolError, messages.BadBody, TimeoutError):
            return False

    get = _async(PbClientCore.get_op)
    put = _async(PbClientCore.put_op)
    store = _async(PbClientCore.store_op)
    post = _async(PbClientCore.post_op)
    delete = _async(PbClientCore.delete_op)
    list_keys = _async(PbClientCore.list_keys_op)
    list_buckets = _async(PbClientCore.list_buckets_op)
    index = _async(PbClientCore.index_op)
    get_bucket_props = _async(PbClientCore.get_bucket_props_op)
    set_bucket_props = _async(PbClientCore.set_bucket_props_op)
    reset_bucket_props = _async(PbClientCore.reset_bucket_props_op)
    update = _async(PbClientCore.update_op)
    preflist = _async(PbClientCore.preflist_op)
    server_info = _async(PbClientCore.server_info_op)
    fetch_datatype = _async(PbClientCore.fetch_datatype_op)
    update_datatype = _async(PbClientCore.update_datatype_op)


def connect(
    url: str,
    *,
    protocol: Literal["pb", "http"] = "pb",
    resolver: Resolver | None = None,
    timeout_s: float = 10.0,
) -> PbClient | Client:
    """A blocking client of either protocol, with the same methods: ``protocol="pb"``
    (``url`` ``pb://host:8087``) or ``"http"`` (``http://host:8098``)."""
    if protocol == "pb":
        return PbClient(url, resolver=resolver, timeout_s=timeout_s)
    if protocol == "http":
        return Client(url, resolver=resolver, timeout_s=timeout_s)
    raise ValueError(f"protocol={protocol!r}: use 'pb' or 'http'")


__all__ = ["AsyncPbClient", "PbClient", "PbProtocolError", "connect"]
