"""The PB front end's asyncio shell on a real socket, over a fake service: what it does
with bad input, stalls, too many connections, overload, TLS and auth."""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from http_api.access import AuthConfig, ConcurrencyLimit
from http_api.errors import ServiceError
from http_api.service import NodeService
from http_api.types import BucketProps, FetchResult, GetOptions
from pb_api import messages
from pb_api.client import AsyncPbClient
from pb_api.messages import Code, frame
from pb_api.proto import riak_kv_pb2 as kv
from pb_api.proto import riak_pb2 as core
from pb_api.server import PbConfig, PbServer
from tests.support.certs import make_certs

GET = frame(Code.GET_REQ, kv.RpbGetReq(bucket=b"b", key=b"k"))


class SlowService:
    """Reads hold until ``release`` is set; writes are remembered."""

    node_name = "fake"
    max_object_bytes = 1024

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.release.set()
        self.stored: list[bytes] = []

    async def fetch(self, bucket: bytes, key: bytes, opts: GetOptions) -> FetchResult:
        await self.release.wait()
        return FetchResult()

    async def store(self, bucket: bytes, key: bytes, *rest: Any) -> FetchResult | None:
        self.stored.append(key)
        return None

    async def list_keys(self, bucket: bytes, timeout_ms: int | None) -> AsyncIterator[list[bytes]]:
        for i in range(3):
            yield [b"k%d" % i]

    def bucket_props(self, bucket: bytes) -> BucketProps:
        return BucketProps()


@pytest.fixture
def service() -> SlowService:
    return SlowService()


async def _server(svc: SlowService, **config: Any) -> tuple[PbServer, int]:
    limit = config.pop("limit", ConcurrencyLimit(64))
    server = PbServer(
        cast(NodeService, svc),
        PbConfig(max_frame_bytes=4096, **config),
        limit=limit,
    )
    return server, await server.start("127.0.0.1", 0)


OPEN: list[asyncio.StreamWriter] = []


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client connection, closed at the test's end (``_close_all``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    OPEN.append(writer)
    return reader, writer


@pytest.fixture(autouse=True)
async def _close_all() -> AsyncIterator[None]:
    yield
    while OPEN:
        writer = OPEN.pop()
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass  # the server closed it first: closed either way


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> tuple[int, bytes]:
    writer.write(data)
    (length,) = struct.unpack(">I", await asyncio.wait_for(reader.readexactly(4), 5))
    body = await asyncio.wait_for(reader.readexactly(length), 5)
    return body[0], body[1:]


async def _closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 5) == b""


def _errmsg(body: bytes) -> str:
    return core.RpbErrorResp.FromString(body).errmsg.decode()


async def test_an_unknown_code_gets_an_error_and_the_connection_goes_on(
    service: SlowService,
) -> None:
    server, port = await _server(service)
    reader, writer = await _connect(port)
    code, body = await _exchange(reader, writer, messages.HEADER.pack(1, 200))
    assert code == Code.ERROR_RESP
    assert "unknown message code 200" in _errmsg(body)
    assert await _exchange(reader, writer, frame(Code.PING_REQ)) == (Code.PING_RESP, b"")
    await server.close()


@pytest.mark.parametrize(
    ("data", "counter"),
    [
        (messages.HEADER.pack(5000, Code.PUT_REQ), "frames_too_large"),
        (b"\x00\x00\x00\x00", "protocol_errors"),
        # A put whose body does not decode (its content is missing): nothing stored.
        (frame(Code.PUT_REQ, None) + b"", "protocol_errors"),
        (messages.HEADER.pack(4, Code.PUT_REQ) + b"\xff\xff\xff", "protocol_errors"),
    ],
)
async def test_bad_framing_or_an_undecodable_body_closes_that_connection_only(
    service: SlowService, data: bytes, counter: str
) -> None:
    server, port = await _server(service)
    reader, writer = await _connect(port)
    writer.write(data)
    assert await _closed(reader)
    assert getattr(server.stats, counter) == 1
    assert service.stored == []
    other_r, other_w = await _connect(port)
    assert await _exchange(other_r, other_w, frame(Code.PING_REQ)) == (Code.PING_RESP, b"")
    await server.close()


async def test_a_client_stalled_mid_frame_is_dropped(service: SlowService) -> None:
    server, port = await _server(service, stall_timeout_s=0.2)
    reader, writer = await _connect(port)
    writer.write(frame(Code.GET_REQ, kv.RpbGetReq(bucket=b"b", key=b"k"))[:7])
    assert await _closed(reader)
    assert server.stats.stalls == 1
    idle_r, idle_w = await _connect(port)  # idle between frames
    await asyncio.sleep(0.4)
    assert await _exchange(idle_r, idle_w, frame(Code.PING_REQ)) == (Code.PING_RESP, b"")
    await server.close()


async def test_connections_beyond_the_limit_are_closed_at_once(service: SlowService) -> None:
    server, port = await _server(service, max_connections=2)
    kept = [await _connect(port) for _ in range(2)]
    for r, w in kept:
        assert await _exchange(r, w, frame(Code.PING_REQ)) == (Code.PING_RESP, b"")
    reader, _ = await _connect(port)
    assert await _closed(reader)
    assert server.stats.refused_connections == 1
    assert server.stats.active == 2
    await server.close()


async def test_requests_beyond_the_shared_limit_are_refused_at_once(service: SlowService) -> None:
    limit = ConcurrencyLimit(2)
    server, port = await _server(service, limit=limit)
    service.release.clear()
    get = GET
    slow = [await _connect(port) for _ in range(2)]
    for _, w in slow:
        w.write(get)
    while limit.in_flight < 2:
        await asyncio.sleep(0.01)
    reader, writer = await _connect(port)
    code, body = await _exchange(reader, writer, get)
    assert code == Code.ERROR_RESP
    assert _errmsg(body).startswith("overloaded: 2 requests in flight (limit 2)")
    service.release.set()
    for r, _ in slow:
        (length,) = struct.unpack(">I", await asyncio.wait_for(r.readexactly(4), 5))
        assert (await r.readexactly(length))[0] == Code.GET_RESP
    assert limit.in_flight == 0
    assert limit.refused == 1
    await server.close()


async def test_a_listing_streams_then_says_done(service: SlowService) -> None:
    server, port = await _server(service)
    async with AsyncPbClient(f"pb://127.0.0.1:{port}") as c:
        assert await c.list_keys("b") == ["k0", "k1", "k2"]
    await server.close()


async def test_auth_gates_everything_but_ping(service: SlowService) -> None:
    server, port = await _server(service, auth=AuthConfig(basic="ann:s3cret"))
    reader, writer = await _connect(port)
    assert await _exchange(reader, writer, frame(Code.PING_REQ)) == (Code.PING_RESP, b"")
    code, body = await _exchange(reader, writer, frame(Code.LIST_BUCKETS_REQ))
    assert code == Code.ERROR_RESP
    assert "RpbAuthReq" in _errmsg(body)
    wrong = core.RpbAuthReq(user=b"ann", password=b"guess")
    code, body = await _exchange(reader, writer, frame(Code.AUTH_REQ, wrong))
    assert (code, _errmsg(body)) == (
        Code.ERROR_RESP,
        "authentication failed: check the user and password",
    )
    right = core.RpbAuthReq(user=b"ann", password=b"s3cret")
    assert await _exchange(reader, writer, frame(Code.AUTH_REQ, right)) == (Code.AUTH_RESP, b"")
    code, _ = await _exchange(
        reader, writer, frame(Code.GET_REQ, kv.RpbGetReq(bucket=b"b", key=b"k"))
    )
    assert code == Code.GET_RESP
    assert server.stats.auth_failures == 1
    await server.close()


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    return make_certs(tmp_path / "certs", "pb")


async def test_start_tls_then_auth_with_a_token_as_the_password(
    service: SlowService, certs: dict[str, Path]
) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certs["cert"], certs["key"])
    server, port = await _server(service, ssl_context=server_ctx, auth=AuthConfig(token="t0k"))
    reader, writer = await _connect(port)
    _, body = await _exchange(reader, writer, GET)
    assert "TLS only" in _errmsg(body)
    client_ctx = ssl.create_default_context(cafile=str(certs["ca"]))
    async with AsyncPbClient(f"pb://127.0.0.1:{port}", tls=client_ctx, auth=("any", "t0k")) as c:
        assert not (await c.get("b", "k")).exists
    with pytest.raises(ServiceError, match="authentication failed"):
        async with AsyncPbClient(f"pb://127.0.0.1:{port}", tls=client_ctx, auth=("any", "x")) as c:
            await c.get("b", "k")
    await server.close()
