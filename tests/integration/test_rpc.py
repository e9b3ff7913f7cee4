"""Node-to-node RPC over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest

from dynamo.net.rpc import Rpc, RpcConfig, RpcError
from dynamo.net.schema import CARRIED, Method

ECHO: Method[Any, Any] = Method("echo", CARRIED, CARRIED)
SLOW: Method[Any, Any] = Method("slow", CARRIED, CARRIED)
BOOM: Method[Any, Any] = Method("boom", CARRIED, CARRIED)
NOPE: Method[Any, Any] = Method("nope", CARRIED, CARRIED)  # never registered


def make(node: str, secret: bytes | None = None, cluster: str = "c1", **kw: Any) -> Rpc:
    return Rpc(RpcConfig(cluster=cluster, node_id=node, secret=secret, **kw))


@pytest.fixture
async def server() -> AsyncIterator[tuple[Rpc, str]]:
    rpc = make("server")

    async def slow(body: Any, peer: str) -> Any:
        await asyncio.sleep(body)
        return "late"

    def boom(body: Any, peer: str) -> Any:
        raise ValueError("no such thing")

    rpc.register(ECHO, lambda body, peer: {"body": body, "peer": peer})
    rpc.register(SLOW, slow)
    rpc.register(BOOM, boom)
    port = await rpc.listen("127.0.0.1", 0)
    yield rpc, f"127.0.0.1:{port}"
    await rpc.close()


async def test_call_round_trip_names_the_caller(server: tuple[Rpc, str]) -> None:
    _, addr = server
    client = make("client")
    assert await client.call(addr, ECHO, [1, b"x", "y"]) == {
        "body": [1, b"x", "y"],
        "peer": "client",
    }
    await client.close()


async def test_many_calls_in_flight_on_one_connection(server: tuple[Rpc, str]) -> None:
    _, addr = server
    client = make("client")
    replies = await asyncio.gather(*(client.call(addr, ECHO, i) for i in range(500)))
    assert [r["body"] for r in replies] == list(range(500))
    assert len(client.connections) == 1
    await client.close()


async def test_handler_error_and_unknown_method_fail_only_that_call(
    server: tuple[Rpc, str],
) -> None:
    _, addr = server
    client = make("client")
    with pytest.raises(RpcError, match="no such thing"):
        await client.call(addr, BOOM, None)
    with pytest.raises(RpcError, match="unknown method"):
        await client.call(addr, NOPE, None)
    assert (await client.call(addr, ECHO, 1))["body"] == 1
    await client.close()


async def test_call_times_out_without_hanging(server: tuple[Rpc, str]) -> None:
    _, addr = server
    client = make("client")
    with pytest.raises(RpcError, match="timed out"):
        await client.call(addr, SLOW, 5, timeout_s=0.1)
    assert client.stats.timeouts == 1
    assert (await client.call(addr, ECHO, 2))["body"] == 2
    await client.close()


async def _raw(addr: str, payload: bytes) -> bytes:
    host, _, port = addr.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(payload)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


async def test_garbage_closes_only_that_connection(server: tuple[Rpc, str]) -> None:
    srv, addr = server
    client = make("client")
    assert (await client.call(addr, ECHO, 1))["body"] == 1
    await _raw(addr, b"\xc1\xc1 this is not msgpack \xff" * 10)
    await _raw(addr, msgpack.packb({"not": "a frame"}))
    assert srv.stats.protocol_errors >= 2
    assert (await client.call(addr, ECHO, 3))["body"] == 3


async def test_oversized_frame_closes_the_connection() -> None:
    srv = make("server", max_frame_bytes=4096)
    srv.register(ECHO, lambda body, peer: body)
    port = await srv.listen("127.0.0.1", 0)
    addr = f"127.0.0.1:{port}"
    client = make("client")
    assert await client.call(addr, ECHO, b"small") == b"small"
    with pytest.raises(RpcError):
        await client.call(addr, ECHO, b"x" * 100_000, timeout_s=2)
    assert srv.stats.frames_too_large == 1
    assert await client.call(addr, ECHO, b"again") == b"again"
    await client.close()
    await srv.close()


@pytest.mark.parametrize(
    ("server_secret", "client_secret", "cluster"),
    [
        (b"s3cret", b"wrong", "c1"),
        (b"s3cret", None, "c1"),
        (None, b"s3cret", "c1"),
        (None, None, "c2"),
    ],
)
async def test_strangers_are_refused(
    server_secret: bytes | None, client_secret: bytes | None, cluster: str
) -> None:
    srv = make("server", secret=server_secret)
    srv.register(ECHO, lambda body, peer: body)
    port = await srv.listen("127.0.0.1", 0)
    client = make("client", secret=client_secret, cluster=cluster)
    with pytest.raises(RpcError):
        await client.call(f"127.0.0.1:{port}", ECHO, 1, timeout_s=2)
    assert srv.stats.auth_failures + client.stats.auth_failures >= 1
    await client.close()
    await srv.close()


async def test_the_right_secret_is_accepted() -> None:
    srv = make("server", secret=b"s3cret")
    srv.register(ECHO, lambda body, peer: [body, peer])
    port = await srv.listen("127.0.0.1", 0)
    client = make("client", secret=b"s3cret")
    assert await client.call(f"127.0.0.1:{port}", ECHO, 7) == [7, "client"]
    assert srv.connected_nodes() == {"client"}
    await client.close()
    await srv.close()


async def test_reconnects_after_the_peer_restarts() -> None:
    srv = make("server")
    srv.register(ECHO, lambda body, peer: body)
    port = await srv.listen("127.0.0.1", 0)
    addr = f"127.0.0.1:{port}"
    client = make("client", backoff_min_s=0.01, backoff_max_s=0.05)
    assert await client.call(addr, ECHO, 1) == 1
    await srv.close()
    with pytest.raises(RpcError):
        await client.call(addr, ECHO, 2, timeout_s=1)
    srv2 = make("server")
    srv2.register(ECHO, lambda body, peer: body)
    await srv2.listen("127.0.0.1", port)
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        try:
            assert await client.call(addr, ECHO, 3, timeout_s=1) == 3
            break
        except RpcError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.02)
    await client.close()
    await srv2.close()


async def test_unreachable_peer_fails_fast() -> None:
    client = make("client")
    with pytest.raises(RpcError, match="cannot connect"):
        await client.call("127.0.0.1:1", ECHO, 1, timeout_s=2)
    with pytest.raises(RpcError, match="unreachable"):
        await client.call("127.0.0.1:1", ECHO, 1, timeout_s=2)
    await client.close()
