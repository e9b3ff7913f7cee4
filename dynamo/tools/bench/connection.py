"""One keep-alive connection as an ``asyncio.Protocol`` with one request in flight.

The next request is issued from ``data_received`` itself: no task, future or timer per
request, so a request costs the parse, a histogram update and one ``transport.write``.
The owner (``ConnectionOwner``, the worker) holds the current tally, decides when to start
and stop, reconnects after a close and enforces timeouts.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from time import perf_counter_ns
from typing import Final, Protocol, cast

from dynamo.tools.bench.http1 import RemoteProtocolError, Response
from dynamo.tools.bench.keys import KeyChooser
from dynamo.tools.bench.tally import CLOSED, GET, PROTOCOL, PUT, Tally

MODE_GET: Final = "get"
MODE_PUT: Final = "put"
MODE_MIXED: Final = "mixed"
MODE_RMW: Final = "rmw"
MODE_COUNTER: Final = "counter"  # increments, sent as the factory's ``put``
MODE_INDEX_EQ: Final = "index-eq"  # 2i queries, sent as the factory's ``get``
MODE_INDEX_RANGE: Final = "index-range"
MODE_PRELOAD: Final = "preload"

_ALWAYS_GET, _ALWAYS_PUT, _MIXED, _PRELOAD = range(4)
_CHOICES = {
    MODE_GET: _ALWAYS_GET,
    MODE_RMW: _ALWAYS_GET,  # then a PUT of the same key, from the response
    MODE_INDEX_EQ: _ALWAYS_GET,
    MODE_INDEX_RANGE: _ALWAYS_GET,
    MODE_PUT: _ALWAYS_PUT,
    MODE_COUNTER: _ALWAYS_PUT,
    MODE_MIXED: _MIXED,
    MODE_PRELOAD: _PRELOAD,
}


class Workload:
    """Chooses the next ``(op, key index)``; ``None`` when there is nothing left to do."""

    def __init__(
        self,
        mode: str,
        keys: KeyChooser,
        rng: random.Random,
        read_ratio: float = 0.5,
        preload_keys: Iterator[int] | None = None,
    ) -> None:
        if mode not in _CHOICES:
            raise ValueError(f"unknown workload {mode!r}")
        self.mode = mode
        self._choice = _CHOICES[mode]
        self.rmw = mode == MODE_RMW
        self.exhausted = False
        self._next_index = keys.next_index
        self._random = rng.random
        self._read_ratio = read_ratio
        self._preload = preload_keys

    def next_op(self) -> tuple[int, int] | None:
        choice = self._choice
        if choice == _ALWAYS_GET:
            return GET, self._next_index()
        if choice == _ALWAYS_PUT:
            return PUT, self._next_index()
        if choice == _MIXED:
            op = GET if self._random() < self._read_ratio else PUT
            return op, self._next_index()
        assert self._preload is not None
        key = next(self._preload, None)
        if key is None:
            self.exhausted = True
            return None
        return PUT, key


class Parser(Protocol):
    """Reads one protocol's answers (HTTP/1.1 or Riak PB) as ``Response`` values."""

    def feed(self, data: bytes) -> list[Response]: ...
    def feed_eof(self) -> Response | None: ...


class RequestFactory(Protocol):
    """Builds one protocol's requests, and the parser of its answers."""

    def new_parser(self, want_vclock: bool) -> Parser: ...
    def get(self, i: int) -> bytes: ...
    def put(self, i: int, vclock: bytes | None = None) -> bytes: ...


class ConnectionOwner(Protocol):
    """What a connection needs from the worker that owns it."""

    tally: Tally
    started: bool
    stopping: bool

    def connection_made(self, conn: BenchConnection) -> None: ...
    def connection_lost(self, conn: BenchConnection) -> None: ...
    def connection_idle(self, conn: BenchConnection) -> None: ...


class BenchConnection(asyncio.Protocol):
    """A client connection; ``send_next`` starts its request loop."""

    def __init__(self, owner: ConnectionOwner, factory: RequestFactory, workload: Workload) -> None:
        self.owner = owner
        self.factory = factory
        self.workload = workload
        self.parser = factory.new_parser(workload.rmw)
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent_ns = 0  # when the request in flight was sent; 0 when none is
        self.op = GET
        self.key = 0

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.owner.connection_made(self)

    def data_received(self, data: bytes) -> None:
        try:
            responses = self.parser.feed(data)
            for resp in responses:
                self._on_response(resp)
        except RemoteProtocolError:
            self.fail(PROTOCOL)

    def eof_received(self) -> bool:
        try:
            resp = self.parser.feed_eof()
        except RemoteProtocolError:
            self.fail(PROTOCOL)
            return False
        if resp is not None:
            self._on_response(resp)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sent_ns:
            self.sent_ns = 0
            self.owner.tally.error(CLOSED)
        self.owner.connection_lost(self)
        if not self.closed.done():
            self.closed.set_result(None)

    # --- the request loop ------------------------------------------------------------------

    def send_next(self) -> None:
        """Send the workload's next request, or tell the owner this connection is idle."""
        nxt = self.workload.next_op()
        if nxt is None:
            self.owner.connection_idle(self)
            return
        op, key = nxt
        self.op = op
        self.key = key
        self._send(self.factory.get(key) if op == GET else self.factory.put(key))

    def _send(self, request: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.sent_ns = perf_counter_ns()
        transport.write(request)

    def _on_response(self, resp: Response) -> None:
        sent = self.sent_ns
        if not sent:
            raise RemoteProtocolError("a response to no request")
        latency = perf_counter_ns() - sent
        self.sent_ns = 0
        owner = self.owner
        owner.tally.record(self.op, resp.status, latency)
        if not resp.keep_alive:
            if self.transport is not None:
                self.transport.close()
            return
        if owner.stopping:
            return
        if self.workload.rmw and self.op == GET and (resp.status < 400 or resp.status == 404):
            self.op = PUT
            self._send(self.factory.put(self.key, resp.vclock))
            return
        self.send_next()

    def fail(self, kind: str) -> None:
        """Count an error of ``kind`` for the request in flight and drop the connection."""
        if self.sent_ns:
            self.sent_ns = 0
            self.owner.tally.error(kind)
        if self.transport is not None:
            self.transport.abort()
