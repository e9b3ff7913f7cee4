"""A userspace TCP fault proxy: delay, loss stalls and cuts between node pairs.

Each ``FaultyLink`` is one directed link ``i -> j``: a listener on 127.0.0.1
that forwards every accepted connection to node ``j``'s real address and copies
bytes both ways. Node ``i`` dials the link instead of ``j`` (``RpcConfig.routes``
maps the real address to the link's), so every fault set on the link applies to
both byte directions of the connections ``i`` opens to ``j``. ``LinkMesh`` owns
one link per ordered pair and offers faults over sets of nodes.

We use a proxy rather than netem or network namespaces: it needs no root and no
kernel module, and gives delay, loss and cuts through one mechanism.

What each fault means, and what it never does:

* **delay**: every chunk read from one side is written to the other no earlier
  than ``delay_s`` (plus or minus a uniform ``jitter_s``) after it was read.
  Chunks of one direction pass through a FIFO and a single deliverer task, so
  a later chunk never overtakes an earlier one, whatever the jitter.
* **loss**: TCP turns packet loss into retransmission stalls, not into missing
  bytes. With probability ``loss_p`` a chunk is held back ``stall_s`` longer;
  the FIFO holds everything behind it too. Bytes are never dropped or altered:
  that would corrupt the framed stream above, which real TCP never does.
* **cut**: open connections are aborted with a reset on both sides, and new
  ones are accepted and reset at once (a fast, visible failure) until ``heal``.
* **reset_connections**: the open connections are reset once; new ones pass.

Fault changes are plain method calls that take effect at once: a cut aborts the
open connections in the same call, and chunks read after a ``set_delay`` or
``set_loss`` get the new schedule. Chunks already queued keep the delivery time
they were given, like packets already on the wire.

Waits on a proxied connection (reading an idle peer, draining to a slow one)
last as long as the link lets them: ``cut``, ``reset_connections`` and
``close`` end them. Dialing the target and closing are bounded by timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024  # largest read from one side, and the unit of delay and loss
MAX_QUEUED_CHUNKS = 64  # per direction; a full queue stops reading (TCP backpressure)
CONNECT_TIMEOUT_S = 2.0  # dialing the target; on expiry the client connection is reset
CLOSE_TIMEOUT_S = 2.0  # a graceful close that has not finished by then is reset
DEFAULT_STALL_S = 0.3  # extra hold of a "lost" chunk: about one retransmission timeout
TASK_PREFIX = "fault-proxy"  # every task a link starts is named with this prefix


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkFaults:
    """The faults a link applies now. The default is a healthy link."""

    cut: bool = False  # reset open connections and refuse new ones
    delay_s: float = 0.0  # mean added one-way latency per chunk
    jitter_s: float = 0.0  # delay is uniform in [delay_s - jitter_s, delay_s + jitter_s], >= 0
    loss_p: float = 0.0  # chance per chunk of a retransmission stall
    stall_s: float = DEFAULT_STALL_S  # length of one stall


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkStats:
    """Counters of one link since it was built."""

    connections_accepted: int  # every connection accepted, refused ones included
    connections_refused: int  # accepted while cut, reset at once
    connections_cut: int  # open connections reset by cut() or reset_connections()
    upstream_failures: int  # the target could not be dialed; the client was reset
    bytes_to_target: int  # delivered from the dialing node to the target
    bytes_from_target: int  # delivered from the target back to the dialing node
    chunks_stalled: int  # chunks held back by loss


def parse_addr(addr: str) -> tuple[str, int]:
    """Split ``"host:port"``; raise ValueError naming the address if malformed."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address must be 'host:port', got {addr!r}")
    return host, int(port)


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Abort a connection so that the peer sees a reset rather than a clean EOF."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (OSError, ValueError):
            pass  # already closed (uvloop says so with a ValueError): nothing to reset
    writer.transport.abort()


async def _wait_closed(writer: asyncio.StreamWriter, *, graceful: bool) -> None:
    """Close ``writer`` (flushing it if graceful) and wait, bounded, until it is closed."""
    if graceful:
        writer.close()
    else:
        _abort_with_rst(writer)
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await writer.wait_closed()
    except TimeoutError:
        _abort_with_rst(writer)  # the peer stopped reading; abort never waits
    except OSError:
        pass  # the connection ended with an error: it is closed all the same


@dataclass(frozen=True, slots=True, kw_only=True)
class _Chunk:
    due: float  # loop time at which the chunk may be written
    data: bytes


class _Pipe:
    """One proxied connection: the accepted client side and the dialed upstream side."""

    __slots__ = ("aborted", "client", "task", "upstream")

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True
        _abort_with_rst(self.client)
        if self.upstream is not None:
            _abort_with_rst(self.upstream)
        if self.task is not None:
            self.task.cancel()


class FaultyLink:
    """One directed link: a local listener forwarding each connection to ``target``."""

    def __init__(
        self,
        target: str,
        *,
        rng: random.Random,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "",
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self._target = parse_addr(target)
        self._rng = rng
        self._host = host
        self._port = port
        self.name = name or f"->{target}"
        self._connect_timeout_s = connect_timeout_s
        self._faults = LinkFaults()
        self._server: asyncio.Server | None = None
        self._closed = False
        self._pipes: set[_Pipe] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepted = self._refused = self._cut = self._upstream_failures = 0
        self._bytes_to_target = self._bytes_from_target = self._stalled = 0

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None or self._closed:
            raise RuntimeError(f"link {self.name} already started")
        self._server = await asyncio.start_server(
            self._accept, self._host, self._port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening, reset every connection and wait for every task the link started."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            pipe.abort()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=CLOSE_TIMEOUT_S)
            if pending:
                log.error("link %s: %d tasks did not finish on close", self.name, len(pending))
        if self._server is not None:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- what it is ----------------------------------------------------------------

    @property
    def address(self) -> str:
        """Where to dial to go through this link: ``"127.0.0.1:port"``."""
        if self._server is None:
            raise RuntimeError(f"link {self.name} not started")
        return f"{self._host}:{self._port}"

    @property
    def target(self) -> str:
        return f"{self._target[0]}:{self._target[1]}"

    @property
    def faults(self) -> LinkFaults:
        return self._faults

    @property
    def open_connections(self) -> int:
        return len(self._pipes)

    @property
    def stats(self) -> LinkStats:
        return LinkStats(
            connections_accepted=self._accepted,
            connections_refused=self._refused,
            connections_cut=self._cut,
            upstream_failures=self._upstream_failures,
            bytes_to_target=self._bytes_to_target,
            bytes_from_target=self._bytes_from_target,
            chunks_stalled=self._stalled,
        )

    # -- faults --------------------------------------------------------------------

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until ``heal``."""
        self._faults = replace(self._faults, cut=True)
        self.reset_connections()

    def heal(self) -> None:
        """Forward new connections again. Delay and loss are left as they are."""
        self._faults = replace(self._faults, cut=False)

    def set_delay(self, mean_s: float, jitter_s: float = 0.0) -> None:
        if mean_s < 0:
            raise ValueError(f"mean_s must be >= 0, got {mean_s}")
        if jitter_s < 0:
            raise ValueError(f"jitter_s must be >= 0, got {jitter_s}")
        self._faults = replace(self._faults, delay_s=mean_s, jitter_s=jitter_s)

    def set_loss(self, p: float, stall_s: float = DEFAULT_STALL_S) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if stall_s < 0:
            raise ValueError(f"stall_s must be >= 0, got {stall_s}")
        self._faults = replace(self._faults, loss_p=p, stall_s=stall_s)

    def reset_connections(self) -> None:
        """Reset the open connections once; new ones are still forwarded."""
        for pipe in list(self._pipes):
            if not pipe.aborted:
                pipe.abort()
                self._cut += 1

    def clear(self) -> None:
        """No delay, no loss, not cut."""
        self._faults = LinkFaults()

    def update_target(self, addr: str) -> None:
        """Forward new connections to ``addr``; open ones stay where they are."""
        self._target = parse_addr(addr)

    # -- forwarding ----------------------------------------------------------------

    def _own(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("link %s: task %s failed", self.name, task.get_name(), exc_info=exc)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        self._accepted += 1
        if self._closed or self._faults.cut:
            self._refused += 1
            _abort_with_rst(writer)
            task = loop.create_task(
                _wait_closed(writer, graceful=False), name=f"{TASK_PREFIX} {self.name} refuse"
            )
            self._own(task)
            return
        pipe = _Pipe(writer)
        pipe.task = loop.create_task(self._run(pipe, reader), name=f"{TASK_PREFIX} {self.name}")
        self._pipes.add(pipe)
        self._own(pipe.task)

    async def _run(self, pipe: _Pipe, client_reader: asyncio.StreamReader) -> None:
        graceful = False
        try:
            host, port = self._target
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    up_reader, pipe.upstream = await asyncio.open_connection(host, port)
            except (OSError, TimeoutError):
                self._upstream_failures += 1
                return
            if pipe.aborted:  # cut while dialing, before the cancellation landed
                return
            graceful = await self._forward(pipe.client, client_reader, pipe.upstream, up_reader)
        finally:
            self._pipes.discard(pipe)
            graceful = graceful and not pipe.aborted
            await _wait_closed(pipe.client, graceful=graceful)
            if pipe.upstream is not None:
                await _wait_closed(pipe.upstream, graceful=graceful)

    async def _forward(
        self,
        client: asyncio.StreamWriter,
        client_reader: asyncio.StreamReader,
        upstream: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
    ) -> bool:
        """Copy both ways until both sides sent EOF (True) or one side failed (False)."""
        to_target: asyncio.Queue[_Chunk | None] = asyncio.Queue(MAX_QUEUED_CHUNKS)
        from_target: asyncio.Queue[_Chunk | None] = asyncio.Queue(MAX_QUEUED_CHUNKS)
        ok = True
        try:
            async with asyncio.TaskGroup() as tg:
                name = f"{TASK_PREFIX} {self.name}"
                tg.create_task(self._read(client_reader, to_target), name=f"{name} read >")
                tg.create_task(self._deliver(to_target, upstream, True), name=f"{name} write >")
                tg.create_task(self._read(up_reader, from_target), name=f"{name} read <")
                tg.create_task(self._deliver(from_target, client, False), name=f"{name} write <")
        except* OSError:
            ok = False  # a reset or broken pipe on one side: the finally resets the other
        return ok

    async def _read(
        self, reader: asyncio.StreamReader, queue: asyncio.Queue[_Chunk | None]
    ) -> None:
        loop = asyncio.get_running_loop()
        while data := await reader.read(CHUNK_BYTES):
            await queue.put(_Chunk(due=self._due(loop.time()), data=data))
        await queue.put(None)

    def _due(self, now: float) -> float:
        """When a chunk read at ``now`` may be delivered, under the faults set now."""
        faults = self._faults
        due = now
        if faults.delay_s or faults.jitter_s:
            jitter = self._rng.uniform(-faults.jitter_s, faults.jitter_s) if faults.jitter_s else 0
            due += max(0.0, faults.delay_s + jitter)
        if faults.loss_p and self._rng.random() < faults.loss_p:
            due += faults.stall_s
            self._stalled += 1
        return due

    async def _deliver(
        self, queue: asyncio.Queue[_Chunk | None], writer: asyncio.StreamWriter, to_target: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        while (chunk := await queue.get()) is not None:
            wait_s = chunk.due - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            writer.write(chunk.data)
            if to_target:
                self._bytes_to_target += len(chunk.data)
            else:
                self._bytes_from_target += len(chunk.data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # pass the half-close on; the other direction may go on


class LinkMesh:
    """One ``FaultyLink`` per ordered pair of nodes, with faults over sets of nodes.

    ``nodes`` maps each node id to the real ``host:port`` of its peer listener.
    Node ``src`` reaches ``dst`` by dialing ``address(src, dst)``; give it
    ``routes_for(src)`` as its route table. Each link draws from its own
    ``random.Random`` seeded from ``rng`` in sorted pair order, so one seed fixes
    every link's choices.
    """

    def __init__(
        self, nodes: Mapping[str, str], rng: random.Random, *, host: str = "127.0.0.1"
    ) -> None:
        self._nodes = dict(nodes)
        self._links: dict[tuple[str, str], FaultyLink] = {}
        for src in sorted(self._nodes):
            for dst in sorted(self._nodes):
                if src != dst:
                    self._links[src, dst] = FaultyLink(
                        self._nodes[dst],
                        rng=random.Random(rng.getrandbits(64)),
                        host=host,
                        name=f"{src}->{dst}",
                    )

    async def start(self) -> None:
        try:
            for link in self._links.values():
                await link.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for link in self._links.values():
            await link.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def nodes(self) -> Mapping[str, str]:
        return dict(self._nodes)

    @property
    def links(self) -> Mapping[tuple[str, str], FaultyLink]:
        """Every link, keyed by ``(src, dst)``."""
        return dict(self._links)

    def link(self, src: str, dst: str) -> FaultyLink:
        try:
            return self._links[src, dst]
        except KeyError:
            raise KeyError(f"no link {src}->{dst}; nodes are {sorted(self._nodes)}")

    def address(self, src: str, dst: str) -> str:
        """What node ``src`` dials to reach ``dst``."""
        return self.link(src, dst).address

    def routes_for(self, src: str) -> dict[str, str]:
        """Real address of each other node -> the link ``src`` must dial instead."""
        self._check(src)
        return {self._nodes[dst]: self.address(src, dst) for dst in self._nodes if dst != src}

    def stats(self) -> dict[tuple[str, str], LinkStats]:
        return {pair: link.stats for pair, link in self._links.items()}

    def partition(self, groups: list[set[str]]) -> None:
        """Cut every link between different groups, both ways; heal links within a group.

        The groups must be disjoint and cover every node, so that the call says
        the whole connectivity. Delay and loss are left as they are.
        """
        group_of: dict[str, int] = {}
        for i, group in enumerate(groups):
            for node in group:
                self._check(node)
                if node in group_of:
                    raise ValueError(f"partition groups overlap on node {node!r}")
                group_of[node] = i
        if missing := sorted(set(self._nodes) - set(group_of)):
            raise ValueError(f"partition groups leave out nodes {missing}")
        for (src, dst), link in self._links.items():
            if group_of[src] == group_of[dst]:
                link.heal()
            else:
                link.cut()

    def isolate(self, node: str) -> None:
        """Cut every link to and from ``node``."""
        for link in self._touching(node):
            link.cut()

    def heal_all(self) -> None:
        """No cut, delay or loss anywhere."""
        for link in self._links.values():
            link.clear()

    def slow(self, node: str, mean_s: float, jitter_s: float = 0.0) -> None:
        """Delay every link to and from ``node``."""
        for link in self._touching(node):
            link.set_delay(mean_s, jitter_s)

    def lossy(self, node: str, p: float, stall_s: float = DEFAULT_STALL_S) -> None:
        """Make every link to and from ``node`` lossy (stalls, never lost bytes)."""
        for link in self._touching(node):
            link.set_loss(p, stall_s)

    def update_target(self, node: str, addr: str) -> None:
        """``node`` now listens on ``addr``: new connections to it go there."""
        self._check(node)
        parse_addr(addr)
        self._nodes[node] = addr
        for (_, dst), link in self._links.items():
            if dst == node:
                link.update_target(addr)

    def _touching(self, node: str) -> Iterable[FaultyLink]:
        self._check(node)
        return [link for (src, dst), link in self._links.items() if node in (src, dst)]

    def _check(self, node: str) -> None:
        if node not in self._nodes:
            raise KeyError(f"unknown node {node!r}; nodes are {sorted(self._nodes)}")
