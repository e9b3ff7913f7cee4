"""HTTP/1.1 for the load generator, sans I/O: request bytes built by hand, and a
response parser fed whatever bytes arrived.

The parser reads the status line, the headers it needs (``Content-Length``,
``Transfer-Encoding: chunked``, ``Connection``, and ``X-Riak-Vclock`` when asked) and the
body: by length, chunked, or (without either) until the connection closes. Errors in
what the server sent raise ``RemoteProtocolError``.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

MAX_HEAD_BYTES = 64 * 1024
MAX_CHUNK_LINE_BYTES = 1024


class RemoteProtocolError(Exception):
    """The server sent something that is not HTTP/1.x as we read it."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    vclock: bytes | None = None
    keep_alive: bool = True


_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER, _UNTIL_EOF = range(7)


def _header(lower: bytes, head: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (``b"\\r\\nname:"``, lower case), from the raw head."""
    i = lower.find(name)
    if i < 0:
        return None
    start = i + len(name)
    end = lower.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


class ResponseParser:
    """Turns a byte stream into ``Response`` values; one parser per connection."""

    __slots__ = (
        "_body",
        "_buf",
        "_keep_alive",
        "_remaining",
        "_state",
        "_status",
        "_vclock",
        "want_vclock",
    )

    def __init__(self, want_vclock: bool = False) -> None:
        self.want_vclock = want_vclock
        self._buf = bytearray()
        self._state = _HEAD
        self._status = 0
        self._vclock: bytes | None = None
        self._keep_alive = True
        self._remaining = 0
        self._body = bytearray()

    @property
    def idle(self) -> bool:
        """Between responses, with nothing buffered."""
        return self._state == _HEAD and not self._buf

    def feed(self, data: bytes) -> list[Response]:
        """Every response completed by ``data`` (usually zero or one)."""
        out: list[Response] = []
        if self._state == _HEAD and not self._buf:
            # Fast path: a whole head in one read, parsed without copying into the buffer.
            end = data.find(b"\r\n\r\n")
            if 0 <= end <= MAX_HEAD_BYTES:
                self._start(data[:end], out)
                rest = len(data) - end - 4
                if self._state == _BODY and rest == self._remaining:
                    self._finish(data[end + 4 :], out)
                    return out
                if rest == 0:
                    return out
                data = data[end + 4 :]
        self._buf += data
        self._drain(out)
        return out

    def _drain(self, out: list[Response]) -> None:
        buf = self._buf
        while True:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise RemoteProtocolError(f"response head over {MAX_HEAD_BYTES} bytes")
                    return
                head = bytes(buf[:end])
                del buf[: end + 4]
                self._start(head, out)
            elif state == _BODY:
                n = self._remaining
                if len(buf) < n:
                    return
                body = bytes(buf[:n])
                del buf[:n]
                self._finish(body, out)
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_CHUNK_LINE_BYTES:
                        raise RemoteProtocolError("chunk size line too long")
                    return
                line = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[: end + 2]
                try:
                    size = int(line, 16)
                except ValueError:
                    raise RemoteProtocolError(f"bad chunk size {line[:20]!r}")
                if size < 0:
                    raise RemoteProtocolError(f"bad chunk size {line[:20]!r}")
                self._remaining = size
                self._state = _CHUNK_DATA if size else _TRAILER
            elif state == _CHUNK_DATA:
                n = self._remaining
                if len(buf) < n:
                    return
                self._body += buf[:n]
                del buf[:n]
                self._state = _CHUNK_CRLF
            elif state == _CHUNK_CRLF:
                if len(buf) < 2:
                    return
                if buf[:2] != b"\r\n":
                    raise RemoteProtocolError("chunk data not followed by CRLF")
                del buf[:2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILER:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise RemoteProtocolError("trailer too long")
                    return
                del buf[: end + 2]
                if end == 0:  # the empty line that ends the trailer
                    body = bytes(self._body)
                    self._body.clear()
                    self._finish(body, out)
            else:  # _UNTIL_EOF
                self._body += buf
                buf.clear()
                return

    def feed_eof(self) -> Response | None:
        """The connection closed: the response it completes, if any."""
        if self._state == _UNTIL_EOF:
            body = bytes(self._body + self._buf)
            self._body.clear()
            self._buf.clear()
            self._state = _HEAD
            return Response(self._status, body, self._vclock, False)
        if not self.idle:
            raise RemoteProtocolError("connection closed in the middle of a response")
        return None

    def _start(self, head: bytes, out: list[Response]) -> None:
        if (
            not head.startswith(b"HTTP/1.")
            or head[8:9] != b" "
            or head[12:13] not in (b" ", b"\r", b"")
        ):
            raise RemoteProtocolError(f"bad status line {head[:40]!r}")
        code = head[9:12]
        if not code.isdigit() or code[0] == 0x30:
            raise RemoteProtocolError(f"bad status line {head[:40]!r}")
        status = int(code)
        lower = head.lower()
        connection = _header(lower, head, b"\r\nconnection:")
        if head[5:8] == b"1.0":
            keep_alive = connection is not None and connection.lower() == b"keep-alive"
        else:
            keep_alive = connection is None or connection.lower() != b"close"
        self._status = status
        self._keep_alive = keep_alive
        self._vclock = _header(lower, head, b"\r\nx-riak-vclock:") if self.want_vclock else None
        if status < 200:  # 1xx: informational, the real response follows
            return
        if status in (204, 304):
            self._finish(b"", out)
            return
        te = _header(lower, head, b"\r\ntransfer-encoding:")
        if te is not None and te.lower().endswith(b"chunked"):
            self._state = _CHUNK_SIZE
            return
        cl = _header(lower, head, b"\r\ncontent-length:")
        if cl is None:
            self._state = _UNTIL_EOF
            self._keep_alive = False
            return
        try:
            n = int(cl)
        except ValueError:
            raise RemoteProtocolError(f"bad Content-Length {cl[:20]!r}")
        if n < 0:
            raise RemoteProtocolError(f"bad Content-Length {n}")
        if n == 0:
            self._finish(b"", out)
        else:
            self._remaining = n
            self._state = _BODY

    def _finish(self, body: bytes, out: list[Response]) -> None:
        out.append(Response(self._status, body, self._vclock, self._keep_alive))
        self._state = _HEAD


INDEX_TERMS = 1000  # k{i} carries age_int i mod 1000: each term is on keys/1000 objects
INDEX_PAGE = 100  # max_results of an index-range query
_INDEX_HEADERS = (  # formatted with (i mod INDEX_TERMS, i), as many as the factory's indexes
    b"X-Riak-Index-age_int: %d\r\n",
    b"X-Riak-Index-email_bin: user%d@example.com\r\n",
)


class RequestFactory:
    """Request bytes for one target: ``GET``/``PUT`` of ``/buckets/B/keys/k{i}``, or with
    ``counter_type`` the ``put`` is an increment of the counter
    ``/types/T/buckets/B/datatypes/k{i}`` (and ``get`` its fetch).

    ``indexes`` (0..2) index headers go on every ``put`` of ``k{i}``: ``age_int`` ``i mod
    1000``, then ``email_bin`` ``user{i}@example.com``; with 0 the bytes are the plain
    PUT's. With ``index_query`` the ``get`` is a 2i query of ``age_int`` instead:
    ``eq``, the exact term ``i mod 1000``; ``range``, a page of ``INDEX_PAGE`` keys from
    that term to 999."""

    __slots__ = (
        "_get_head",
        "_get_tail",
        "_index_fmt",
        "_indexes",
        "_put_head",
        "_put_tail",
        "_term_of",
        "_value",
    )

    def __init__(
        self,
        host: str,
        bucket: str,
        get_query: str,
        put_query: str,
        value: bytes,
        counter_type: str | None = None,
        *,
        indexes: int = 0,
        index_query: str | None = None,
    ) -> None:
        if not 0 <= indexes <= len(_INDEX_HEADERS):
            raise ValueError(f"indexes {indexes}: 0..{len(_INDEX_HEADERS)}")
        b = urllib.parse.quote(bucket, safe="")
        path, ctype, method = f"/buckets/{b}/keys/k", "application/octet-stream", "PUT"
        if counter_type is not None:
            t = urllib.parse.quote(counter_type, safe="")
            path, ctype, method = f"/types/{t}/buckets/{b}/datatypes/k", "application/json", "POST"
            value = b'{"increment": 1}'
        get_path = path
        if index_query is not None:  # the query replaces get_query: 2i takes no r
            if index_query not in ("eq", "range"):
                raise ValueError(f"index_query {index_query!r}: eq or range")
            get_path = f"/buckets/{b}/index/age_int/"
            if index_query == "range":
                get_query = f"/{INDEX_TERMS - 1}?max_results={INDEX_PAGE}"
        self._term_of = INDEX_TERMS if index_query else 0  # get(i) asks for term i mod this
        self._get_head = f"GET {get_path}".encode()
        self._get_tail = f"{get_query} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        self._put_head = f"{method} {path}".encode()
        self._put_tail = (
            f"{put_query} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(value)}\r\n"
        ).encode()
        self._index_fmt = b"".join(_INDEX_HEADERS[:indexes])
        self._indexes = indexes
        self._value = value

    def new_parser(self, want_vclock: bool) -> ResponseParser:
        return ResponseParser(want_vclock=want_vclock)

    def get(self, i: int) -> bytes:
        if self._term_of:
            i %= self._term_of
        return b"%s%d%s" % (self._get_head, i, self._get_tail)

    def put(self, i: int, vclock: bytes | None = None) -> bytes:
        if self._indexes:
            return self._indexed_put(i, vclock)
        if vclock:
            return b"%s%d%sX-Riak-Vclock: %s\r\n\r\n%s" % (
                self._put_head,
                i,
                self._put_tail,
                vclock,
                self._value,
            )
        return b"%s%d%s\r\n%s" % (self._put_head, i, self._put_tail, self._value)

    def _indexed_put(self, i: int, vclock: bytes | None) -> bytes:
        index = self._index_fmt % (i % INDEX_TERMS, i)[: self._indexes]
        context = b"X-Riak-Vclock: %s\r\n" % vclock if vclock else b""
        return b"%s%d%s%s%s\r\n%s" % (
            self._put_head,
            i,
            self._put_tail,
            index,
            context,
            self._value,
        )
