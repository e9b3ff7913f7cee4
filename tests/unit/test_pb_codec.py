"""The PB front end's pure parts: framing, message decoding, and the generated modules
held to their ``.proto`` sources."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pb_api import messages
from pb_api.codec import Frame, FrameDecoder, FrameTooLarge, Garbage
from pb_api.messages import Code, frame
from pb_api.proto import riak_kv_pb2 as kv
from pb_api.proto import riak_pb2 as core

MAX = 1 << 16


def _frames() -> list[tuple[int, bytes]]:
    return [
        (Code.PING_REQ, b""),
        (Code.GET_REQ, kv.RpbGetReq(bucket=b"b", key=b"k", r=2).SerializeToString()),
        (Code.PUT_REQ, kv.RpbPutReq(bucket=b"b", content=kv.RpbContent(value=b"v" * 300))
         .SerializeToString()),
        (Code.LIST_BUCKETS_REQ, b""),
    ]  # fmt: skip


@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=20))
def test_frames_come_out_whole_however_the_stream_is_cut(cuts: list[int]) -> None:
    wanted = _frames()
    stream = b"".join(messages.HEADER.pack(len(b) + 1, c) + b for c, b in wanted)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder(MAX)
    got: list[Frame] = []
    for a, b in itertools.pairwise(points):
        got += decoder.feed(stream[a:b])
    assert [(f.code, f.body) for f in got] == wanted
    assert not decoder.mid_frame


def test_a_length_above_the_limit_is_refused_before_its_body_arrives() -> None:
    decoder = FrameDecoder(1000)
    with pytest.raises(FrameTooLarge):
        decoder.feed(messages.HEADER.pack(1001, Code.PUT_REQ))  # no body sent yet
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"more")  # a failed stream stays failed


def test_a_zero_length_frame_is_garbage() -> None:
    with pytest.raises(Garbage):
        FrameDecoder(MAX).feed(b"\x00\x00\x00\x00\x01")


def test_a_partial_frame_is_held_as_mid_frame() -> None:
    decoder = FrameDecoder(MAX)
    data = frame(Code.GET_REQ, kv.RpbGetReq(bucket=b"b", key=b"k"))
    assert decoder.feed(data[:3]) == []
    assert decoder.mid_frame
    assert decoder.feed(data[3:]) == [Frame(Code.GET_REQ, data[5:])]
    assert not decoder.mid_frame


def test_a_body_missing_a_required_field_does_not_decode() -> None:
    partial = kv.RpbGetReq(bucket=b"b").SerializePartialToString()  # no key
    with pytest.raises(messages.BadBody, match="key"):
        messages.decode(Code.GET_REQ, partial)


@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"\x0a\x05ab"])
def test_garbage_bodies_do_not_decode(body: bytes) -> None:
    with pytest.raises(messages.BadBody):
        messages.decode(Code.GET_REQ, body)


def test_an_empty_bodied_code_refuses_a_body() -> None:
    assert messages.decode(Code.PING_REQ, b"") is None
    with pytest.raises(messages.BadBody):
        messages.decode(Code.PING_REQ, b"x")


def test_every_request_has_a_response_code_and_its_body_class() -> None:
    for request, response in messages.REQUESTS.items():
        assert request in Code.__members__.values()
        assert response in Code.__members__.values()
    assert messages.BODIES[Code.GET_REQ] is kv.RpbGetReq
    assert messages.BODIES[Code.ERROR_RESP] is core.RpbErrorResp


def test_an_error_frame_is_riaks() -> None:
    data = messages.error_frame("W-value unsatisfied: 1/2")
    (length,) = messages.HEADER.unpack(data[:5])[:1]
    assert length == len(data) - 4
    assert data[4] == Code.ERROR_RESP
    err = core.RpbErrorResp.FromString(data[5:])
    assert (err.errmsg, err.errcode) == (b"W-value unsatisfied: 1/2", 1)


def test_field_numbers_are_riaks() -> None:
    """A few wire facts pinned: these numbers are what every Riak client sends."""
    get = kv.RpbGetReq.DESCRIPTOR.fields_by_name
    assert (get["bucket"].number, get["key"].number, get["type"].number) == (1, 2, 13)
    put = kv.RpbPutReq.DESCRIPTOR.fields_by_name
    assert (put["vclock"].number, put["content"].number, put["return_head"].number) == (3, 4, 11)
    content = kv.RpbContent.DESCRIPTOR.fields_by_name
    assert (content["usermeta"].number, content["deleted"].number) == (9, 11)
    props = core.RpbBucketProps.DESCRIPTOR.fields_by_name
    assert (props["n_val"].number, props["rw"].number, props["datatype"].number) == (1, 19, 26)


def test_the_generated_modules_match_their_protos() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pb_api.proto.compile", "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
