"""Riak's PB message codes and the protobuf class of each body. Pure.

A frame is a 4-byte big-endian length, a 1-byte message code and the protobuf body
(the length counts the code). The codes are Riak's (``riak_pb_messages.csv``): numbered
once, append-only. A code with no class here has an empty body.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from google.protobuf.message import DecodeError, Message

from pb_api.proto import riak_dt_pb2 as dtpb
from pb_api.proto import riak_kv_pb2 as kv
from pb_api.proto import riak_pb2 as core

HEADER = struct.Struct(">IB")  # length (code + body), code
ERR_GENERAL = 1  # RpbErrorResp.errcode: the only code Riak defines


class Code(IntEnum):
    """Riak's message codes that dynamo serves (requests and their responses)."""

    ERROR_RESP = 0
    PING_REQ = 1
    PING_RESP = 2
    GET_CLIENT_ID_REQ = 3
    GET_CLIENT_ID_RESP = 4
    SET_CLIENT_ID_REQ = 5
    SET_CLIENT_ID_RESP = 6
    GET_SERVER_INFO_REQ = 7
    GET_SERVER_INFO_RESP = 8
    GET_REQ = 9
    GET_RESP = 10
    PUT_REQ = 11
    PUT_RESP = 12
    DEL_REQ = 13
    DEL_RESP = 14
    LIST_BUCKETS_REQ = 15
    LIST_BUCKETS_RESP = 16
    LIST_KEYS_REQ = 17
    LIST_KEYS_RESP = 18
    GET_BUCKET_REQ = 19
    GET_BUCKET_RESP = 20
    SET_BUCKET_REQ = 21
    SET_BUCKET_RESP = 22
    INDEX_REQ = 25
    INDEX_RESP = 26
    RESET_BUCKET_REQ = 29
    RESET_BUCKET_RESP = 30
    GET_BUCKET_TYPE_REQ = 31
    SET_BUCKET_TYPE_REQ = 32
    GET_BUCKET_KEY_PREFLIST_REQ = 33
    GET_BUCKET_KEY_PREFLIST_RESP = 34
    DT_FETCH_REQ = 80
    DT_FETCH_RESP = 81
    DT_UPDATE_REQ = 82
    DT_UPDATE_RESP = 83
    AUTH_REQ = 253
    AUTH_RESP = 254
    START_TLS = 255


#: The body of each code that has one (the others are empty).
BODIES: dict[int, type[Message]] = {
    Code.ERROR_RESP: core.RpbErrorResp,
    Code.GET_CLIENT_ID_RESP: kv.RpbGetClientIdResp,
    Code.SET_CLIENT_ID_REQ: kv.RpbSetClientIdReq,
    Code.GET_SERVER_INFO_RESP: core.RpbGetServerInfoResp,
    Code.GET_REQ: kv.RpbGetReq,
    Code.GET_RESP: kv.RpbGetResp,
    Code.PUT_REQ: kv.RpbPutReq,
    Code.PUT_RESP: kv.RpbPutResp,
    Code.DEL_REQ: kv.RpbDelReq,
    Code.LIST_BUCKETS_REQ: kv.RpbListBucketsReq,
    Code.LIST_BUCKETS_RESP: kv.RpbListBucketsResp,
    Code.LIST_KEYS_REQ: kv.RpbListKeysReq,
    Code.LIST_KEYS_RESP: kv.RpbListKeysResp,
    Code.GET_BUCKET_REQ: core.RpbGetBucketReq,
    Code.GET_BUCKET_RESP: core.RpbGetBucketResp,
    Code.SET_BUCKET_REQ: core.RpbSetBucketReq,
    Code.INDEX_REQ: kv.RpbIndexReq,
    Code.INDEX_RESP: kv.RpbIndexResp,
    Code.RESET_BUCKET_REQ: core.RpbResetBucketReq,
    Code.GET_BUCKET_TYPE_REQ: core.RpbGetBucketTypeReq,
    Code.SET_BUCKET_TYPE_REQ: core.RpbSetBucketTypeReq,
    Code.GET_BUCKET_KEY_PREFLIST_REQ: kv.RpbGetBucketKeyPreflistReq,
    Code.GET_BUCKET_KEY_PREFLIST_RESP: kv.RpbGetBucketKeyPreflistResp,
    Code.AUTH_REQ: core.RpbAuthReq,
    Code.DT_FETCH_REQ: dtpb.DtFetchReq,
    Code.DT_FETCH_RESP: dtpb.DtFetchResp,
    Code.DT_UPDATE_REQ: dtpb.DtUpdateReq,
    Code.DT_UPDATE_RESP: dtpb.DtUpdateResp,
}

#: Every code a client may send, each with the response code it gets on success.
REQUESTS: dict[int, int] = {
    Code.PING_REQ: Code.PING_RESP,
    Code.GET_CLIENT_ID_REQ: Code.GET_CLIENT_ID_RESP,
    Code.SET_CLIENT_ID_REQ: Code.SET_CLIENT_ID_RESP,
    Code.GET_SERVER_INFO_REQ: Code.GET_SERVER_INFO_RESP,
    Code.GET_REQ: Code.GET_RESP,
    Code.PUT_REQ: Code.PUT_RESP,
    Code.DEL_REQ: Code.DEL_RESP,
    Code.LIST_BUCKETS_REQ: Code.LIST_BUCKETS_RESP,
    Code.LIST_KEYS_REQ: Code.LIST_KEYS_RESP,
    Code.GET_BUCKET_REQ: Code.GET_BUCKET_RESP,
    Code.SET_BUCKET_REQ: Code.SET_BUCKET_RESP,
    Code.INDEX_REQ: Code.INDEX_RESP,
    Code.RESET_BUCKET_REQ: Code.RESET_BUCKET_RESP,
    Code.GET_BUCKET_TYPE_REQ: Code.GET_BUCKET_RESP,
    Code.SET_BUCKET_TYPE_REQ: Code.SET_BUCKET_RESP,
    Code.GET_BUCKET_KEY_PREFLIST_REQ: Code.GET_BUCKET_KEY_PREFLIST_RESP,
    Code.AUTH_REQ: Code.AUTH_RESP,
    Code.START_TLS: Code.START_TLS,
    Code.DT_FETCH_REQ: Code.DT_FETCH_RESP,
    Code.DT_UPDATE_REQ: Code.DT_UPDATE_RESP,
}


class BadBody(ValueError):
    """A body that does not decode as its code's message (or a required field is absent)."""


def frame(code: int, body: Message | None = None) -> bytes:
    """One frame: header and body."""
    data = b"" if body is None else body.SerializeToString()
    return HEADER.pack(len(data) + 1, code) + data


def error_frame(message: str) -> bytes:
    return frame(Code.ERROR_RESP, core.RpbErrorResp(errmsg=message.encode(), errcode=ERR_GENERAL))


def decode(code: int, body: bytes) -> Message | None:
    """The message a frame carries: None for an empty-bodied code, ``BadBody`` if it does
    not parse (required fields included: a body missing one is refused whole)."""
    cls = BODIES.get(code)
    if cls is None:
        if body:
            raise BadBody(f"message code {code} carries no body, got {len(body)} bytes")
        return None
    msg = cls()
    try:
        msg.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise BadBody(f"{cls.__name__} does not decode: {e}") from e
    if not msg.IsInitialized():  # the parser leaves required fields to us
        missing = ", ".join(msg.FindInitializationErrors())  # type: ignore[attr-defined]
        raise BadBody(f"{cls.__name__} lacks its required {missing}")
    return msg
