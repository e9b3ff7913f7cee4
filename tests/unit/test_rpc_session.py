"""The sans-I/O connection core (``dynamo.net.session``) and the schema's codecs, without a
loop: version negotiation between releases, the proof, and every method's codecs in
both versions (round trips, and malformed bodies refused with the field named)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo.net import methods, schema
from dynamo.net.methods import (
    ForwardedPut,
    IndexPageReply,
    IndexPageRequest,
    KeyPage,
    KeyPageRequest,
    ReplicaRead,
    ReplicaWrite,
)
from dynamo.net.schema import V1, V2, ErrorCode, RemoteError
from dynamo.net.session import HELLO, REQUEST, Ready, Session, SessionConfig
from http_api import errors
from http_api.types import Content, PutOptions


def _session(node: str, *, dialer: bool, version: int = V2, secret: bytes | None = None) -> Session:
    config = SessionConfig(
        cluster="c", node_id=node, secret=secret, max_frame_bytes=1 << 20, max_version=version
    )
    return Session(config, dialer=dialer, nonce=node.encode().ljust(16, b"."), expect_node=None)


def _connect(dialer: Session, listener: Session) -> tuple[list[Any], list[Any]]:
    """Shuttle bytes between the two until neither has more to say; their events."""
    seen_d: list[Any] = []
    seen_l: list[Any] = []
    dialer.start()
    for _ in range(10):
        out_d, out_l = dialer.take_outgoing(), listener.take_outgoing()
        if not out_d and not out_l:
            break
        seen_l += listener.receive(out_d)
        seen_d += dialer.receive(out_l)
    return seen_d, seen_l


@pytest.mark.parametrize(
    ("dialer_v", "listener_v", "agreed"),
    [(V2, V2, V2), (V1, V2, V1), (V2, V1, V1), (V1, V1, V1)],
    ids=["v2-v2", "v1 dialer", "v1 listener", "v1-v1"],
)
@pytest.mark.parametrize("secret", [None, b"s3cret"], ids=["open", "secret"])
def test_the_handshake_settles_the_highest_version_both_speak(
    dialer_v: int, listener_v: int, agreed: int, secret: bytes | None
) -> None:
    d = _session("dialer", dialer=True, version=dialer_v, secret=secret)
    ls = _session("listener", dialer=False, version=listener_v, secret=secret)
    seen_d, seen_l = _connect(d, ls)
    assert seen_d == [Ready("listener", agreed)]
    assert seen_l == [Ready("dialer", agreed)]
    assert d.failure is None
    assert ls.failure is None


def test_a_first_release_hello_is_byte_for_byte_what_v1_sent() -> None:
    """With ``max_version=1`` a node's HELLO has exactly the first release's fields (a
    first-release listener checks ``v == 1`` and ignores nothing it does not know)."""
    d = _session("dialer", dialer=True, version=V1)
    d.start()
    frame = msgpack.unpackb(d.take_outgoing(), raw=False)
    assert frame[0] == HELLO
    assert set(frame[3]) == {"v", "cluster", "node", "nonce"}
    assert frame[3]["v"] == 1
    d2 = _session("dialer", dialer=True, version=V2)
    d2.start()
    assert msgpack.unpackb(d2.take_outgoing(), raw=False)[3]["v"] == 1  # v1 listeners accept it


def test_a_wrong_secret_fails_the_session_and_counts_it() -> None:
    d = _session("dialer", dialer=True, secret=b"one")
    ls = _session("listener", dialer=False, secret=b"two")
    _, seen_l = _connect(d, ls)
    assert not any(isinstance(e, Ready) for e in seen_l)
    assert ls.failure is not None or d.failure is not None
    assert ls.stats.auth_failures + d.stats.auth_failures >= 1


def test_requests_flow_after_the_handshake() -> None:
    d = _session("dialer", dialer=True)
    ls = _session("listener", dialer=False)
    _connect(d, ls)
    d.send(REQUEST, 7, "get", {"k": b"x", "h": None})
    assert ls.receive(d.take_outgoing()) == [[REQUEST, 7, "get", {"k": b"x", "h": None}]]


# --- Codecs -------------------------------------------------------------------------------------

CONTENT = Content(value=b"v", content_type="text/plain", last_modified_us=5)
SAMPLES: list[tuple[schema.Method[Any, Any], Any, Any]] = [
    (methods.GET, ReplicaRead(b"\x00k", None), b"raw"),
    (methods.GET, ReplicaRead(b"\x00k", "n2"), None),
    (methods.PUT, ReplicaWrite(b"\x00k", b"raw", "n3", True, False), True),
    (
        methods.COORD_PUT,
        ForwardedPut(b"b", b"k", CONTENT, b"ctx", PutOptions(w=2, dw="quorum"), "n1/ab/3"),
        b"obj",
    ),
    (methods.KEYS, KeyPageRequest(b"b", b"", ("n2",)), KeyPage([b"a", b"b"], b"cursor")),
    (methods.BUCKETS, None, [b"a", b"b"]),
    (methods.HANDOFF, ((b"k1", b"v1"), (b"k2", b"v2")), 2),
    (
        methods.INDEX,
        IndexPageRequest(b"b", "age_int", b"lo", None, "^a", ((-1, 5), (9, 2**64 - 1)), None, 10),
        IndexPageReply([(b"t", b"k")], True),
    ),
    (
        methods.INDEX,
        IndexPageRequest(b"b", "$key", b"a", b"z", None, (), (b"t", b"k"), 1),
        IndexPageReply([], False),
    ),
]


def test_bucket_listing_carries_its_ranges_in_v2_and_asks_for_all_in_v1() -> None:
    ranges = ((-1, 5), (9, 2**64 - 1))
    v2 = methods.BUCKETS.codec(V2)
    assert v2.decode_request(_wire(v2.encode_request(ranges))) == ranges
    v1 = methods.BUCKETS.codec(V1)
    assert v1.decode_request(_wire(v1.encode_request(ranges))) is None


def _wire(x: Any) -> Any:
    return msgpack.unpackb(msgpack.packb(x, use_bin_type=True), raw=False, strict_map_key=False)


@pytest.mark.parametrize("version", [V1, V2])
@pytest.mark.parametrize(("method", "request_", "reply"), SAMPLES, ids=lambda x: str(x)[:24])
def test_every_method_round_trips_in_both_versions(
    method: schema.Method[Any, Any], request_: Any, reply: Any, version: int
) -> None:
    codec = method.codec(version)
    assert codec.decode_request(_wire(codec.encode_request(request_))) == request_
    assert codec.decode_reply(_wire(codec.encode_reply(reply))) == reply


def test_v2_bodies_are_maps_and_v1_bodies_the_first_releases_arrays() -> None:
    read = ReplicaRead(b"\x00k", None)
    assert methods.GET.v1.encode_request(read) == [b"\x00k", None]
    assert methods.GET.v2.encode_request(read) == {"k": b"\x00k", "h": None}
    write = ReplicaWrite(b"k", b"o", None, False, True)
    assert methods.PUT.v1.encode_request(write) == [b"k", b"o", None, False, True]
    assert methods.PUT.v1.encode_reply(True) == [True]


@given(st.recursive(st.none() | st.integers() | st.binary() | st.text(), st.lists, max_leaves=5))
def test_a_malformed_body_is_a_bad_request_naming_the_method(body: Any) -> None:
    for method, good, _ in SAMPLES:
        for version in (V1, V2):
            refused: RemoteError | None = None
            try:
                decoded = schema.decode_request(method, version, body)
            except RemoteError as e:
                refused = e
            if refused is not None:
                assert refused.code == ErrorCode.BAD_REQUEST
                assert method.name in refused.message
                continue
            # Only a body that fits decodes: a typed request that survives its own codec.
            codec = method.codec(version)
            assert type(decoded) is type(good)
            assert codec.decode_request(_wire(codec.encode_request(decoded))) == decoded


def test_v2_errors_keep_their_code_and_retry_hint() -> None:
    err = methods.refusal(errors.Overloaded("busy", retry_after_s=3))
    as_reply, body = schema.failure_body(methods.COORD_PUT, V2, err)
    assert not as_reply
    back = schema.error_from_wire(V2, _wire(body))
    assert (back.code, back.message, back.retry_after_s) == (ErrorCode.OVERLOADED, "busy", 3.0)
    relayed = methods.service_error(back)
    assert isinstance(relayed, errors.Overloaded)
    assert relayed.retry_after_s == 3


def test_v1_coord_put_failures_travel_as_the_first_releases_status_reply() -> None:
    err = methods.refusal(errors.Unavailable("W-value unsatisfied: 1/2"))
    as_reply, body = schema.failure_body(methods.COORD_PUT, V1, err)
    assert as_reply
    assert body == [503, "W-value unsatisfied: 1/2"]
    with pytest.raises(RemoteError) as got:
        methods.COORD_PUT.v1.decode_reply(_wire(body))
    relayed = methods.service_error(got.value)
    assert isinstance(relayed, errors.Unavailable)
    assert relayed.status == 503
    assert isinstance(
        methods.service_error(RemoteError("412", ErrorCode.PRECONDITION_FAILED)),
        errors.PreconditionFailed,
    )
    # A first-release error frame is text: it arrives as an untyped (internal) error.
    assert schema.error_from_wire(V1, "ValueError: boom").code == ErrorCode.INTERNAL
    assert methods.service_error(schema.error_from_wire(V1, "ValueError: boom")) is None


def test_an_error_code_from_a_later_release_is_internal() -> None:
    assert schema.error_from_wire(V2, {"c": 999, "m": "new"}).code == ErrorCode.INTERNAL
    assert schema.error_from_wire(V2, {"c": "x"}).code == ErrorCode.INTERNAL
    assert schema.error_from_wire(V2, {"c": 9, "r": -1}).retry_after_s is None


def test_the_registry_names_every_method_once() -> None:
    names = [m.name for m in methods.METHODS]
    assert len(names) == len(set(names)) == 12
    with pytest.raises(ValueError, match="twice"):
        schema.Registry(methods.GET, methods.GET)
