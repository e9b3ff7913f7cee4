"""Node-to-node RPC: msgpack frames over persistent asyncio TCP connections.

Frames are msgpack arrays ``[kind, request_id, method, body]`` read with a
streaming ``Unpacker``. Kinds are numbered once (append-only)::

    0 REQUEST   1 REPLY   2 ERROR   3 HELLO   4 PROOF

A connection opens with a handshake. The dialer sends HELLO ``{v, cluster,
node, nonce}``; the listener answers HELLO with its own; with a cluster secret
each side then proves it with an HMAC over both nonces (the listener inside its
HELLO, the dialer in a PROOF frame). A stranger (wrong cluster, wrong or missing
proof) is dropped and counted. Many requests are in flight per connection;
every call has a timeout. A frame above the size limit, or garbage, closes that
connection and counts an error; the node never crashes on it.

Frames queued in one turn of the event loop go out in one ``write``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import msgpack

log = logging.getLogger(__name__)

REQUEST, REPLY, ERROR, HELLO, PROOF = 0, 1, 2, 3, 4
PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024
HANDSHAKE_TIMEOUT_S = 5.0
HANDSHAKE_MAX_FRAME = 64 * 1024  # what a peer may send before it has proven itself

Handler = Callable[[Any, str], Awaitable[Any] | Any]


class RpcError(Exception):
    """A call failed: the peer is unreachable, timed out, or answered an error."""


class RemoteError(RpcError):
    """The peer's handler raised; ``message`` is its text."""


class Unreachable(RpcError):
    """No connection could be made: the request was certainly not delivered."""


@dataclass(slots=True)
class RpcStats:
    calls: int = 0
    served: int = 0
    timeouts: int = 0
    connect_failures: int = 0
    protocol_errors: int = 0
    auth_failures: int = 0
    frames_too_large: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RpcConfig:
    cluster: str
    node_id: str
    secret: bytes | None = None  # cluster secret; None = no proof asked or given
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES  # larger frames close the connection
    ssl_server: ssl.SSLContext | None = None
    ssl_client: ssl.SSLContext | None = None
    backoff_min_s: float = 0.05  # first reconnect delay after a failed connect
    backoff_max_s: float = 2.0  # cap on the reconnect delay
    routes: dict[str, str] = field(default_factory=dict)  # dial these addresses through others


def _proof(secret: bytes, role: bytes, a: bytes, b: bytes) -> bytes:
    return hmac.new(secret, role + a + b, hashlib.sha256).digest()


class Connection(asyncio.Protocol):
    """One TCP connection, either side. Serves requests and carries calls."""

    def __init__(self, rpc: Rpc, dialer: bool, expect_node: str | None = None) -> None:
        self.rpc = rpc
        self.dialer = dialer
        self.expect_node = expect_node
        self.peer_node = ""
        self.transport: asyncio.Transport | None = None
        self.unpacker = msgpack.Unpacker(
            raw=False, max_buffer_size=rpc.config.max_frame_bytes, strict_map_key=False
        )
        self.fed = 0  # bytes fed to the unpacker since the connection opened
        self.frame_start = 0  # where the frame in progress began
        self.pending: dict[int, tuple[asyncio.Future[Any], asyncio.TimerHandle]] = {}
        self.loop = asyncio.get_running_loop()
        self.next_id = 1
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.nonce = secrets.token_bytes(16)
        self.peer_nonce = b""
        self.ready: asyncio.Future[None] = self.loop.create_future()
        self.closed = False
        self.tasks: set[asyncio.Task[None]] = set()

    # --- Transport events ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.rpc.connections.add(self)
        if self.dialer:
            self._send([HELLO, 0, "hello", self._hello_body()])

    def _hello_body(self) -> dict[str, Any]:
        cfg = self.rpc.config
        body: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "cluster": cfg.cluster,
            "node": cfg.node_id,
            "nonce": self.nonce,
        }
        if not self.dialer and cfg.secret is not None:
            body["proof"] = _proof(cfg.secret, b"L", self.peer_nonce, self.nonce)
        return body

    def data_received(self, data: bytes) -> None:
        try:
            self.fed += len(data)
            self.unpacker.feed(data)
            for frame in self.unpacker:
                self.frame_start = self.unpacker.tell()
                self._frame(frame)
                if self.closed:
                    return
            # The unpacker parses an unfinished frame as it comes (and keeps what it
            # parsed): bound the frame in progress, tightly until the peer proved itself.
            limit = self.rpc.config.max_frame_bytes
            if not self.ready.done():
                limit = min(limit, HANDSHAKE_MAX_FRAME)
            if self.fed - self.frame_start > limit:
                raise msgpack.BufferFull
        except msgpack.BufferFull:
            self.rpc.stats.frames_too_large += 1
            self._fail(f"a frame above {self.rpc.config.max_frame_bytes} bytes")
        except _Drop as e:
            self._fail(str(e))
        except (ValueError, TypeError, msgpack.UnpackException) as e:
            self.rpc.stats.protocol_errors += 1
            self._fail(f"garbage on the wire ({e})")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.rpc.connections.discard(self)
        self.rpc.forget(self)
        err = RpcError(f"connection to {self.peer_node or 'peer'} lost")
        for fut, timer in self.pending.values():
            timer.cancel()
            if not fut.done():
                fut.set_exception(err)
        self.pending.clear()
        if not self.ready.done():
            self.ready.set_exception(err)
            self.ready.exception()  # retrieved: nobody may be waiting
        for t in self.tasks:
            t.cancel()

    # --- Frames -------------------------------------------------------------------------------

    def _frame(self, frame: Any) -> None:
        if not isinstance(frame, list) or len(frame) != 4 or not isinstance(frame[0], int):
            self.rpc.stats.protocol_errors += 1
            raise _Drop("a frame that is not [kind, id, method, body]")
        kind, rid, method, body = frame
        if not isinstance(rid, int):
            self.rpc.stats.protocol_errors += 1
            raise _Drop("a frame with a non-integer request id")
        if not self.ready.done():
            self._handshake(kind, body)
            return
        if kind == REQUEST:
            if not isinstance(method, str):
                self.rpc.stats.protocol_errors += 1
                raise _Drop("a request without a method name")
            self._serve(rid, method, body)
        elif kind in (REPLY, ERROR):
            entry = self.pending.pop(rid, None)
            if entry is None:
                return  # the call timed out already
            fut, timer = entry
            timer.cancel()
            if fut.done():
                return
            if kind == REPLY:
                fut.set_result(body)
            else:
                fut.set_exception(RemoteError(str(body)))
        else:
            self.rpc.stats.protocol_errors += 1
            raise _Drop(f"unknown frame kind {kind}")

    def _handshake(self, kind: int, body: Any) -> None:
        cfg = self.rpc.config
        if kind == PROOF and not self.dialer and self.peer_nonce:
            proof = body.get("proof") if isinstance(body, dict) else None
            if cfg.secret is None or not isinstance(proof, bytes):
                raise self._auth_failure("a proof frame without a proof")
            want = _proof(cfg.secret, b"D", self.nonce, self.peer_nonce)
            if not hmac.compare_digest(proof, want):
                raise self._auth_failure("a wrong cluster secret")
            self.ready.set_result(None)
            return
        if not self.dialer and self.peer_nonce:
            raise self._auth_failure("requests before proving the cluster secret")
        if kind != HELLO or not isinstance(body, dict):
            self.rpc.stats.protocol_errors += 1
            raise _Drop("no handshake")
        if body.get("v") != PROTOCOL_VERSION:
            raise _Drop(f"protocol version {body.get('v')!r}, not {PROTOCOL_VERSION}")
        if body.get("cluster") != cfg.cluster:
            raise self._auth_failure(f"cluster {body.get('cluster')!r}, not {cfg.cluster!r}")
        node, nonce = body.get("node"), body.get("nonce")
        if (
            not isinstance(node, str)
            or not node
            or not isinstance(nonce, bytes)
            or len(nonce) != 16
        ):
            raise _Drop("a malformed hello")
        if self.expect_node is not None and node != self.expect_node:
            raise _Drop(f"peer is node {node!r}, not {self.expect_node!r}")
        self.peer_node, self.peer_nonce = node, nonce
        if self.dialer:
            if cfg.secret is not None:
                proof = body.get("proof")
                want = _proof(cfg.secret, b"L", self.nonce, nonce)
                # Prove ourselves either way, so a listener with another secret notices too.
                self._send(
                    [PROOF, 0, "proof", {"proof": _proof(cfg.secret, b"D", nonce, self.nonce)}]
                )
                if not isinstance(proof, bytes) or not hmac.compare_digest(proof, want):
                    raise self._auth_failure("a wrong or missing cluster secret")
            self.ready.set_result(None)
        else:
            self._send([HELLO, 0, "hello", self._hello_body()])
            if cfg.secret is None:
                self.ready.set_result(None)

    def _auth_failure(self, what: str) -> _Drop:
        self.rpc.stats.auth_failures += 1
        peer = self.transport.get_extra_info("peername") if self.transport else None
        log.warning("refused a peer connection from %s: %s", peer, what)
        return _Drop(f"refused: {what}")

    def _serve(self, rid: int, method: str, body: Any) -> None:
        handler = self.rpc.handlers.get(method)
        self.rpc.stats.served += 1
        if handler is None:
            self._reply_error(rid, method, LookupError(f"unknown method {method[:64]!r}"))
            return
        try:
            result = handler(body, self.peer_node)
        except Exception as e:
            self._reply_error(rid, method, e)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._finish(rid, method, result))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        else:
            self._reply(rid, result)

    async def _finish(self, rid: int, method: str, aw: Awaitable[Any]) -> None:
        try:
            result = await aw
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._reply_error(rid, method, e)
            return
        self._reply(rid, result)

    def _reply(self, rid: int, result: Any) -> None:
        try:
            self._send([REPLY, rid, "", result])
        except RpcError as e:
            self._send([ERROR, rid, "", str(e)])
        except (TypeError, ValueError) as e:
            log.error("reply %d cannot be encoded: %s", rid, e)
            self._send([ERROR, rid, "", f"reply cannot be encoded: {e}"])

    def _reply_error(self, rid: int, method: str, e: Exception) -> None:
        if not isinstance(e, (RpcError, ValueError, LookupError)):
            log.exception("handler %s failed", method[:64])
        try:
            self._send([ERROR, rid, "", f"{type(e).__name__}: {str(e)[:1000]}"])
        except RpcError:
            self._send([ERROR, rid, "", type(e).__name__])

    # --- Sending ------------------------------------------------------------------------------

    def _send(self, frame: list[Any]) -> None:
        if self.closed or self.transport is None:
            return
        data: bytes = msgpack.packb(frame, use_bin_type=True)
        if len(data) > self.rpc.config.max_frame_bytes:
            raise RpcError(f"frame of {len(data)} bytes is above the limit")
        self.out.append(data)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.out and self.transport is not None and not self.closed:
            data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
            self.out.clear()
            self.transport.write(data)

    def request(self, method: str, body: Any, timeout_s: float) -> asyncio.Future[Any]:
        """Send a request; the future holds the reply, or ``RpcError`` on failure or timeout.

        No task and no ``wait_for`` per call: a timer fails the future at the deadline.
        """
        rid = self.next_id
        self.next_id += 1
        fut: asyncio.Future[Any] = self.loop.create_future()
        try:
            self._send([REQUEST, rid, method, body])
        except (RpcError, TypeError, ValueError) as e:
            fut.set_exception(e if isinstance(e, RpcError) else RpcError(f"cannot encode: {e}"))
            return fut
        timer = self.loop.call_later(timeout_s, self._timed_out, rid, method, timeout_s)
        self.pending[rid] = (fut, timer)
        return fut

    def _timed_out(self, rid: int, method: str, timeout_s: float) -> None:
        entry = self.pending.pop(rid, None)
        if entry is not None and not entry[0].done():
            self.rpc.stats.timeouts += 1
            entry[0].set_exception(
                RpcError(f"{method} to {self.peer_node} timed out after {timeout_s:.3g}s")
            )

    async def call(self, method: str, body: Any, timeout_s: float) -> Any:
        return await self.request(method, body, timeout_s)

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


class _Drop(Exception):
    """Close this connection."""


class RpcAPI(Protocol):
    """What the node needs of node-to-node messaging (``Rpc`` over TCP, or a simulation's)."""

    stats: RpcStats

    def register(self, method: str, handler: Handler) -> None: ...
    async def listen(self, host: str, port: int) -> int: ...
    def request(
        self, addr: str, method: str, body: Any, timeout_s: float = 5.0
    ) -> asyncio.Future[Any]: ...
    async def call(self, addr: str, method: str, body: Any, timeout_s: float = 5.0) -> Any: ...
    def connected_nodes(self) -> set[str]: ...
    def reset_backoff(self, addr: str) -> None: ...
    async def close(self) -> None: ...


class Rpc:
    """Listens for peers, dials peers, and keeps one outgoing connection per address."""

    def __init__(self, config: RpcConfig) -> None:
        self.config = config
        self.handlers: dict[str, Handler] = {}
        self.stats = RpcStats()
        self.connections: set[Connection] = set()
        self._out: dict[str, Connection] = {}
        self._dialing: dict[str, asyncio.Future[Connection]] = {}
        self._backoff: dict[str, tuple[float, float]] = {}  # addr -> (retry_at, delay)
        self._server: asyncio.Server | None = None

    def register(self, method: str, handler: Handler) -> None:
        """``handler(body, peer_node)`` returns the reply (or an awaitable of it)."""
        self.handlers[method] = handler

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
        self, addr: str, method: str, body: Any, timeout_s: float = 5.0
    ) -> asyncio.Future[Any]:
        """Call ``method`` on the node at ``addr``; the future fails with ``RpcError``.

        On an open connection this costs one frame and one timer, no task.
        """
        self.stats.calls += 1
        conn = self._out.get(addr)
        if conn is not None and not conn.closed:
            return conn.request(method, body, timeout_s)
        return asyncio.ensure_future(self._connect_and_call(addr, method, body, timeout_s))

    async def _connect_and_call(self, addr: str, method: str, body: Any, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        try:
            conn = await asyncio.wait_for(self.connection(addr), timeout_s)
        except TimeoutError:
            self.stats.timeouts += 1
            raise Unreachable(f"connecting to {addr} timed out")
        return await conn.request(method, body, max(0.001, deadline - time.monotonic()))

    async def call(self, addr: str, method: str, body: Any, timeout_s: float = 5.0) -> Any:
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
