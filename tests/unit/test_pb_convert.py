"""PB messages to and from the service's types, and our PB client's reading of errors."""

from __future__ import annotations

import pytest

from http_api import errors
from http_api.types import BucketProps, Content, FetchResult, QuorumValue, Sibling
from pb_api import client_core, convert
from pb_api.proto import riak_kv_pb2 as kv
from pb_api.proto import riak_pb2 as core

U = convert.UINT32_MAX


@pytest.mark.parametrize(
    ("wire", "value"),
    [(None, "default"), (0, 0), (2, 2), (U - 1, "one"), (U - 2, "quorum"), (U - 3, "all"),
     (U - 4, "default")],
)  # fmt: skip
def test_quorums_read_riaks_symbolic_values(wire: int | None, value: QuorumValue) -> None:
    req = kv.RpbGetReq(bucket=b"b", key=b"k")
    if wire is not None:
        req.r = wire
    assert convert.quorum(req, "r") == value
    if wire is not None:
        assert convert.quorum_to_pb(value) == wire


@pytest.mark.parametrize("wire", [65, U, U - 5, 1 << 20])
def test_a_quorum_that_is_no_quorum_is_refused_naming_it(wire: int) -> None:
    req = kv.RpbGetReq(bucket=b"b", key=b"k", pr=wire)
    with pytest.raises(errors.BadRequest, match=r"pr=\d+ is not a quorum"):
        convert.quorum(req, "pr")


def test_options_carry_every_riak_field() -> None:
    req = kv.RpbGetReq(
        bucket=b"b", key=b"k", r=1, pr=U - 3, basic_quorum=True, notfound_ok=False,
        timeout=1500, sloppy_quorum=False, n_val=2,
    )  # fmt: skip
    opts = convert.get_options(req)
    assert (opts.r, opts.pr, opts.basic_quorum, opts.notfound_ok) == (1, "all", True, False)
    assert (opts.timeout_ms, opts.sloppy_quorum, opts.n_val) == (1500, False, 2)
    put = convert.put_options(
        kv.RpbPutReq(bucket=b"b", content=kv.RpbContent(value=b""), return_head=True, w=U - 2)
    )
    assert put.return_body
    assert put.w == "quorum"
    assert put.dw == "default"


@pytest.mark.parametrize("timeout", [0, convert.MAX_TIMEOUT_MS + 1])
def test_a_timeout_out_of_range_is_refused(timeout: int) -> None:
    with pytest.raises(errors.BadRequest, match="timeout"):
        convert.get_options(kv.RpbGetReq(bucket=b"b", key=b"k", timeout=timeout))


def test_names_are_text_without_control_characters() -> None:
    with pytest.raises(errors.BadRequest, match="UTF-8"):
        convert.key(b"\xff\xfe")
    with pytest.raises(errors.BadRequest, match="empty"):
        convert.bucket(b"")
    with pytest.raises(errors.URITooLong):
        convert.key(b"k" * 1025)
    bad_meta = kv.RpbContent(value=b"v")
    bad_meta.usermeta.add(key=b"name", value=b"a\r\nInjected: yes")
    with pytest.raises(errors.BadRequest, match="control character"):
        convert.content_from_pb(bad_meta, 100)
    bad_name = kv.RpbContent(value=b"v")
    bad_name.usermeta.add(key=b"two words", value=b"x")
    with pytest.raises(errors.BadRequest, match="header token"):
        convert.content_from_pb(bad_name, 100)
    with pytest.raises(errors.RequestTooLarge):
        convert.content_from_pb(kv.RpbContent(value=b"v" * 101), 100)


def test_a_content_goes_out_as_it_came_in() -> None:
    c = kv.RpbContent(value=b"v", content_type=b"text/plain", charset=b"utf-8")
    c.usermeta.add(key=b"Color", value=b"blue")
    c.indexes.add(key=b"email_bin", value=b"a@b")
    c.links.add(bucket=b"people", key=b"bob", tag=b"friend")
    content = convert.content_from_pb(c, 100)
    stamped = Content(
        value=content.value, content_type=content.content_type, charset=content.charset,
        user_meta=content.user_meta, links=content.links, indexes=content.indexes,
        last_modified_us=1_700_000_000_123_456, deleted=False,
    )  # fmt: skip
    out = convert.content_to_pb(Sibling(vtag="abc", content=stamped))
    assert (out.value, out.content_type, out.charset, out.vtag) == (
        b"v",
        b"text/plain",
        b"utf-8",
        b"abc",
    )
    assert (out.last_mod, out.last_mod_usecs) == (1_700_000_000, 123_456)
    assert [(p.key, p.value) for p in out.usermeta] == [(b"Color", b"blue")]
    assert [(x.bucket, x.key, x.tag) for x in out.links] == [(b"people", b"bob", b"friend")]
    back = client_core.to_object("b", "k", kv.RpbGetResp(content=[out], vclock=b"ctx"))
    assert back.siblings[0].content == stamped
    assert back.context == b"ctx"
    assert convert.content_to_pb(Sibling(vtag="abc", content=stamped), head=True).value == b""


def test_a_read_of_tombstones_is_not_found_with_the_vclock_on_request() -> None:
    tomb = Sibling(vtag="t", content=Content(value=b"", deleted=True))
    result = FetchResult(siblings=(tomb,), context=b"ctx")
    assert not convert.get_resp(result, head=False, deleted_vclock=False).HasField("vclock")
    resp = convert.get_resp(result, head=False, deleted_vclock=True)
    assert (len(resp.content), resp.vclock) == (0, b"ctx")


def test_bucket_props_go_both_ways() -> None:
    props = BucketProps(n_val=2, allow_mult=False, r="all", w=1, pw=0)
    pb = convert.props_to_pb(props)
    assert (pb.n_val, pb.allow_mult, pb.r, pb.w, pb.pw, pb.dw) == (2, False, U - 3, 1, 0, 0)
    assert pb.chash_keyfun.module == b"riak_core_util"
    as_json = client_core.props_from_pb(pb)
    assert as_json["r"] == "all"
    assert as_json["n_val"] == 2
    back = convert.props_from_pb(client_core.props_to_pb({"n_val": 2, "r": "all", "w": 1}))
    assert back == {"n_val": 2, "r": "all", "w": 1}


@pytest.mark.parametrize(
    ("field", "why"),
    [("consistent", "strongly consistent"), ("write_once", "write_once"), ("search", "Search")],
)
def test_bucket_props_we_do_not_have_are_refused(field: str, why: str) -> None:
    p = core.RpbBucketProps()
    setattr(p, field, True)
    with pytest.raises(errors.BadRequest, match=why):
        convert.props_from_pb(p)
    hooks = core.RpbBucketProps()
    hooks.precommit.add(name=b"validate")
    with pytest.raises(errors.BadRequest, match="commit hooks"):
        convert.props_from_pb(hooks)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("R-value unsatisfied: 1/2", errors.Unavailable),
        ("PW-value unsatisfied: 2/3", errors.Unavailable),
        ("W-value unsatisfied: 0/2 (request timed out after 100 ms)", errors.Unavailable),
        ("overloaded: 9 requests in flight (limit 8); retry after a moment", errors.Overloaded),
        ("the key has a value and If-None-Match: * was sent", errors.PreconditionFailed),
        ("key 'k' would have 101 siblings, above the limit of 100: read it", errors.Conflict),
        ("value is 20 bytes, above the limit of 10: store less", errors.RequestTooLarge),
        ("bucket type 'maps' does not exist: use 'default'", errors.NotFound),
        ("n_val=5 is above the bucket's n_val 3: lower it", client_core.PbError),
    ],
)
def test_our_pb_client_reads_an_error_as_http_would_have_answered(
    message: str, kind: type[errors.ServiceError]
) -> None:
    err = client_core.error_for(message)
    assert type(err) is kind
    assert err.message == message
