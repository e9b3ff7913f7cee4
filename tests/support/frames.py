"""Streams a peer may send to a node's peer port, as hypothesis strategies, and the
checks of what a server wrote back: shared by the frame fuzz's core and socket tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, cast

import msgpack
from hypothesis import strategies as st

from dynamo.net.session import ERROR, HELLO, PROOF, REPLY, REQUEST

CLUSTER = "fuzz"
MAX_FRAME = 4096  # small, so that oversized frames are cheap to make
PEER = "peer"
METHODS = ("echo", "aecho", "boom", "nope")  # sync, async, raising, unknown


# --- Frames ------------------------------------------------------------------------------------


def pack(obj: Any) -> bytes:
    return cast(bytes, msgpack.packb(obj, use_bin_type=True))


def hello_body(**override: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"v": 1, "cluster": CLUSTER, "node": PEER}
    body["nonce"] = b"n" * 16
    body.update(override)
    return body


HELLO_FRAME = pack([HELLO, 0, "hello", hello_body()])  # a first-release dialer
HELLO_V2 = pack([HELLO, 0, "hello", hello_body(vmax=2)])  # this release's
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


def requests(draw: st.DrawFn) -> list[tuple[int, str, Any]]:
    rids = draw(st.lists(st.integers(0, 2**64 - 1), unique=True, max_size=4))
    return [(rid, draw(st.sampled_from(METHODS)), draw(BODIES)) for rid in rids]


def frames(reqs: list[tuple[int, str, Any]]) -> bytes:
    return b"".join(pack([REQUEST, rid, method, body]) for rid, method, body in reqs)


_CUTS = st.lists(st.integers(1, 1 << 16), max_size=4).map(tuple)


@st.composite
def valid_streams(draw: st.DrawFn) -> Scenario:
    reqs = requests(draw)
    return Scenario(
        "valid",
        draw(HELLOS) + frames(reqs),
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
    data = draw(HELLOS) + frames(requests(draw))
    cut = draw(st.integers(0, len(data) - 1))
    return Scenario("truncated", data[:cut], draw(_CUTS), close=False, handshake=True)


@st.composite
def hello_then_garbage(draw: st.DrawFn) -> Scenario:
    hello = draw(HELLOS)
    data = hello + frames(requests(draw)) + draw(st.binary(min_size=1, max_size=300))
    return Scenario("hello+garbage", data, draw(_CUTS), handshake=True)


@st.composite
def random_bytes(draw: st.DrawFn) -> Scenario:
    return Scenario("random", draw(st.binary(max_size=300)), draw(_CUTS))


def frame_is_valid(frame: Any) -> bool:
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
        packed = pack(frame)
        # The server sees what comes out of msgpack (tuples become lists, and so on).
        seen = msgpack.unpackb(packed, raw=False, strict_map_key=False)
    except (ValueError, TypeError, OverflowError):
        packed, seen = b"\xc1", None  # a byte msgpack never uses
    valid = seen is not None and frame_is_valid(seen)
    answered: tuple[int, ...] = ()
    follow_rid = 7
    if valid:
        assert isinstance(seen, list)
        if seen[0] == REQUEST:
            follow_rid = 8 if seen[1] == 7 else 7
            answered = (seen[1],)
        answered += (follow_rid,)
    follow = pack([REQUEST, follow_rid, "echo", "after"])
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
        data = before + pack([REQUEST, 1, "echo", body])
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
                hello_body(v=0),
                hello_body(v=2),
                hello_body(v=2, vmax=2),
                hello_body(vmax=0),
                hello_body(vmax="2"),
                hello_body(v="1"),
                hello_body(v=None),
                hello_body(cluster="other"),
                hello_body(cluster=None),
                hello_body(node=""),
                hello_body(node=7),
                hello_body(nonce=b"short"),
                hello_body(nonce="n" * 16),
                {"v": 1},
                {},
            ]
        )
        | st.dictionaries(st.text(max_size=8), ANYTHING, max_size=4)
        | ANYTHING
    )
    kind = draw(st.sampled_from([HELLO, HELLO, REQUEST, REPLY, ERROR, PROOF, 99]))
    if kind != HELLO:
        bad_body = hello_body()
    first = pack([kind, 0, "hello", bad_body])
    reqs = [(1, "echo", "x"), (2, "aecho", None)]
    return Scenario("bad handshake", first + frames(reqs), draw(_CUTS), close=True)


@st.composite
def strangers(draw: st.DrawFn) -> Scenario:
    """Anything sent to a server with a cluster secret: it never serves without the proof."""
    inner = draw(
        valid_streams() | hello_then_garbage() | wrong_types() | random_bytes() | bad_handshakes()
    )
    proof = pack([PROOF, 0, "proof", {"proof": draw(st.binary(min_size=32, max_size=32))}])
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


def written_frames(data: bytes, *, complete: bool) -> list[list[Any]]:
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


def check_answers(s: Scenario, frames: list[list[Any]], served: int, *, all_in: bool) -> None:
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
