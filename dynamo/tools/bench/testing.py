"""A constant HTTP/1.1 server for measuring the load generator itself.

It answers ``GET`` with 200 and a fixed body (and an ``X-Riak-Vclock``), anything else
with 204, reading request bodies by ``Content-Length``; one ``asyncio.Protocol``, no
framework, so it costs a few microseconds per request and the client's cost shows.

    python -m dynamo.tools.bench.testing PORT [--body-bytes 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import cast

MAX_REQUEST_HEAD_BYTES = 64 * 1024


def constant_responses(body_bytes: int) -> tuple[bytes, bytes]:
    get = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        b"X-Riak-Vclock: a85hYGBgzGDKBVIcypz/fgbMZ/4LLAQ=\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (body_bytes, b"x" * body_bytes)
    )
    put = b"HTTP/1.1 204 No Content\r\n\r\n"
    return get, put


class ConstantProtocol(asyncio.Protocol):
    def __init__(self, get: bytes, put: bytes) -> None:
        self._get = get
        self._put = put
        self._buf = bytearray()
        self._skip = 0  # request body bytes still to discard
        self._transport: asyncio.Transport | None = None
        self.served = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        out = []
        while True:
            if self._skip:
                n = min(self._skip, len(buf))
                del buf[:n]
                self._skip -= n
                if self._skip:
                    break
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_REQUEST_HEAD_BYTES and self._transport is not None:
                    self._transport.abort()
                break
            head = bytes(buf[:end]).lower()
            del buf[: end + 4]
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r\n", i + 17)
                self._skip = int(head[i + 17 : j if j >= 0 else len(head)])
            out.append(self._get if head.startswith(b"get ") else self._put)
        if out and self._transport is not None:
            self.served += len(out)
            self._transport.write(b"".join(out))


async def serve(port: int, body_bytes: int, host: str = "127.0.0.1") -> asyncio.Server:
    get, put = constant_responses(body_bytes)
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: ConstantProtocol(get, put), host, port)


async def _main(port: int, body_bytes: int) -> None:
    server = await serve(port, body_bytes)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    from dynamo.tools.bench.worker import new_event_loop

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("port", type=int)
    p.add_argument("--body-bytes", type=int, default=1024)
    args = p.parse_args()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_main(args.port, args.body_bytes))


if __name__ == "__main__":
    main()
