"""Node-to-node RPC: the asyncio shell around the protocol's pure parts.

``dynamo.net.session`` frames the bytes and runs the handshake; ``dynamo.net.schema``
and ``dynamo.net.methods`` give every method its typed codecs in each protocol version.
This module only moves bytes, tracks calls in flight, keeps timers, dials with
backoff, and runs handlers. Many requests are in flight per connection; every call
has a timeout. A frame above the size limit, or garbage, closes that connection and
counts an error; the node never crashes on it.

Frames queued in one turn of the event loop go out in one ``write``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from dynamo.net import schema
from dynamo.net.schema import Method, RemoteError, RpcError, Unreachable
from dynamo.net.session import (
    ERROR,
    PROTOCOL_VERSION,
    REPLY,
    REQUEST,
    Ready,
    Session,
    SessionConfig,
    SessionStats,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024
HANDSHAKE_TIMEOUT_S = 5.0

Handler = Callable[[Any, str], Awaitable[Any] | Any]
Rep = TypeVar("Rep")
#: How the node's parts call a peer by node id: ``call(node, method, request, timeout_s)``.
Call = Callable[[str, Method[Any, Any], Any, float], Awaitable[Any]]

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "Call",
    "Connection",
    "Handler",
    "RemoteError",
    "Rpc",
    "RpcAPI",
    "RpcConfig",
    "RpcError",
    "RpcStats",
    "Unreachable",
]


@dataclass(slots=True)
class RpcStats(SessionStats):
    calls: int = 0
    served: int = 0
    timeouts: int = 0
    connect_failures: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RpcConfig:
    cluster: str
    node_id: str
    secret: bytes | None = None  # cluster secret; None = no proof asked or given
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES  # larger frames close the connection
    max_version: int = PROTOCOL_VERSION  # 1: speak exactly as the first release
    ssl_server: ssl.SSLContext | None = None
    ssl_client: ssl.SSLContext | None = None
    backoff_min_s: float = 0.05  # first reconnect delay after a failed connect
    backoff_max_s: float = 2.0  # cap on the reconnect delay
    routes: dict[str, str] = field(default_factory=dict)  # dial these addresses through others

    def session(self) -> SessionConfig:
        return SessionConfig(
            cluster=self.cluster,
            node_id=self.node_id,
            secret=self.secret,
            max_frame_bytes=self.max_frame_bytes,
            max_version=self.max_version,
        )


Pending = tuple[asyncio.Future[Any], asyncio.TimerHandle, Method[Any, Any]]


class Connection(asyncio.Protocol):
    """One TCP connection, either side: a :class:`Session` over a transport."""

    def __init__(self, rpc: Rpc, dialer: bool, expect_node: str | None = None) -> None:
        self.rpc = rpc
        self.dialer = dialer
        self.session = Session(
            rpc.session_config,
            dialer=dialer,
            nonce=secrets.token_bytes(16),
            expect_node=expect_node,
            stats=rpc.stats,
        )
        self.transport: asyncio.Transport | None = None
        self.pending: dict[int, Pending] = {}
        self.loop = asyncio.get_running_loop()
        self.next_id = 1
        self.flush_scheduled = False
        self.ready: asyncio.Future[None] = self.loop.create_future()
        self.closed = False
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def peer_node(self) -> str:
        return self.session.peer_node

    @property
    def version(self) -> int:
        return self.session.version

    # --- Transport events ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.rpc.connections.add(self)
        self.session.start()
        self._schedule_flush()

    def data_received(self, data: bytes) -> None:
        session = self.session
        for event in session.receive(data):
            if type(event) is list:  # a call's frame: [kind, rid, method, body]
                if event[0] == REQUEST:
                    self._serve(event[1], event[2], event[3])
                else:
                    self._answer(event[1], event[0] == REPLY, event[3])
            elif isinstance(event, Ready) and not self.ready.done():
                self.ready.set_result(None)
        if session.failure is not None:
            failure = session.failure
            if failure.kind == "auth":
                peer = self.transport.get_extra_info("peername") if self.transport else None
                log.warning("refused a peer connection from %s: %s", peer, failure.why)
            self._fail(failure.why)
        else:
            self._schedule_flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.rpc.connections.discard(self)
        self.rpc.forget(self)
        err = RpcError(f"connection to {self.peer_node or 'peer'} lost")
        for fut, timer, _ in self.pending.values():
            timer.cancel()
            if not fut.done():
                fut.set_exception(err)
        self.pending.clear()
        if not self.ready.done():
            self.ready.set_exception(err)
            self.ready.exception()  # retrieved: nobody may be waiting
        for t in self.tasks:
            t.cancel()

    # --- Serving --------------------------------------------------------------------------------

    def _serve(self, rid: int, name: str, body: Any) -> None:
        entry = self.rpc.handlers.get(name)
        self.rpc.stats.served += 1
        if entry is None:
            err = RemoteError(f"unknown method {name[:64]!r}", schema.ErrorCode.UNKNOWN_METHOD)
            self._reply_error(rid, None, err)
            return
        method, handler = entry
        try:
            try:
                request = method.codecs[self.session.version].decode_request(body)
            except schema.DECODE_ERRORS as e:
                raise schema.RemoteError(
                    f"malformed {name} request: {e}", schema.ErrorCode.BAD_REQUEST
                ) from e
            result = handler(request, self.session.peer_node)
        except Exception as e:
            self._reply_error(rid, method, e)
            return
        if hasattr(result, "__await__"):  # a coroutine or future (inspect.isawaitable, cheaper)
            task = asyncio.ensure_future(self._finish(rid, method, result))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        else:
            self._reply(rid, method, result)

    async def _finish(self, rid: int, method: Method[Any, Any], aw: Awaitable[Any]) -> None:
        try:
            result = await aw
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._reply_error(rid, method, e)
            return
        self._reply(rid, method, result)

    def _reply(self, rid: int, method: Method[Any, Any], result: Any) -> None:
        try:
            self._send(REPLY, rid, method.codecs[self.session.version].encode_reply(result))
        except (RpcError, TypeError, ValueError) as e:
            log.error("reply %d to %s cannot be sent: %s", rid, method.name, e)
            self._reply_error(rid, method, RemoteError(f"reply cannot be sent: {e}"))

    def _reply_error(self, rid: int, method: Method[Any, Any] | None, e: Exception) -> None:
        if not isinstance(e, (RpcError, *schema.DECODE_ERRORS)):
            log.exception("handler %s failed", method.name if method else "?")
        err = schema.as_remote_error(e)
        as_reply, body = schema.failure_body(method, self.version, err)
        try:
            self._send(REPLY if as_reply else ERROR, rid, body)
        except (RpcError, TypeError, ValueError):
            _, short = schema.failure_body(None, self.version, RemoteError(type(e).__name__))
            self._send(ERROR, rid, short)

    # --- Calling --------------------------------------------------------------------------------

    def _answer(self, rid: int, ok: bool, body: Any) -> None:
        entry = self.pending.pop(rid, None)
        if entry is None:
            return  # the call timed out already
        fut, timer, method = entry
        timer.cancel()
        if fut.done():
            return
        if not ok:
            fut.set_exception(schema.error_from_wire(self.version, body))
            return
        try:
            fut.set_result(method.codecs[self.session.version].decode_reply(body))
        except RemoteError as e:
            fut.set_exception(e)
        except schema.DECODE_ERRORS as e:
            fut.set_exception(RpcError(f"malformed {method.name} reply: {e}"))

    def request(self, method: Method[Any, Rep], body: Any, timeout_s: float) -> asyncio.Future[Rep]:
        """Send a request; the future holds the typed reply, or ``RpcError`` on failure
        or timeout. No task and no ``wait_for`` per call: a timer fails the future."""
        rid = self.next_id
        self.next_id += 1
        fut: asyncio.Future[Any] = self.loop.create_future()
        try:
            encoded = method.codecs[self.session.version].encode_request(body)
            self._send(REQUEST, rid, encoded, method.name)
        except (RpcError, TypeError, ValueError) as e:
            fut.set_exception(e if isinstance(e, RpcError) else RpcError(f"cannot encode: {e}"))
            return fut
        timer = self.loop.call_later(timeout_s, self._timed_out, rid, method.name, timeout_s)
        self.pending[rid] = (fut, timer, method)
        return fut

    def _timed_out(self, rid: int, name: str, timeout_s: float) -> None:
        entry = self.pending.pop(rid, None)
        if entry is not None and not entry[0].done():
            self.rpc.stats.timeouts += 1
            entry[0].set_exception(
                RpcError(f"{name} to {self.peer_node} timed out after {timeout_s:.3g}s")
            )

    async def call(self, method: Method[Any, Rep], body: Any, timeout_s: float) -> Rep:
        return await self.request(method, body, timeout_s)

    # --- Sending --------------------------------------------------------------------------------

    def _send(self, kind: int, rid: int, body: Any, name: str = "") -> None:
        if self.closed or self.transport is None:
            return
        self.session.send(kind, rid, name, body)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _schedule_flush(self) -> None:
        if self.session.has_outgoing and not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.transport is not None and not self.closed:
            data = self.session.take_outgoing()
            if data:
                self.transport.write(data)

    def _fail(self, why: str) -> None:
        if self.closed:
            return
        log.warning("closing connection with %s: %s", self.peer_node or "peer", why)
        self._flush()  # what we owe the peer (e.g. our proof) goes before the close
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


class RpcAPI(Protocol):
    """What the node needs of node-to-node messaging (``Rpc`` over TCP, or a simulation's)."""

    stats: RpcStats

    def register(self, method: Method[Any, Any], handler: Handler) -> None: ...
    async def listen(self, host: str, port: int) -> int: ...
    def request(
        self, addr: str, method: Method[Any, Rep], body: Any, timeout_s: float = 5.0
    ) -> asyncio.Future[Rep]: ...
    async def call(
        self, addr: str, method: Method[Any, Rep], body: Any, timeout_s: float = 5.0
    ) -> Rep: ...
    def connected_nodes(self) -> set[str]: ...
    def peer_versions(self) -> dict[str, int]: ...
    def reset_backoff(self, addr: str) -> None: ...
    async def close(self) -> None: ...


class Rpc:
    """Listens for peers, dials peers, and keeps one outgoing connection per address."""

    def __init__(self, config: RpcConfig) -> None:
        self.config = config
        self.session_config = config.session()
        self.handlers: dict[str, tuple[Method[Any, Any], Handler]] = {}
        self.stats = RpcStats()
        self.connections: set[Connection] = set()
        self._out: dict[str, Connection] = {}
        self._dialing: dict[str, asyncio.Future[Connection]] = {}
        self._backoff: dict[str, tuple[float, float]] = {}  # addr -> (retry_at, delay)
        self._server: asyncio.Server | None = None

    def register(self, method: Method[Any, Any], handler: Handler) -> None:
        """``handler(request, peer_node)`` gets the typed request and returns the typed
        reply (or an awaitable of it); raising ``RemoteError`` answers a typed error."""
        self.handlers[method.name] = (method, handler)

    async def listen(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self, dialer=False),
            host,
            port,
            ssl=self.config.ssl_server,
            reuse_address=True,
        )
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    def connected_nodes(self) -> set[str]:
        return {c.peer_node for c in self.connections if c.ready.done() and not c.closed}

    def peer_versions(self) -> dict[str, int]:
        """The protocol version of each connected peer (the lowest, if it has several)."""
        out: dict[str, int] = {}
        for c in self.connections:
            if c.ready.done() and not c.closed:
                out[c.peer_node] = min(out.get(c.peer_node, c.version), c.version)
        return dict(sorted(out.items()))

    def forget(self, conn: Connection) -> None:
        for addr, c in list(self._out.items()):
            if c is conn:
                del self._out[addr]

    async def _connect(self, addr: str) -> Connection:
        now = time.monotonic()
        retry_at, delay = self._backoff.get(addr, (0.0, 0.0))
        if now < retry_at:
            raise Unreachable(f"{addr} is unreachable (retrying in {retry_at - now:.2f}s)")
        host, _, port = self.config.routes.get(addr, addr).rpartition(":")
        loop = asyncio.get_running_loop()
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(
                    lambda: Connection(self, dialer=True),
                    host,
                    int(port),
                    ssl=self.config.ssl_client,
                    server_hostname=host if self.config.ssl_client else None,
                ),
                HANDSHAKE_TIMEOUT_S,
            )
            await asyncio.wait_for(asyncio.shield(proto.ready), HANDSHAKE_TIMEOUT_S)
        except (OSError, TimeoutError, RpcError, ssl.SSLError) as e:
            self.stats.connect_failures += 1
            delay = min(self.config.backoff_max_s, max(self.config.backoff_min_s, delay * 2))
            self._backoff[addr] = (time.monotonic() + delay, delay)
            raise Unreachable(f"cannot connect to {addr}: {e}")
        self._backoff.pop(addr, None)
        return proto

    async def connection(self, addr: str) -> Connection:
        conn = self._out.get(addr)
        if conn is not None and not conn.closed:
            return conn
        dialing = self._dialing.get(addr)
        if dialing is None:
            dialing = asyncio.ensure_future(self._connect(addr))
            self._dialing[addr] = dialing
            try:
                conn = await asyncio.shield(dialing)
                self._out[addr] = conn
                return conn
            finally:
                self._dialing.pop(addr, None)
                if dialing.done() and not dialing.cancelled():
                    dialing.exception()
        return await asyncio.shield(dialing)

    def request(
        self, addr: str, method: Method[Any, Rep], body: Any, timeout_s: float = 5.0
    ) -> asyncio.Future[Rep]:
        """Call ``method`` on the node at ``addr``; the future fails with ``RpcError``.

        On an open connection this costs one frame and one timer, no task.
        """
        self.stats.calls += 1
        conn = self._out.get(addr)
        if conn is not None and not conn.closed:
            return conn.request(method, body, timeout_s)
        return asyncio.ensure_future(self._connect_and_call(addr, method, body, timeout_s))

    async def _connect_and_call(
        self, addr: str, method: Method[Any, Rep], body: Any, timeout_s: float
    ) -> Rep:
        deadline = time.monotonic() + timeout_s
        try:
            conn = await asyncio.wait_for(self.connection(addr), timeout_s)
        except TimeoutError:
            self.stats.timeouts += 1
            raise Unreachable(f"connecting to {addr} timed out")
        return await conn.request(method, body, max(0.001, deadline - time.monotonic()))

    async def call(
        self, addr: str, method: Method[Any, Rep], body: Any, timeout_s: float = 5.0
    ) -> Rep:
        """Call ``method`` on the node at ``addr``; ``RpcError`` on any failure."""
        return await self.request(addr, method, body, timeout_s)

    def reset_backoff(self, addr: str) -> None:
        """Forget a failed connect (e.g. gossip says the peer is back)."""
        self._backoff.pop(addr, None)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for c in list(self.connections):
            c.close()
        for fut in self._dialing.values():
            fut.cancel()
        if self._server is not None:
            await self._server.wait_closed()
