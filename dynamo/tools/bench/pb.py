"""Riak PB for the load generator, sans I/O: request frames for GET and PUT of
``bucket/k{i}``, and a parser that reads answers as the HTTP status they stand for
(so one tally counts both protocols): a read with one live value 200, with several 300,
with none 404; a write 204; an ``RpbErrorResp`` 503 when it says a quorum or timeout
failed or the node is overloaded, else 400.
"""

from __future__ import annotations

import re

from dynamo.tools.bench.http1 import RemoteProtocolError, Response
from pb_api import convert
from pb_api.messages import HEADER, Code, frame
from pb_api.proto import riak_dt_pb2 as dt
from pb_api.proto import riak_kv_pb2 as kv
from pb_api.proto import riak_pb2 as core

_UNAVAILABLE = re.compile(rb"unsatisfied|timed out|overloaded")
_LEN = 4


def _quorum(value: str | None) -> int | None:
    if value is None:
        return None
    return convert.quorum_to_pb(int(value) if value.isdigit() else value)  # type: ignore[arg-type]


class PbRequestFactory:
    """Request frames for one target (the same for every target: PB has no Host)."""

    __slots__ = ("_bucket", "_content", "_counter_type", "_r", "_w")

    def __init__(
        self,
        bucket: str,
        r: str | None,
        w: str | None,
        value: bytes,
        counter_type: str | None = None,
    ) -> None:
        self._bucket = bucket.encode()
        self._r = _quorum(r)
        self._w = _quorum(w)
        self._content = kv.RpbContent(value=value, content_type=b"application/octet-stream")
        self._counter_type = None if counter_type is None else counter_type.encode()

    def new_parser(self, want_vclock: bool) -> PbResponseParser:
        return PbResponseParser(want_vclock)

    def get(self, i: int) -> bytes:
        req = kv.RpbGetReq(bucket=self._bucket, key=b"k%d" % i)
        if self._r is not None:
            req.r = self._r
        return frame(Code.GET_REQ, req)

    def put(self, i: int, vclock: bytes | None = None) -> bytes:
        if self._counter_type is not None:
            inc = dt.DtUpdateReq(
                bucket=self._bucket, key=b"k%d" % i, type=self._counter_type,
                op=dt.DtOp(counter_op=dt.CounterOp(increment=1)),
            )  # fmt: skip
            if self._w is not None:
                inc.w = self._w
            return frame(Code.DT_UPDATE_REQ, inc)
        req = kv.RpbPutReq(bucket=self._bucket, key=b"k%d" % i, content=self._content)
        if vclock:
            req.vclock = vclock
        if self._w is not None:
            req.w = self._w
        return frame(Code.PUT_REQ, req)


class PbResponseParser:
    """Turns a byte stream of PB answers into ``Response`` values."""

    __slots__ = ("_buf", "want_vclock")

    def __init__(self, want_vclock: bool = False) -> None:
        self.want_vclock = want_vclock
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Response]:
        buf = self._buf
        buf += data
        out: list[Response] = []
        start = 0
        while len(buf) - start >= HEADER.size:
            length = int.from_bytes(buf[start : start + _LEN], "big")
            end = start + _LEN + length
            if length < 1:
                raise RemoteProtocolError("a PB frame of length 0")
            if end > len(buf):
                break
            out.append(self._answer(buf[start + _LEN], bytes(buf[start + HEADER.size : end])))
            start = end
        del buf[:start]
        return out

    def feed_eof(self) -> Response | None:
        if self._buf:
            raise RemoteProtocolError("the connection closed inside a PB frame")
        return None

    def _answer(self, code: int, body: bytes) -> Response:
        if code == Code.GET_RESP:
            resp = kv.RpbGetResp.FromString(body)
            live = sum(1 for c in resp.content if not c.deleted)
            status = 404 if live == 0 else 200 if live == 1 else 300
            vclock = resp.vclock if self.want_vclock and resp.HasField("vclock") else None
            return Response(status, b"", vclock)
        if code in (Code.PUT_RESP, Code.DEL_RESP, Code.DT_UPDATE_RESP):
            return Response(204, b"")
        if code == Code.ERROR_RESP:
            err = core.RpbErrorResp.FromString(body)
            return Response(503 if _UNAVAILABLE.search(err.errmsg) else 400, err.errmsg)
        raise RemoteProtocolError(f"unexpected PB message code {code}")
