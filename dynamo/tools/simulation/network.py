"""A simulated network between nodes, and the node-side messaging (``RpcAPI``) over it.

Every message is msgpack-encoded and decoded on arrival (each destination gets
its own copy, and the wire format is exercised). The network delays every
message by a random amount (so messages reorder), loses some, duplicates some,
and honours partitions and paused nodes. A request to a node whose process is
down fails fast, as a refused TCP connection would; a request lost on the way
(or held by a partition) fails at its timeout.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgpack

from dynamo.net import schema
from dynamo.net.rpc import Handler, RemoteError, RpcError, RpcStats, Unreachable
from dynamo.net.schema import Method
from dynamo.net.session import PROTOCOL_VERSION

Rep = TypeVar("Rep")


@dataclass
class NetConfig:
    delay_s: tuple[float, float] = (0.0005, 0.005)  # uniform one-way delay
    loss: float = 0.0  # probability a message vanishes
    duplicate: float = 0.0  # probability a request is delivered twice


@dataclass
class Network:
    """Who can reach whom, and what messages suffer on the way."""

    rng: random.Random
    config: NetConfig = field(default_factory=NetConfig)
    nodes: dict[str, SimRpc] = field(default_factory=dict)  # addr -> endpoint
    down: set[str] = field(default_factory=set)  # addrs whose process is not running
    paused: set[str] = field(default_factory=set)  # addrs whose process is stopped
    groups: list[set[str]] = field(default_factory=list)  # partition, by addr
    held: list[Callable[[], None]] = field(default_factory=list)  # deliveries held by a pause
    sent: int = 0
    lost: int = 0

    def reachable(self, src: str, dst: str) -> bool:
        if not self.groups:
            return True
        return any(src in g and dst in g for g in self.groups)

    def delay(self) -> float:
        lo, hi = self.config.delay_s
        return self.rng.uniform(lo, hi)

    def deliver(self, src: str, dst: str, action: Callable[[], None], lossy: bool = True) -> bool:
        """Schedule ``action`` at ``dst`` after a network delay; False if it cannot arrive."""
        self.sent += 1
        if not self.reachable(src, dst) or (lossy and self.rng.random() < self.config.loss):
            self.lost += 1
            return False
        loop = asyncio.get_running_loop()

        def arrive() -> None:
            if dst in self.down or src in self.down:
                return
            if dst in self.paused or src in self.paused:
                self.held.append(arrive)
                return
            action()

        loop.call_later(self.delay(), arrive)
        return True

    def resume(self, addr: str) -> None:
        self.paused.discard(addr)
        held, self.held = self.held, []
        for action in held:
            action()


class SimRpc:
    """One node's messaging endpoint on the simulated network.

    Calls go through the methods' codecs in the version both ends speak (the lower
    ``max_version``), as over TCP, so a simulated cluster can mix releases.
    """

    def __init__(
        self, node_id: str, addr: str, network: Network, max_version: int = PROTOCOL_VERSION
    ) -> None:
        self.node_id = node_id
        self.addr = addr
        self.net = network
        self.max_version = max_version
        self.handlers: dict[str, tuple[Method[Any, Any], Handler]] = {}
        self.stats = RpcStats()
        self.pending: dict[int, asyncio.Future[Any]] = {}  # in sending order
        self.next_id = 0
        self.tasks: set[asyncio.Task[Any]] = set()

    def register(self, method: Method[Any, Any], handler: Handler) -> None:
        self.handlers[method.name] = (method, handler)

    async def listen(self, host: str, port: int) -> int:
        self.net.nodes[self.addr] = self
        self.net.down.discard(self.addr)
        return port

    def connected_nodes(self) -> set[str]:
        return {
            e.node_id
            for a, e in self.net.nodes.items()
            if a != self.addr and a not in self.net.down and self.net.reachable(self.addr, a)
        }

    def peer_versions(self) -> dict[str, int]:
        return {
            e.node_id: min(self.max_version, e.max_version)
            for a, e in sorted(self.net.nodes.items())
            if a != self.addr and a not in self.net.down
        }

    def reset_backoff(self, addr: str) -> None:
        return None

    def request(
        self, addr: str, method: Method[Any, Rep], body: Any, timeout_s: float = 5.0
    ) -> asyncio.Future[Rep]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self.stats.calls += 1
        self.next_id += 1
        rid = self.next_id
        self.pending[rid] = fut
        fut.add_done_callback(lambda _: self.pending.pop(rid, None))

        def fail(err: Exception) -> None:
            if not fut.done():
                fut.set_exception(err)

        def timed_out() -> None:
            if not fut.done():
                self.stats.timeouts += 1
                fail(RpcError(f"{method.name} to {addr} timed out after {timeout_s:.3g}s"))

        timer = loop.call_later(timeout_s, timed_out)
        fut.add_done_callback(lambda _: timer.cancel())
        target = self.net.nodes.get(addr)
        if target is None or addr in self.net.down:
            loop.call_later(self.net.delay(), fail, Unreachable(f"cannot connect to {addr}"))
            return fut
        version = min(self.max_version, target.max_version)
        payload = _pack(method.codec(version).encode_request(body))

        def reply(ok: bool, data: bytes) -> None:
            def arrive() -> None:
                if fut.done():
                    return
                value = msgpack.unpackb(data, raw=False, strict_map_key=False)
                try:
                    if ok:
                        fut.set_result(schema.decode_reply(method, version, value))
                    else:
                        fut.set_exception(schema.error_from_wire(version, value))
                except RpcError as e:
                    fut.set_exception(e)

            self.net.deliver(addr, self.addr, arrive)

        def on_arrival() -> None:
            target.serve(self.node_id, version, method.name, payload, reply)

        if (
            self.net.deliver(self.addr, addr, on_arrival)
            and self.net.rng.random() < self.net.config.duplicate
        ):
            self.net.deliver(
                self.addr,
                addr,
                lambda: target.serve(
                    self.node_id, version, method.name, payload, lambda ok, d: None
                ),
            )
        return fut

    def serve(
        self,
        src: str,
        version: int,
        name: str,
        payload: bytes,
        reply: Callable[[bool, bytes], None],
    ) -> None:
        entry = self.handlers.get(name)
        self.stats.served += 1
        method = entry[0] if entry is not None else None

        def failed(e: Exception) -> None:
            as_reply, body = schema.failure_body(method, version, schema.as_remote_error(e))
            reply(as_reply, _pack(body))

        if entry is None:
            failed(RemoteError(f"unknown method {name!r}", schema.ErrorCode.UNKNOWN_METHOD))
            return
        method, handler = entry
        body = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        try:
            result = handler(schema.decode_request(method, version, body), src)
        except Exception as e:
            failed(e)
            return
        encode = method.codec(version).encode_reply
        if not inspect.isawaitable(result):
            reply(True, _pack(encode(result)))
            return

        async def finish(aw: Any) -> None:
            try:
                value = await aw
            except asyncio.CancelledError:
                raise
            except Exception as e:
                failed(e)
                return
            reply(True, _pack(encode(value)))

        task = asyncio.ensure_future(finish(result))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def call(
        self, addr: str, method: Method[Any, Rep], body: Any, timeout_s: float = 5.0
    ) -> Rep:
        return await self.request(addr, method, body, timeout_s)

    def crash(self) -> None:
        """The process died: in-flight work stops, callers see failures."""
        self.net.down.add(self.addr)
        for t in sorted(self.tasks, key=lambda t: int(t.get_name().rpartition("-")[2] or 0)):
            t.cancel()
        for f in list(self.pending.values()):
            if not f.done():
                f.set_exception(RpcError("the local process died"))
                f.exception()

    async def close(self) -> None:
        self.crash()


def _pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def _ignore(ok: bool, data: bytes) -> None:
    return None
