"""The ceiling: an aiohttp handler returning a constant 1 KiB body, one process.

Run: python benchmarks/ceiling_server.py PORT [--uvloop]
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

BODY = b"x" * 1024


async def const(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/octet-stream")


def main() -> None:
    port = int(sys.argv[1])
    if "--uvloop" in sys.argv:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = web.Application()
    app.router.add_get("/const", const)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
