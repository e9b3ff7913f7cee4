"""Fuzzing the node-to-node frame decoder and handshake.

Random bytes, truncated valid streams, a valid HELLO (v1 or v2) followed by garbage,
oversized and deeply nested frames, frames with the wrong types in every slot, broken
handshakes, and strangers knocking on a server with a cluster secret. After each:
nothing escapes, a session that counted an error has failed (and only that one),
requests are served only after a valid handshake, every valid request is answered, and
what the server writes is well-formed frames.

Most examples drive the sans-I/O core (``dynamo.net.session.Session``) directly: no
event loop, no transport, exact. A thousand go over real sockets to a listening
``Rpc`` (the asyncio shell) while a well-formed client keeps calling it on its own
connection. Examples are derandomized, so CI sees the same inputs every run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from dynamo.net.rpc import Connection, Rpc, RpcConfig, RpcStats
from dynamo.net.schema import CARRIED, Method
from dynamo.net.session import (
    ERROR,
    REPLY,
    REQUEST,
    Frame,
    FrameTooLarge,
    Session,
    SessionConfig,
    SessionStats,
)
from tests.support.frames import (
    CLUSTER,
    HELLO_FRAME,
    MAX_FRAME,
    METHODS,
    SCENARIOS,
    Scenario,
    check_answers,
    pack,
    written_frames,
)

FAKE_EXAMPLES = 10_000
SOCKET_EXAMPLES = 1000
ECHO, AECHO, BOOM = (Method(name, CARRIED, CARRIED) for name in METHODS[:3])


def _fuzzing(examples: int) -> settings:
    """Derandomized, so CI sees the same inputs every run."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=False,
    )


# --- Servers -----------------------------------------------------------------------------------


def _boom(body: Any, peer: str) -> Any:
    raise ValueError("boom")


async def _aecho(body: Any, peer: str) -> Any:
    await asyncio.sleep(0)
    return [body, peer]


def _server(node_id: str, secret: bytes | None = None) -> Rpc:
    rpc = Rpc(RpcConfig(cluster=CLUSTER, node_id=node_id, secret=secret, max_frame_bytes=MAX_FRAME))
    rpc.register(ECHO, lambda body, peer: [body, peer])
    rpc.register(AECHO, _aecho)
    rpc.register(BOOM, _boom)
    return rpc


def _errors(stats: SessionStats) -> int:
    return stats.protocol_errors + stats.auth_failures + stats.frames_too_large


def _session(secret: bool) -> Session:
    config = SessionConfig(
        cluster=CLUSTER,
        node_id="guarded" if secret else "server",
        secret=b"s3cret" if secret else None,
        max_frame_bytes=MAX_FRAME,
    )
    return Session(config, dialer=False, nonce=b"s" * 16, stats=SessionStats())


def _answer(session: Session, frame: Frame) -> None:
    """What the server's handlers answer to a request (the shell's part, done by hand)."""
    _, rid, method, body = frame
    if method in ("echo", "aecho"):
        try:
            session.send(REPLY, rid, "", [body, session.peer_node])
            return
        except (FrameTooLarge, TypeError, ValueError):
            pass  # e.g. nesting beyond what msgpack packs: an error answers instead
    session.send(ERROR, rid, "", f"cannot serve {method[:64]!r}")


def _drive(s: Scenario) -> tuple[int, int]:
    """Feed ``s`` to a listener's session and check what it did; (served, errors)."""
    session = _session(s.secret)
    written = bytearray()
    served = 0
    for chunk in s.chunks():
        for event in session.receive(chunk):  # must never raise
            if type(event) is list and event[0] == REQUEST:
                served += 1
                _answer(session, event)
        written += session.take_outgoing()
        if session.failure is not None:
            assert session.receive(HELLO_FRAME) == [], "a failed session took more input"
            break
    errors = _errors(session.stats)
    failed = session.failure is not None
    if errors:
        assert failed, f"{s.kind}: an error was counted but the session goes on"
    if failed:
        assert errors == 1, f"{s.kind}: a failure counted {errors} times"
    if s.close is True:
        assert failed, f"{s.kind}: the server kept a connection it must drop"
    if s.close is False:
        assert not failed, f"{s.kind}: dropped a good connection ({session.failure})"
    frames = written_frames(bytes(written), complete=True)
    check_answers(s, frames, served, all_in=True)
    if frames and s.handshake and not s.secret:
        assert frames[0][3].get("v") == session.version or failed, (frames[0], session.version)
    return served, errors


@pytest.mark.timeout(300)  # 6x its run on a slowish day: a slow day is 2x
def test_the_frame_core_without_a_loop() -> None:
    totals = {"served": 0, "errors": 0, "guarded served": 0, "guarded errors": 0}

    @_fuzzing(FAKE_EXAMPLES)
    @given(scenario=SCENARIOS)
    def feed(scenario: Scenario) -> None:
        served, errors = _drive(scenario)
        prefix = "guarded " if scenario.secret else ""
        totals[prefix + "served"] += served
        totals[prefix + "errors"] += errors

    feed()
    assert totals["served"] > 0, totals
    assert totals["errors"] > 0, totals
    assert totals["guarded served"] == 0, totals
    assert totals["guarded errors"] > 0, totals


@pytest.fixture
def quiet_rpc_log() -> Iterator[None]:
    """The server logs a warning for every connection it drops: thousands here."""
    logger = logging.getLogger("dynamo.net.rpc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


# --- Real sockets ------------------------------------------------------------------------------


async def _send_raw(port: int, s: Scenario) -> bytes:
    """Send ``s`` on a new connection; wait for the server to close it; what came back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = b""
    try:
        for chunk in s.chunks():
            writer.write(chunk)
            await writer.drain()
        if s.close is not True:
            writer.write_eof()  # else the server must close it on its own
        got = await asyncio.wait_for(reader.read(), 5)
    except (ConnectionResetError, BrokenPipeError):
        pass  # an abort() with our bytes unread is a reset: fine
    except TimeoutError:
        raise AssertionError(f"{s.kind}: the server kept the connection open") from None
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionResetError, BrokenPipeError):
            pass
    return got


async def _wait_for(cond: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not cond():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


@pytest.mark.usefixtures("quiet_rpc_log")
def test_frames_over_real_sockets_close_only_their_connection() -> None:
    problems: list[dict[str, Any]] = []
    examples = 0
    with asyncio.Runner() as runner:
        loop = runner.get_loop()
        loop.set_exception_handler(lambda _, context: problems.append(context))
        plain, guarded = _server("server"), _server("guarded", secret=b"s3cret")
        ports = {
            False: runner.run(plain.listen("127.0.0.1", 0)),
            True: runner.run(guarded.listen("127.0.0.1", 0)),
        }
        addr = f"127.0.0.1:{ports[False]}"
        client = Rpc(RpcConfig(cluster=CLUSTER, node_id="client", max_frame_bytes=MAX_FRAME))
        assert runner.run(client.call(addr, ECHO, "hi")) == ["hi", "client"]
        (client_conn,) = client.connections
        (served_conn,) = plain.connections

        async def one(s: Scenario, i: int) -> None:
            rpc = guarded if s.secret else plain
            served = rpc.stats.served
            got = await _send_raw(ports[s.secret], s)
            frames = written_frames(got, complete=False)
            check_answers(s, frames, rpc.stats.served - served, all_in=False)
            # The fuzzed connection is gone; the client's is the same one, still serving.
            await _wait_for(lambda: plain.connections == {served_conn}, "the server to close it")
            await _wait_for(lambda: not guarded.connections, "the guarded server to close it")
            assert await client.call(addr, ECHO, i, timeout_s=5) == [i, "client"]
            assert client.connections == {client_conn}
            assert not client_conn.closed

        @_fuzzing(SOCKET_EXAMPLES)
        @given(scenario=SCENARIOS)
        def send(scenario: Scenario) -> None:
            nonlocal examples
            examples += 1
            runner.run(one(scenario, examples))

        try:
            send()
            assert not problems, problems[:3]
        finally:
            runner.run(client.close())
            runner.run(plain.close())
            runner.run(guarded.close())
    assert examples >= SOCKET_EXAMPLES


# --- Regressions -----------------------------------------------------------------------------
# Bugs this fuzzing found (now fixed): each exact trigger stays as a test.


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.is_closing(), "a write after close()"
        self.written += data

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.1", 4000) if name == "peername" else default


def _feed_raw(data: bytes, chunk: int) -> tuple[Connection, FakeTransport, RpcStats]:
    async def run() -> tuple[Connection, FakeTransport, RpcStats]:
        rpc = _server("server")
        conn = Connection(rpc, dialer=False)
        transport = FakeTransport()
        conn.connection_made(transport)
        for i in range(0, len(data), chunk):
            conn.data_received(data[i : i + chunk])
            if conn.closed:
                break
        await asyncio.sleep(0)
        return conn, transport, rpc.stats

    return asyncio.run(run())


@pytest.mark.usefixtures("quiet_rpc_log")
@pytest.mark.parametrize("handshake", [True, False], ids=["after hello", "stranger"])
def test_an_oversized_frame_in_pieces_is_refused(handshake: bool) -> None:
    """``max_frame_bytes`` is msgpack's ``max_buffer_size``, which bounds only the bytes
    not yet parsed: the streaming unpacker keeps what it has parsed of a frame, so a
    frame arriving in pieces (as TCP delivers it) may be any size. Here 100 KiB through
    a 4 KiB limit; nested arrays make it unbounded. The frame is decoded before the
    handshake is checked, so anyone who can reach the peer port can make a node hold
    that much memory."""
    frame = pack([REQUEST, 1, "echo", [b"x" * 1000] * 100])
    data = (HELLO_FRAME if handshake else b"") + frame
    conn, transport, stats = _feed_raw(data, 1000)
    assert conn.closed
    assert transport.is_closing()
    assert stats.frames_too_large == 1
    assert stats.served == 0


@pytest.mark.usefixtures("quiet_rpc_log")
def test_an_unknown_long_method_name_gets_an_error_reply() -> None:
    """A request for an unknown method whose name's ``repr`` makes the ERROR reply larger
    than the frame limit: ``_serve`` sends ``f"unknown method {method!r}"`` and ``_send``
    raises ``RpcError`` out of ``data_received`` (asyncio then logs "Fatal error:
    protocol.data_received() call failed" and drops the connection, uncounted).
    ``repr`` quadruples control characters, so a 1,100-character name is enough here."""
    data = HELLO_FRAME + pack([REQUEST, 1, "\x00" * 1100, None])
    try:
        conn, _, stats = _feed_raw(data, len(data))
    except Exception as e:
        raise AssertionError(f"{type(e).__name__} escaped data_received: {e}") from e
    assert not conn.closed or stats.protocol_errors == 1
