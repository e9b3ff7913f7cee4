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
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynamo.net.rpc import Connection, Rpc, RpcConfig, RpcStats
from dynamo.net.schema import CARRIED, Method
from dynamo.net.session import (
    ERROR,
    HELLO,
    PROOF,
    REPLY,
    REQUEST,
    FrameTooLarge,
    Request,
    Session,
    SessionConfig,
    SessionStats,
)

CLUSTER = "fuzz"
MAX_FRAME = 4096  # small, so that oversized frames are cheap to make
FAKE_EXAMPLES = 10_000
SOCKET_EXAMPLES = 1000
PEER = "peer"
METHODS = ("echo", "aecho", "boom", "nope")  # sync, async, raising, unknown
ECHO, AECHO, BOOM = (Method(name, CARRIED, CARRIED) for name in METHODS[:3])

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


# --- Frames ------------------------------------------------------------------------------------


def _pack(obj: Any) -> bytes:
    return cast(bytes, msgpack.packb(obj, use_bin_type=True))


def _hello_body(**override: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"v": 1, "cluster": CLUSTER, "node": PEER}
    body["nonce"] = b"n" * 16
    body.update(override)
    return body


HELLO_FRAME = _pack([HELLO, 0, "hello", _hello_body()])  # a first-release dialer
HELLO_V2 = _pack([HELLO, 0, "hello", _hello_body(vmax=2)])  # this release's
HELLOS = st.sampled_from([HELLO_FRAME, HELLO_V2])

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=16)
    | st.binary(max_size=16)
)
# What a well-formed peer may send as a body: it packs and unpacks to itself.
BODIES = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=6,
)
# Anything msgpack can carry, for the slots that should not hold it.
ANYTHING = st.recursive(
    _scalars | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8)),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.one_of(st.text(max_size=4), st.integers(-(2**63), 2**63 - 1), st.binary(max_size=4)),
            inner,
            max_size=4,
        )
    ),
    max_leaves=6,
)


@dataclass(frozen=True, slots=True)
class Scenario:
    """Bytes a peer sends, and what the server must make of them.

    ``answered``: request ids that must each get exactly one REPLY or ERROR (all
    frames complete and valid). ``close``: True if the server must drop the connection,
    False if it must keep it, None if either is fine (then only the invariants hold).
    ``handshake``: the bytes start with a valid HELLO, so requests may be served.
    """

    kind: str
    data: bytes
    cuts: tuple[int, ...] = ()
    secret: bool = False
    answered: tuple[int, ...] = ()
    replies: tuple[tuple[int, int, Any], ...] = ()  # (id, REPLY or ERROR, body or None)
    close: bool | None = None
    handshake: bool = False

    def chunks(self) -> list[bytes]:
        """``data`` split at ``cuts`` (taken modulo its length), as a stream may arrive."""
        if not self.data:
            return [b""]
        points = sorted({c % len(self.data) for c in self.cuts} - {0})
        bounds = [0, *points, len(self.data)]
        return [self.data[a:b] for a, b in itertools.pairwise(bounds)]


def _requests(draw: st.DrawFn) -> list[tuple[int, str, Any]]:
    rids = draw(st.lists(st.integers(0, 2**64 - 1), unique=True, max_size=4))
    return [(rid, draw(st.sampled_from(METHODS)), draw(BODIES)) for rid in rids]


def _frames(reqs: list[tuple[int, str, Any]]) -> bytes:
    return b"".join(_pack([REQUEST, rid, method, body]) for rid, method, body in reqs)


_CUTS = st.lists(st.integers(1, 1 << 16), max_size=4).map(tuple)


@st.composite
def valid_streams(draw: st.DrawFn) -> Scenario:
    reqs = _requests(draw)
    return Scenario(
        "valid",
        draw(HELLOS) + _frames(reqs),
        draw(_CUTS),
        answered=tuple(rid for rid, _, _ in reqs),
        replies=tuple(
            (rid, REPLY, [body, PEER]) if method in ("echo", "aecho") else (rid, ERROR, None)
            for rid, method, body in reqs
        ),
        close=False,
        handshake=True,
    )


@st.composite
def truncated_streams(draw: st.DrawFn) -> Scenario:
    data = draw(HELLOS) + _frames(_requests(draw))
    cut = draw(st.integers(0, len(data) - 1))
    return Scenario("truncated", data[:cut], draw(_CUTS), close=False, handshake=True)


@st.composite
def hello_then_garbage(draw: st.DrawFn) -> Scenario:
    hello = draw(HELLOS)
    data = hello + _frames(_requests(draw)) + draw(st.binary(min_size=1, max_size=300))
    return Scenario("hello+garbage", data, draw(_CUTS), handshake=True)


@st.composite
def random_bytes(draw: st.DrawFn) -> Scenario:
    return Scenario("random", draw(st.binary(max_size=300)), draw(_CUTS))


def _frame_is_valid(frame: Any) -> bool:
    """After the handshake: the frames the server must accept rather than drop."""
    if not isinstance(frame, list) or len(frame) != 4:
        return False
    kind, rid, method, _ = frame
    if not isinstance(kind, int) or not isinstance(rid, int):
        return False
    if kind == REQUEST:
        return isinstance(method, str)
    return kind in (REPLY, ERROR)


@st.composite
def wrong_types(draw: st.DrawFn) -> Scenario:
    """A valid handshake, then one frame with anything in any slot, then a valid request."""
    frame = draw(
        ANYTHING
        | st.lists(ANYTHING, max_size=6)
        | st.tuples(
            st.integers(-3, 8) | ANYTHING,
            st.integers(0, 2**64 - 1) | ANYTHING,
            st.sampled_from(METHODS) | ANYTHING,
            ANYTHING,
        ).map(list)
    )
    try:
        packed = _pack(frame)
        # The server sees what comes out of msgpack (tuples become lists, and so on).
        seen = msgpack.unpackb(packed, raw=False, strict_map_key=False)
    except (ValueError, TypeError, OverflowError):
        packed, seen = b"\xc1", None  # a byte msgpack never uses
    valid = seen is not None and _frame_is_valid(seen)
    answered: tuple[int, ...] = ()
    follow_rid = 7
    if valid:
        assert isinstance(seen, list)
        if seen[0] == REQUEST:
            follow_rid = 8 if seen[1] == 7 else 7
            answered = (seen[1],)
        answered += (follow_rid,)
    follow = _pack([REQUEST, follow_rid, "echo", "after"])
    return Scenario(
        "wrong types",
        HELLO_FRAME + packed + follow,
        draw(_CUTS),
        answered=answered,
        close=not valid,
        handshake=True,
    )


@st.composite
def oversized(draw: st.DrawFn) -> Scenario:
    """A frame above the limit, whole, or as a header claiming more than the limit.

    A whole frame arrives in one piece: in pieces, one slightly above the limit gets
    through (``test_an_oversized_frame_in_pieces_is_refused``).
    """
    size = draw(st.integers(MAX_FRAME + 1, 3 * MAX_FRAME))
    claims = size.to_bytes(4, "big")  # bytes, or (arrays, maps) elements of a byte or more
    before = draw(st.sampled_from([b"", HELLO_FRAME]))
    whole = draw(st.booleans())
    if whole:
        body = draw(st.sampled_from([b"x" * size, "y" * size]))
        data = before + _pack([REQUEST, 1, "echo", body])
        cuts: tuple[int, ...] = (len(before),) if before else ()
    else:
        data = before + draw(
            st.sampled_from(
                [
                    b"\xc6" + claims + b"\0" * (MAX_FRAME + 1),  # bin 32
                    b"\xdb" + claims + b"z" * (MAX_FRAME + 1),  # str 32
                    b"\xc9" + claims + b"\x01" + b"\0" * (MAX_FRAME + 1),  # ext 32
                    b"\xdd" + claims,  # array 32
                    b"\xdf" + claims,  # map 32
                ]
            )
        )
        cuts = draw(_CUTS)
    return Scenario("oversized", data, cuts, close=True, handshake=bool(before))


@st.composite
def deeply_nested(draw: st.DrawFn) -> Scenario:
    """A request whose body is arrays nested ``depth`` deep: served, or dropped as garbage."""
    depth = draw(st.integers(1, 3000))
    frame = b"\x94\x00\x01\xa4echo" + b"\x91" * depth + b"\xc0"  # [REQUEST, 1, "echo", [[...]]]
    return Scenario("nested", HELLO_FRAME + frame, draw(_CUTS), handshake=True)


@st.composite
def bad_handshakes(draw: st.DrawFn) -> Scenario:
    """A first frame that is not a valid HELLO, then valid requests: none may be served."""
    bad_body = draw(
        st.sampled_from(
            [
                _hello_body(v=0),
                _hello_body(v=2),
                _hello_body(v=2, vmax=2),
                _hello_body(vmax=0),
                _hello_body(vmax="2"),
                _hello_body(v="1"),
                _hello_body(v=None),
                _hello_body(cluster="other"),
                _hello_body(cluster=None),
                _hello_body(node=""),
                _hello_body(node=7),
                _hello_body(nonce=b"short"),
                _hello_body(nonce="n" * 16),
                {"v": 1},
                {},
            ]
        )
        | st.dictionaries(st.text(max_size=8), ANYTHING, max_size=4)
        | ANYTHING
    )
    kind = draw(st.sampled_from([HELLO, HELLO, REQUEST, REPLY, ERROR, PROOF, 99]))
    if kind != HELLO:
        bad_body = _hello_body()
    first = _pack([kind, 0, "hello", bad_body])
    reqs = [(1, "echo", "x"), (2, "aecho", None)]
    return Scenario("bad handshake", first + _frames(reqs), draw(_CUTS), close=True)


@st.composite
def strangers(draw: st.DrawFn) -> Scenario:
    """Anything sent to a server with a cluster secret: it never serves without the proof."""
    inner = draw(
        valid_streams() | hello_then_garbage() | wrong_types() | random_bytes() | bad_handshakes()
    )
    proof = _pack([PROOF, 0, "proof", {"proof": draw(st.binary(min_size=32, max_size=32))}])
    data = draw(st.sampled_from([inner.data, HELLO_FRAME + proof + inner.data]))
    return Scenario("stranger", data, inner.cuts, secret=True)


SCENARIOS = (
    valid_streams()
    | truncated_streams()
    | hello_then_garbage()
    | random_bytes()
    | wrong_types()
    | oversized()
    | deeply_nested()
    | bad_handshakes()
    | strangers()
)

# --- Checking what the server did --------------------------------------------------------------


def _written_frames(data: bytes, *, complete: bool) -> list[list[Any]]:
    """The frames a server wrote; each must be a well-formed [kind, id, method, body]."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(data)
    frames = []
    for frame in unpacker:
        assert isinstance(frame, list), frame
        assert len(frame) == 4, frame
        assert frame[0] in (HELLO, REPLY, ERROR), frame
        assert isinstance(frame[1], int), frame
        frames.append(frame)
    if complete:
        assert unpacker.tell() == len(data), "the server wrote a partial frame"
    if frames:
        assert frames[0][0] == HELLO, "the server's first frame must be its HELLO"
        assert all(f[0] != HELLO for f in frames[1:]), frames
    return frames


def _check_answers(s: Scenario, frames: list[list[Any]], served: int, *, all_in: bool) -> None:
    """``all_in``: every answer was sent (not so over a socket: our EOF closes the
    connection and cancels the async handlers still running)."""
    answers = [f for f in frames if f[0] in (REPLY, ERROR)]
    rids = [f[1] for f in answers]
    assert len(rids) == len(set(rids)), f"a request answered twice: {rids}"
    if not s.handshake or s.secret:
        assert served == 0, f"served {served} requests without a handshake"
        assert not answers, f"answered {answers} without a handshake"
        return
    if s.close is False and s.answered:
        if all_in:
            assert sorted(rids) == sorted(s.answered), (rids, s.answered)
        else:
            assert set(rids) <= set(s.answered), (rids, s.answered)
    for f in answers:
        if f[0] == REPLY:
            assert isinstance(f[3], list), f
            assert f[3][1] == PEER, f
    got = {f[1]: f for f in answers}
    for rid, kind, body in s.replies:
        if rid in got:  # over a socket, the EOF may cut replies short
            assert got[rid][0] == kind, (got[rid], kind)
            if kind == REPLY:
                assert got[rid][3] == body, (got[rid], body)


def _session(secret: bool) -> Session:
    config = SessionConfig(
        cluster=CLUSTER,
        node_id="guarded" if secret else "server",
        secret=b"s3cret" if secret else None,
        max_frame_bytes=MAX_FRAME,
    )
    return Session(config, dialer=False, nonce=b"s" * 16, stats=SessionStats())


def _answer(session: Session, req: Request) -> None:
    """What the server's handlers answer (the shell's part, done by hand here)."""
    if req.method in ("echo", "aecho"):
        try:
            session.send(REPLY, req.rid, "", [req.body, session.peer_node])
            return
        except (FrameTooLarge, TypeError, ValueError):
            pass  # e.g. nesting beyond what msgpack packs: an error answers instead
    session.send(ERROR, req.rid, "", f"cannot serve {req.method[:64]!r}")


def _drive(s: Scenario) -> tuple[int, int]:
    """Feed ``s`` to a listener's session and check what it did; (served, errors)."""
    session = _session(s.secret)
    written = bytearray()
    served = 0
    for chunk in s.chunks():
        for event in session.receive(chunk):  # must never raise
            if isinstance(event, Request):
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
    frames = _written_frames(bytes(written), complete=True)
    _check_answers(s, frames, served, all_in=True)
    if frames and s.handshake and not s.secret:
        assert frames[0][3].get("v") == session.version or failed, (frames[0], session.version)
    return served, errors


@pytest.mark.timeout(300)  # 6x its run on a slowish day: a slow day is 2x
def test_the_frame_core_without_a_loop() -> None:
    totals = {"served": 0, "errors": 0, "guarded served": 0, "guarded errors": 0}

    @settings(
        max_examples=FAKE_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=False,
    )
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
            frames = _written_frames(got, complete=False)
            _check_answers(s, frames, rpc.stats.served - served, all_in=False)
            # The fuzzed connection is gone; the client's is the same one, still serving.
            await _wait_for(lambda: plain.connections == {served_conn}, "the server to close it")
            await _wait_for(lambda: not guarded.connections, "the guarded server to close it")
            assert await client.call(addr, ECHO, i, timeout_s=5) == [i, "client"]
            assert client.connections == {client_conn}
            assert not client_conn.closed

        @settings(
            max_examples=SOCKET_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            print_blob=False,
        )
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
    frame = _pack([REQUEST, 1, "echo", [b"x" * 1000] * 100])
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
    data = HELLO_FRAME + _pack([REQUEST, 1, "\x00" * 1100, None])
    try:
        conn, _, stats = _feed_raw(data, len(data))
    except Exception as e:
        raise AssertionError(f"{type(e).__name__} escaped data_received: {e}") from e
    assert not conn.closed or stats.protocol_errors == 1
