"""The PB front end's asyncio shell: connections, limits, TLS and auth around the pure
codec (``pb_api.codec``, ``pb_api.messages``) and the handlers (``pb_api.handlers``).

Per connection, requests are answered in order (Riak's clients wait for each answer;
a pipelining client is served in turn, with reading paused past a small backlog).

- **Bad input**: an unknown message code gets an ``RpbErrorResp`` and the connection
  goes on. A frame above the size limit, garbage framing, a body that does not decode
  (nothing of it is stored), or a client that stalls mid-frame longer than
  ``stall_timeout_s`` closes the connection, counted in :class:`PbStats`.
- **Limits**: at most ``max_connections`` open (more are closed at once, counted);
  requests count against the node's ``ConcurrencyLimit`` shared with HTTP (beyond it,
  an "overloaded" error at once).
- **TLS** (when the node has a certificate): Riak's ``RpbStartTls``, then the TLS
  handshake on the same socket; until then only ping and StartTls are served.
- **Auth** (when the node has credentials): ``RpbAuthReq`` checked as HTTP's basic auth
  (with only a token configured, the token is the password); until then only ping,
  StartTls and auth are served.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from http_api.access import AuthConfig, ConcurrencyLimit
from http_api.errors import ServiceError
from http_api.service import NodeService
from pb_api import messages
from pb_api.codec import Frame, FrameDecoder, FrameTooLarge, FramingError
from pb_api.handlers import OPERATIONS, ConnState, Handlers
from pb_api.messages import Code, error_frame, frame

log = logging.getLogger(__name__)

Observe = Callable[[str, int, float], None]
MAX_QUEUED_FRAMES = 32  # past this backlog of requests, stop reading until it drains
OPEN_BEFORE_TLS = frozenset({Code.PING_REQ, Code.START_TLS})
OPEN_BEFORE_AUTH = frozenset({Code.PING_REQ, Code.START_TLS, Code.AUTH_REQ})
FRAME_OVERHEAD_BYTES = 1024 * 1024  # beyond the value limit: keys, metadata, options


@dataclass(slots=True)
class PbStats:
    connects_total: int = 0
    active: int = 0
    refused_connections: int = 0  # above max_connections
    protocol_errors: int = 0  # garbage framing or a body that does not decode
    frames_too_large: int = 0
    stalls: int = 0  # closed mid-frame after stall_timeout_s
    auth_failures: int = 0
    recent_connects: deque[float] | None = None

    def connects_last_minute(self, now: float) -> int:
        """Riak's ``pbc_connects``: connections opened in the last 60 s."""
        q = self.recent_connects
        if q is None:
            return 0
        while q and q[0] < now - 60:
            q.popleft()
        return len(q)


@dataclass(frozen=True, slots=True, kw_only=True)
class PbConfig:
    max_frame_bytes: int
    max_connections: int = 4096
    stall_timeout_s: float = 10.0
    reuse_port: bool = False  # SO_REUSEPORT: the processes of one host share the port
    auth: AuthConfig | None = None
    ssl_context: ssl.SSLContext | None = None


class PbServer:
    """Listens on one address and serves Riak PB over ``service``."""

    def __init__(
        self,
        service: NodeService,
        config: PbConfig,
        *,
        limit: ConcurrencyLimit,
        observe: Observe | None = None,
    ) -> None:
        self.config = config
        self.handlers = Handlers(service)
        self.limit = limit
        self.observe = observe
        self.auth = config.auth if config.auth is not None and config.auth.enabled else None
        self.stats = PbStats(recent_connects=deque())
        self.connections: set[PbConnection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the port bound (``port`` 0 picks one)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: PbConnection(self),
            host,
            port,
            reuse_address=True,
            reuse_port=self.config.reuse_port or None,
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for c in list(self.connections):
            c.close()
        if self._server is not None:
            await self._server.wait_closed()


class PbConnection(asyncio.Protocol):
    """One client connection: frames in, answers out, one request at a time."""

    def __init__(self, server: PbServer) -> None:
        self.server = server
        self.decoder = FrameDecoder(server.config.max_frame_bytes)
        self.state = ConnState()
        self.transport: asyncio.Transport | None = None
        self.queue: deque[Frame] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.stall_timer: asyncio.TimerHandle | None = None
        self.paused = False
        self.closed = False
        self.writable = asyncio.Event()
        self.writable.set()

    # --- Transport events ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        server, stats = self.server, self.server.stats
        if len(server.connections) >= server.config.max_connections:
            stats.refused_connections += 1
            log.warning("PB: refused a connection: %d open (the limit)", len(server.connections))
            self.closed = True
            self.transport.close()
            return
        server.connections.add(self)
        stats.connects_total += 1
        stats.active += 1
        if stats.recent_connects is not None:
            stats.recent_connects.append(time.monotonic())

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            frames = self.decoder.feed(data)
        except FramingError as e:
            stats = self.server.stats
            if isinstance(e, FrameTooLarge):
                stats.frames_too_large += 1
            else:
                stats.protocol_errors += 1
            self._abort(f"bad framing: {e}")
            return
        self._arm_stall_timer()
        if not frames:
            return
        self.queue.extend(frames)
        if len(self.queue) > MAX_QUEUED_FRAMES and not self.paused and self.transport:
            self.paused = True
            self.transport.pause_reading()
        if self.worker is None or self.worker.done():
            self.worker = asyncio.ensure_future(self._work())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed and self not in self.server.connections:
            return
        self.closed = True
        if self in self.server.connections:
            self.server.connections.discard(self)
            self.server.stats.active -= 1
        if self.stall_timer is not None:
            self.stall_timer.cancel()
        if self.worker is not None and not self.worker.done():
            self.worker.cancel()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    # --- Stalls ---------------------------------------------------------------------------------

    def _arm_stall_timer(self) -> None:
        if self.stall_timer is not None:
            self.stall_timer.cancel()
            self.stall_timer = None
        if self.decoder.mid_frame:
            loop = asyncio.get_running_loop()
            self.stall_timer = loop.call_later(self.server.config.stall_timeout_s, self._stalled)

    def _stalled(self) -> None:
        self.server.stats.stalls += 1
        self._abort(f"stalled mid-frame for {self.server.config.stall_timeout_s:g}s")

    # --- Requests -------------------------------------------------------------------------------

    async def _work(self) -> None:
        while self.queue and not self.closed:
            code, body = self.queue.popleft()
            if self.paused and len(self.queue) <= MAX_QUEUED_FRAMES // 2 and self.transport:
                self.paused = False
                self.transport.resume_reading()
            await self._request(code, body)

    async def _request(self, code: int, body: bytes) -> None:
        if code not in messages.REQUESTS:
            self._write(error_frame(f"unknown message code {code}: this node serves Riak KV's"))
            return
        try:
            msg = messages.decode(code, body)
        except messages.BadBody as e:
            self.server.stats.protocol_errors += 1
            self._abort(str(e))  # nothing of it is stored
            return
        refusal = self._gate(code)
        if refusal is not None:
            self._write(error_frame(refusal))
            return
        if code == Code.START_TLS:
            await self._start_tls()
            return
        if code == Code.AUTH_REQ:
            self._authenticate(msg)
            return
        limit = self.server.limit
        if not limit.try_acquire():
            self._write(error_frame(limit.overload_message()))
            return
        t0 = time.perf_counter()
        status = 200
        try:
            single = self.server.handlers.single.get(code)
            if single is not None:
                self._write(await single(msg, self.state))
            else:
                async for out in self.server.handlers.streamed[code](msg):
                    self._write(out)
                    if not self.writable.is_set():
                        await self.writable.wait()
        except ServiceError as e:
            status = e.status
            self._write(error_frame(e.message))
        except asyncio.CancelledError:
            raise
        except Exception:
            status = 500
            log.exception("bug: PB request %d failed", code)
            self._write(error_frame("internal error: this is a bug, the node log has the details"))
        finally:
            limit.release()
        observe = self.server.observe
        if observe is not None:
            observe(OPERATIONS.get(code, "other"), status, time.perf_counter() - t0)

    def _gate(self, code: int) -> str | None:
        """Why this request may not be served yet on this connection, or None."""
        server, state = self.server, self.state
        if server.config.ssl_context is not None and not state.tls:
            if code not in OPEN_BEFORE_TLS:
                return "this node serves PB over TLS only: send RpbStartTls first"
        elif code == Code.START_TLS:
            return "TLS is not configured on this node (or is already on): go on without it"
        if server.auth is not None and not state.authenticated and code not in OPEN_BEFORE_AUTH:
            return "authentication required: send RpbAuthReq with the node's credentials"
        return None

    async def _start_tls(self) -> None:
        ctx = self.server.config.ssl_context
        transport = self.transport
        assert ctx is not None
        assert transport is not None
        if self.queue or self.decoder.mid_frame:
            self.server.stats.protocol_errors += 1
            self._abort("bytes after RpbStartTls, before the TLS handshake")
            return
        self._write(frame(Code.START_TLS))
        loop = asyncio.get_running_loop()
        try:
            new = await loop.start_tls(transport, self, ctx, server_side=True)
        except (OSError, ssl.SSLError, ConnectionError) as e:
            log.info("PB: TLS handshake failed: %s", e)
            self._abort("TLS handshake failed")
            return
        if new is None:
            self._abort("TLS handshake failed")
            return
        self.transport = new
        self.state.tls = True

    def _authenticate(self, msg: Any) -> None:
        auth = self.server.auth
        if auth is None:
            self.state.authenticated = True
            self._write(frame(Code.AUTH_RESP))
            return
        user = bytes(msg.user).decode(errors="replace")
        password = bytes(msg.password).decode(errors="replace")
        if auth.accepts_password(user, password):
            self.state.authenticated = True
            self._write(frame(Code.AUTH_RESP))
        else:
            self.server.stats.auth_failures += 1
            self._write(error_frame("authentication failed: check the user and password"))

    # --- Output -------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def _abort(self, why: str) -> None:
        if self.closed:
            return
        log.info("PB: closing a connection: %s", why)
        self.closed = True
        self.queue.clear()
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
