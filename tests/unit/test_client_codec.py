"""The client's pure core: paths, queries, response parsing, errors, writes and the key
stream, driven over a scripted fake node (no sockets, no sleeping). Resolvers and the
read-modify-write cycle: ``test_client_resolvers.py``."""

from __future__ import annotations

import base64
import inspect
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from http_api import client
from http_api.client import (
    AsyncClient,
    ClientCore,
    KVObject,
    ListStreamParser,
    MalformedResponse,
    Response,
    SiblingsError,
    error_for,
    object_path,
    parse_object,
    quorum_query,
)
from http_api.client_sync import Client
from http_api.errors import (
    BadRequest,
    NotFound,
    Overloaded,
    PreconditionFailed,
    RequestTooLarge,
    ServiceError,
    Unavailable,
    UnsupportedMediaType,
    URITooLong,
)
from http_api.types import Content, Sibling
from tests.support.client_fakes import (
    CTX,
    T_S,
    FakeNode,
    multiple_300,
    ok_200,
    sib,
    text,
    vclock,
)

# --- Paths and queries -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bucket", "key", "path"),
    [
        ("a b", "k/1", "/buckets/a+b/keys/k%2F1"),
        ("b", "k+1", "/buckets/b/keys/k%2B1"),
        ("é", "?&=%", "/buckets/%C3%A9/keys/%3F%26%3D%25"),
    ],
)
def test_object_path_quote_plus_each_segment(bucket: str, key: str, path: str) -> None:
    assert object_path(bucket, key) == path


def test_quorum_query_keeps_set_params_and_spells_them_as_riak() -> None:
    assert quorum_query() == ""
    assert quorum_query(r=None, w=None) == ""
    assert (
        quorum_query(r=2, pr="quorum", basic_quorum=True, notfound_ok=False, timeout_ms=1500)
        == "?r=2&pr=quorum&basic_quorum=true&notfound_ok=false&timeout=1500"
    )
    assert quorum_query(w="all", dw=0, pw="one", rw="default", return_body=True) == (
        "?w=all&dw=0&pw=one&rw=default&returnbody=true"
    )


@pytest.mark.parametrize(
    "bad",
    [{"r": "two"}, {"w": -1}, {"dw": True}, {"timeout_ms": 0}, {"notfound_ok": "yes"}, {"n": 1}],
)
def test_quorum_query_rejects_bad_values_naming_them(bad: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError), match=next(iter(bad))):
        quorum_query(**bad)  # type: ignore[arg-type]


def test_get_sends_accept_multipart_and_the_query() -> None:
    node = FakeNode(text(404, "not found"))
    node.run(ClientCore("http://n:8098").get_op("a b", "k/1", r=2, notfound_ok=True))
    assert node.requests[0].method == "GET"
    assert node.requests[0].path == "/buckets/a+b/keys/k%2F1?r=2&notfound_ok=true"
    assert node.header(0, "Accept") == "multipart/mixed, application/json, */*;q=0.5"


@pytest.mark.parametrize(
    ("auth", "header"),
    [
        (None, None),
        ("s3cret", "Bearer s3cret"),
        (("ann", "pa:ss"), "Basic " + base64.b64encode(b"ann:pa:ss").decode()),
    ],
)
def test_auth_becomes_the_authorization_header(
    auth: str | tuple[str, str] | None, header: str | None
) -> None:
    node = FakeNode(text(200, "{}", ("Content-Type", "application/json")))
    node.run(ClientCore("http://n:8098", auth=auth).stats_op())
    assert node.header(0, "Authorization") == header


# --- Objects ---------------------------------------------------------------------------------


def test_200_is_one_sibling_with_headers_and_context() -> None:
    content = Content(
        value=b"caf\xc3\xa9",
        content_type="text/plain",
        charset="utf-8",
        user_meta=(("Who", "me"), ("Note", "x y")),
        last_modified_us=T_S,
    )
    s = Sibling(vtag="v1", content=content)
    obj = parse_object("b", "k", ok_200("b", s))
    assert obj == KVObject("b", "k", [s], CTX)
    assert (obj.exists, obj.has_siblings, obj.tombstone, obj.value) == (
        True,
        False,
        False,
        s.content.value,
    )


@given(values=st.lists(st.binary(max_size=64), min_size=2, max_size=5))
def test_300_multipart_round_trips_binary_siblings_and_tombstones(values: list[bytes]) -> None:
    siblings = [
        sib(f"v{i}", v, lm_s=i, content_type="application/x-bin") for i, v in enumerate(values)
    ]
    siblings += [
        sib("crlf", b"\r\n--a\r\n\r\nb\r\n", content_type="text/plain", charset="utf-8"),
        sib("gone", b"", deleted=True),
    ]
    obj = parse_object("a b", "k", multiple_300("a b", siblings))
    assert obj.siblings == siblings
    assert obj.context == CTX
    assert [s.vtag for s in obj.live] == [s.vtag for s in siblings[:-1]]
    assert obj.has_siblings
    assert obj.exists
    with pytest.raises(SiblingsError, match="live siblings"):
        _ = obj.value


def test_one_live_sibling_beside_a_tombstone_is_the_value() -> None:
    obj = parse_object("b", "k", multiple_300("b", [sib("t", b"", deleted=True), sib("v", b"x")]))
    assert (obj.has_siblings, obj.value) == (False, b"x")


def test_404_without_context_is_not_found() -> None:
    obj = parse_object("b", "k", text(404, "not found\n"))
    assert obj == KVObject("b", "k", [], None)
    assert (obj.exists, obj.tombstone, obj.value, obj.content) == (False, False, None, None)


def test_404_with_context_is_a_tombstone_keeping_the_context() -> None:
    obj = parse_object("b", "k", text(404, "not found\n", vclock(CTX), ("X-Riak-Deleted", "true")))
    assert (obj.exists, obj.tombstone, obj.context, obj.value) == (False, True, CTX, None)


def test_300_without_multipart_and_bad_vclock_are_the_nodes_fault() -> None:
    with pytest.raises(MalformedResponse, match="multipart"):
        parse_object("b", "k", text(300, "Siblings:\nv1\nv2\n", ("Content-Type", "text/plain")))
    with pytest.raises(MalformedResponse, match="X-Riak-Vclock"):
        parse_object("b", "k", text(404, "not found", ("X-Riak-Vclock", "not base64!")))


# --- Errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (404, NotFound),
        (412, PreconditionFailed),
        (413, RequestTooLarge),
        (414, URITooLong),
        (415, UnsupportedMediaType),
        (503, Unavailable),
        (500, ServiceError),
        (502, ServiceError),
        (429, ServiceError),
    ],
)
def test_error_for_maps_status_and_keeps_the_text(status: int, cls: type[ServiceError]) -> None:
    error = error_for(text(status, "R-value unsatisfied: 1/2\n"))
    assert type(error) is cls
    assert (error.status, error.message) == (status, "R-value unsatisfied: 1/2")


def test_503_with_retry_after_is_overloaded() -> None:
    error = error_for(text(503, "overloaded: retry", ("Retry-After", "2")))
    assert isinstance(error, Overloaded)
    assert (error.retry_after_s, error.message) == (2, "overloaded: retry")


def test_object_routes_read_404_as_not_found_and_others_raise_it() -> None:
    core = ClientCore("http://n:8098")
    assert FakeNode(text(404, "not found")).run(core.delete_op("b", "k")) is False
    assert FakeNode(Response(status=204)).run(core.delete_op("b", "k")) is True
    with pytest.raises(NotFound, match="no such"):
        FakeNode(text(404, "no such bucket type")).run(core.get_bucket_props_op("b"))
    with pytest.raises(PreconditionFailed):
        FakeNode(text(412, "exists")).run(core.put_op("b", "k", b"v", if_none_match=True))
    with pytest.raises(Unavailable, match="R-value"):
        FakeNode(text(503, "R-value unsatisfied: 1/2")).run(core.get_op("b", "k"))


# --- Writes ----------------------------------------------------------------------------------


def test_put_sends_text_as_utf8_with_context_meta_and_flags() -> None:
    node = FakeNode(Response(status=204))
    op = ClientCore("http://n:8098").put_op(
        "b", "k", "héllo", context=CTX, meta={"Who": "me"}, if_none_match=True, w=2
    )
    assert node.run(op) is None
    request = node.requests[0]
    assert (request.method, request.path, request.body) == (
        "PUT",
        "/buckets/b/keys/k?w=2",
        "héllo".encode(),
    )
    assert node.header(0, "Content-Type") == "text/plain; charset=utf-8"
    assert node.header(0, "X-Riak-Vclock") == vclock(CTX)[1]
    assert node.header(0, "X-Riak-Meta-Who") == "me"
    assert node.header(0, "If-None-Match") == "*"


def test_put_return_body_and_store_carry_the_context() -> None:
    core = ClientCore("http://n:8098")
    s = sib("v2", b"new")
    node = FakeNode(ok_200("b", s, b"ctx2"))
    obj = node.run(
        core.store_op(KVObject("b", "k", [sib("v1", b"old")], CTX), b"new", return_body=True)
    )
    assert node.requests[0].path == "/buckets/b/keys/k?returnbody=true"
    assert node.header(0, "Content-Type") == "application/octet-stream"
    assert node.header(0, "X-Riak-Vclock") == vclock(CTX)[1]
    assert obj == KVObject("b", "k", [s], b"ctx2")


def test_post_returns_the_key_from_location() -> None:
    node = FakeNode(Response(status=201, headers=(("Location", "/buckets/a+b/keys/Xy9"),)))
    assert node.run(ClientCore("http://n:8098").post_op("a b", b"v")) == "Xy9"
    assert (node.requests[0].method, node.requests[0].path) == ("POST", "/buckets/a+b/keys")


def test_bucket_props_round_trip_as_json() -> None:
    core = ClientCore("http://n:8098")
    props = {"n_val": 3, "allow_mult": True}
    node = FakeNode(
        Response(status=204), text(200, json.dumps({"props": props})), Response(status=204)
    )
    node.run(core.set_bucket_props_op("b", {"n_val": 3}))
    assert node.run(core.get_bucket_props_op("b")) == props
    node.run(core.reset_bucket_props_op("b"))
    assert [(r.method, r.path) for r in node.requests] == [
        ("PUT", "/buckets/b/props"),
        ("GET", "/buckets/b/props"),
        ("DELETE", "/buckets/b/props"),
    ]
    assert json.loads(node.requests[0].body or b"") == {"props": {"n_val": 3}}
    assert node.header(0, "Content-Type") == "application/json"


# --- Listing keys ----------------------------------------------------------------------------


def stream_body(chunks: list[list[str]], ascii_only: bool) -> bytes:
    objects = [json.dumps({"keys": c}, ensure_ascii=ascii_only) for c in chunks if c]
    return ("".join(objects) + '{"keys":[]}').encode()


@given(
    chunks=st.lists(st.lists(st.text(max_size=8), max_size=4), max_size=6),
    ascii_only=st.booleans(),
    data=st.data(),
)
def test_key_stream_parses_any_chunk_split(
    chunks: list[list[str]], ascii_only: bool, data: st.DataObject
) -> None:
    body = stream_body(chunks, ascii_only)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=12)))
    parser = ListStreamParser("keys")
    seen: list[str] = []
    for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True):
        seen += parser.feed(body[start:end])
    want = [k for c in chunks for k in c]
    assert parser.finish() == want
    assert seen == want


def test_key_stream_cut_short_is_the_nodes_fault() -> None:
    parser = ListStreamParser("keys")
    parser.feed(b'{"keys":["a"]}{"keys":["b"')
    with pytest.raises(MalformedResponse, match="ends inside"):
        parser.finish()
    with pytest.raises(MalformedResponse, match="holds"):
        ListStreamParser("keys").feed(b'{"buckets":[]}')


def test_list_keys_plain_and_streamed() -> None:
    core = ClientCore("http://n:8098")
    node = FakeNode(
        text(200, '{"keys":["a","b"]}'), text(200, '{"keys":["a"]}{"keys":["b"]}{"keys":[]}')
    )
    assert node.run(core.list_keys_op("a b")) == ["a", "b"]
    assert node.run(core.list_keys_op("a b", stream=True)) == ["a", "b"]
    assert [r.path for r in node.requests] == [
        "/buckets/a+b/keys?keys=true",
        "/buckets/a+b/keys?keys=stream",
    ]


# --- Public surface --------------------------------------------------------------------------

API = [
    "ping", "stats", "get", "put", "store", "post", "delete", "list_keys", "list_buckets",
    "get_bucket_props", "set_bucket_props", "reset_bucket_props", "update", "set_resolver",
    "close",
]  # fmt: skip


def test_both_flavours_offer_the_same_api() -> None:
    for name in API:
        sync, asynchronous = getattr(Client, name), getattr(AsyncClient, name)
        assert inspect.signature(sync) == inspect.signature(asynchronous), name
        assert inspect.iscoroutinefunction(asynchronous) or name == "set_resolver", name
    assert sorted(client.__all__) == client.__all__
    assert all(hasattr(client, name) for name in client.__all__)
