"""The TCP fault proxy over real sockets on 127.0.0.1: echo servers behind links."""

from __future__ import annotations

import asyncio
import hashlib
import random
import struct
from collections.abc import AsyncIterator, Callable

import pytest

from dynamo.tools.chaos.proxy import TASK_PREFIX, FaultyLink, LinkFaults, LinkMesh, parse_addr
from dynamo.tools.localcluster import free_ports

SEED = 20240611
WAIT_S = 5.0  # bound on every wait that should succeed at once
CLOCK_SLACK_S = 0.002  # timers may fire up to the clock resolution early


class EchoServer:
    """Echoes every byte back, passes a half-close on, and counts its connections."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.addr = ""

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.addr = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self.addr

    @property
    def open_connections(self) -> int:
        return len(self._writers)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        task = asyncio.get_running_loop().create_task(self._echo(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()
        except OSError:
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=WAIT_S)
        assert not self._tasks


class Dialer:
    """Opens client connections and closes whatever the test left open."""

    def __init__(self) -> None:
        self._writers: list[asyncio.StreamWriter] = []

    async def open(self, addr: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = parse_addr(addr)
        async with asyncio.timeout(WAIT_S):
            reader, writer = await asyncio.open_connection(host, port)
        self._writers.append(writer)
        return reader, writer

    async def close_all(self) -> None:
        writers, self._writers = self._writers, []
        for writer in writers:
            writer.transport.abort()
            try:
                await asyncio.wait_for(writer.wait_closed(), WAIT_S)
            except OSError:
                pass


async def roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    async with asyncio.timeout(WAIT_S):
        await writer.drain()
        return await reader.readexactly(len(data))


async def sees_closed(reader: asyncio.StreamReader) -> bool:
    """True if the peer closed or reset the connection without sending anything."""
    try:
        return await asyncio.wait_for(reader.read(1024), WAIT_S) == b""
    except OSError:
        return True


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail after WAIT_S naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


async def transfer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes, timeout_s: float
) -> bytes:
    """Send ``payload`` and a half-close while reading the echo until EOF."""

    async def send() -> None:
        for i in range(0, len(payload), 100_000):
            writer.write(payload[i : i + 100_000])
            await writer.drain()
        writer.write_eof()

    async with asyncio.timeout(timeout_s), asyncio.TaskGroup() as tg:
        tg.create_task(send())
        received = tg.create_task(reader.read(-1))
    return received.result()


def proxy_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(TASK_PREFIX)]


@pytest.fixture
async def echo() -> AsyncIterator[tuple[EchoServer, str]]:
    server = EchoServer()
    addr = await server.start()
    yield server, addr
    await server.close()


@pytest.fixture
async def dialer() -> AsyncIterator[Dialer]:
    d = Dialer()
    yield d
    await d.close_all()


@pytest.fixture
async def link(echo: tuple[EchoServer, str]) -> AsyncIterator[FaultyLink]:
    print(f"seed={SEED}")
    async with FaultyLink(echo[1], rng=random.Random(SEED), name="test") as lk:
        yield lk
    assert proxy_tasks() == []


async def test_bytes_pass_unchanged_and_are_counted(link: FaultyLink, dialer: Dialer) -> None:
    reader, writer = await dialer.open(link.address)
    message = bytes(range(256)) * 4
    assert await roundtrip(reader, writer, message) == message
    stats = link.stats
    assert stats.connections_accepted == 1
    assert stats.bytes_to_target == stats.bytes_from_target == len(message)


async def test_five_megabytes_arrive_intact(link: FaultyLink, dialer: Dialer) -> None:
    payload = random.Random(SEED).randbytes(5 * 1024 * 1024)
    reader, writer = await dialer.open(link.address)
    loop = asyncio.get_running_loop()
    start = loop.time()
    received = await transfer(reader, writer, payload, timeout_s=60.0)
    elapsed = loop.time() - start
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
    assert link.stats.bytes_to_target == link.stats.bytes_from_target == len(payload)
    print(f"5 MiB echoed through one link in {elapsed:.3f}s: {5 / elapsed:.1f} MiB/s each way")


async def test_delay_adds_at_least_the_delay_each_way(link: FaultyLink, dialer: Dialer) -> None:
    reader, writer = await dialer.open(link.address)
    assert await roundtrip(reader, writer, b"warm") == b"warm"
    link.set_delay(0.1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await roundtrip(reader, writer, b"slow") == b"slow"
    assert loop.time() - start >= 2 * 0.1 - CLOCK_SLACK_S


async def test_delay_with_jitter_never_reorders(link: FaultyLink, dialer: Dialer) -> None:
    # Jitter as large as the mean: a later chunk is often given an earlier due time.
    link.set_delay(0.02, jitter_s=0.02)
    reader, writer = await dialer.open(link.address)
    messages = [struct.pack(">I", i) for i in range(200)]
    for message in messages:
        writer.write(message)
        await asyncio.wait_for(writer.drain(), WAIT_S)
        await asyncio.sleep(0)  # let the proxy read it as a chunk of its own
    received = await asyncio.wait_for(reader.readexactly(4 * len(messages)), WAIT_S)
    assert received == b"".join(messages)


async def test_cut_resets_open_connections_and_refuses_until_heal(
    link: FaultyLink, echo: tuple[EchoServer, str], dialer: Dialer
) -> None:
    server, _ = echo
    reader, writer = await dialer.open(link.address)
    assert await roundtrip(reader, writer, b"before") == b"before"

    link.cut()
    assert link.faults.cut
    assert await sees_closed(reader)
    await eventually(lambda: server.open_connections == 0, "the target side to be closed")
    assert link.stats.connections_cut == 1

    accepted = server.accepted
    reader, writer = await dialer.open(link.address)
    assert await sees_closed(reader)
    assert link.stats.connections_refused == 1
    assert server.accepted == accepted  # a refused connection never reaches the target

    link.heal()
    reader, writer = await dialer.open(link.address)
    assert await roundtrip(reader, writer, b"after") == b"after"
    assert link.open_connections == 1


async def test_reset_connections_drops_open_ones_but_accepts_new(
    link: FaultyLink, dialer: Dialer
) -> None:
    reader, writer = await dialer.open(link.address)
    assert await roundtrip(reader, writer, b"x") == b"x"
    link.reset_connections()
    assert await sees_closed(reader)
    reader, writer = await dialer.open(link.address)
    assert await roundtrip(reader, writer, b"y") == b"y"
    assert link.stats.connections_cut == 1
    assert link.stats.connections_refused == 0


async def test_loss_stalls_every_lost_chunk(link: FaultyLink, dialer: Dialer) -> None:
    reader, writer = await dialer.open(link.address)
    link.set_loss(1.0, stall_s=0.05)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await roundtrip(reader, writer, b"lost") == b"lost"
    assert loop.time() - start >= 2 * 0.05 - CLOCK_SLACK_S
    assert link.stats.chunks_stalled >= 2


async def test_loss_delivers_every_byte_in_order(link: FaultyLink, dialer: Dialer) -> None:
    link.set_loss(0.5, stall_s=0.005)
    payload = random.Random(SEED).randbytes(1024 * 1024)
    reader, writer = await dialer.open(link.address)
    received = await transfer(reader, writer, payload, timeout_s=30.0)
    assert received == payload
    assert link.stats.chunks_stalled > 0


async def test_clear_restores_a_healthy_link(link: FaultyLink, dialer: Dialer) -> None:
    link.set_delay(0.5, 0.1)
    link.set_loss(0.3)
    link.cut()
    link.clear()
    assert link.faults == LinkFaults()
    reader, writer = await dialer.open(link.address)
    assert await roundtrip(reader, writer, b"ok") == b"ok"


def test_bad_fault_values_name_the_argument() -> None:
    lk = FaultyLink("127.0.0.1:1", rng=random.Random(SEED))
    with pytest.raises(ValueError, match="mean_s"):
        lk.set_delay(-1.0)
    with pytest.raises(ValueError, match="jitter_s"):
        lk.set_delay(0.1, -0.1)
    with pytest.raises(ValueError, match="p must"):
        lk.set_loss(1.5)
    with pytest.raises(ValueError, match="host:port"):
        FaultyLink("nonsense", rng=random.Random(SEED))


def _free_port() -> int:
    return free_ports(1)[0]


async def test_unreachable_target_resets_the_client(dialer: Dialer) -> None:
    async with FaultyLink(f"127.0.0.1:{_free_port()}", rng=random.Random(SEED)) as lk:
        reader, _ = await dialer.open(lk.address)
        assert await sees_closed(reader)
        assert lk.stats.upstream_failures == 1
    assert proxy_tasks() == []


async def test_update_target_sends_new_connections_elsewhere(
    link: FaultyLink, dialer: Dialer
) -> None:
    other = EchoServer()
    addr = await other.start()
    try:
        link.update_target(addr)
        assert link.target == addr
        reader, writer = await dialer.open(link.address)
        assert await roundtrip(reader, writer, b"moved") == b"moved"
        assert other.accepted == 1
    finally:
        await dialer.close_all()
        await other.close()


async def test_close_leaves_no_task_even_with_bytes_in_flight(
    echo: tuple[EchoServer, str], dialer: Dialer
) -> None:
    lk = FaultyLink(echo[1], rng=random.Random(SEED))
    await lk.start()
    try:
        lk.set_delay(10.0)
        reader, writer = await dialer.open(lk.address)
        writer.write(b"held for ten seconds")
        await asyncio.wait_for(writer.drain(), WAIT_S)
        await eventually(
            lambda: lk.stats.bytes_to_target == 0 and lk.open_connections == 1, "accept"
        )
    finally:
        await lk.close()
    assert proxy_tasks() == []
    assert await sees_closed(reader)


@pytest.fixture
async def three_nodes() -> AsyncIterator[dict[str, EchoServer]]:
    servers = {name: EchoServer() for name in ("a", "b", "c")}
    for server in servers.values():
        await server.start()
    yield servers
    for server in servers.values():
        await server.close()


async def test_mesh_partition_cuts_between_groups_and_heals(
    three_nodes: dict[str, EchoServer], dialer: Dialer
) -> None:
    nodes = {name: server.addr for name, server in three_nodes.items()}
    print(f"seed={SEED}")
    async with LinkMesh(nodes, random.Random(SEED)) as mesh:
        assert set(mesh.routes_for("a")) == {nodes["b"], nodes["c"]}
        assert mesh.routes_for("a")[nodes["c"]] == mesh.address("a", "c")

        mesh.partition([{"a", "b"}, {"c"}])
        reader, writer = await dialer.open(mesh.address("a", "b"))
        assert await roundtrip(reader, writer, b"a->b") == b"a->b"
        reader, _ = await dialer.open(mesh.address("a", "c"))
        assert await sees_closed(reader)
        reader, _ = await dialer.open(mesh.address("c", "b"))
        assert await sees_closed(reader)
        assert three_nodes["c"].accepted == 0

        mesh.heal_all()
        reader, writer = await dialer.open(mesh.address("a", "c"))
        assert await roundtrip(reader, writer, b"a->c") == b"a->c"
        await dialer.close_all()
    assert proxy_tasks() == []


async def test_mesh_faults_touch_only_links_of_the_node() -> None:
    nodes = {n: f"127.0.0.1:{1000 + i}" for i, n in enumerate("abcd")}
    async with LinkMesh(nodes, random.Random(SEED)) as mesh:
        mesh.slow("a", 0.1, 0.01)
        mesh.lossy("b", 0.2)
        assert mesh.link("a", "c").faults.delay_s == 0.1
        assert mesh.link("c", "a").faults.jitter_s == 0.01
        assert mesh.link("c", "d").faults == mesh.link("d", "c").faults == LinkFaults()
        assert mesh.link("c", "b").faults.loss_p == 0.2
        assert mesh.link("a", "b").faults.delay_s == 0.1
        assert mesh.link("a", "b").faults.loss_p == 0.2

        mesh.isolate("c")
        cut = {pair for pair, lk in mesh.links.items() if lk.faults.cut}
        assert cut == {(x, "c") for x in "abd"} | {("c", x) for x in "abd"}
        mesh.partition([{"a", "c", "d"}, {"b"}])
        cut = {pair for pair, lk in mesh.links.items() if lk.faults.cut}
        assert cut == {(x, "b") for x in "acd"} | {("b", x) for x in "acd"}

        with pytest.raises(ValueError, match="leave out"):
            mesh.partition([{"a"}, {"b"}, {"c"}])
        with pytest.raises(ValueError, match="overlap"):
            mesh.partition([{"a", "b"}, {"b", "c", "d"}])
        with pytest.raises(KeyError, match="unknown node"):
            mesh.isolate("z")

        mesh.update_target("c", "127.0.0.1:2003")
        assert mesh.link("a", "c").target == "127.0.0.1:2003"
        assert mesh.routes_for("a")["127.0.0.1:2003"] == mesh.address("a", "c")

        mesh.heal_all()
        assert all(lk.faults == LinkFaults() for lk in mesh.links.values())
