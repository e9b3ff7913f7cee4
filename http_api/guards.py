"""What stands in front of the routes: authentication, a concurrency limit, and the
per-request observation that feeds metrics.

- **Auth** (optional): a bearer token and/or HTTP basic credentials. Every route
  but ``/ping`` needs them (the admin routes too); without them, 401.
- **Concurrency limit**: beyond ``max_concurrent`` requests in flight, a request
  is answered 503 with ``Retry-After`` at once, before its body is read: load
  above capacity gets a fast refusal, not a growing queue.
- **Observation**: ``observe(op, status, seconds)`` after every request.
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Observe = Callable[[str, int, float], None]
OPEN_PATHS = frozenset({"/ping"})


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthConfig:
    token: str = ""  # "Authorization: Bearer <token>"
    basic: str = ""  # "user:password" for "Authorization: Basic ..."

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.basic)


def _authorized(header: str, auth: AuthConfig) -> bool:
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and auth.token:
        return hmac.compare_digest(value.strip().encode(), auth.token.encode())
    if scheme == "basic" and auth.basic:
        try:
            given = base64.b64decode(value.strip(), validate=True)
        except ValueError:
            return False
        return hmac.compare_digest(given, auth.basic.encode())
    return False


def auth_middleware(
    auth: AuthConfig,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    challenge = 'Bearer realm="dynamo"' if auth.token else 'Basic realm="dynamo"'

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or _authorized(
            request.headers.get("Authorization", ""), auth
        ):
            return await handler(request)
        return web.Response(
            status=401,
            text="authentication required: send Authorization: Bearer <token>"
            + (" or Basic credentials" if auth.basic else "")
            + "\n",
            headers={"WWW-Authenticate": challenge},
        )

    return check


class ConcurrencyLimit:
    def __init__(self, max_concurrent: int) -> None:
        self.max = max_concurrent
        self.in_flight = 0
        self.refused = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.in_flight >= self.max and request.path not in OPEN_PATHS:
            self.refused += 1
            return web.Response(
                status=503,
                text=f"overloaded: {self.in_flight} requests in flight (limit {self.max});"
                " retry after a moment\n",
                headers={"Retry-After": "1"},
            )
        self.in_flight += 1
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1


def operation(request: web.Request) -> str:
    """A low-cardinality name for what a request did, for metrics labels."""
    path = request.path
    if path.startswith(("/buckets/", "/types/")):
        if "/keys/" in path:
            return {
                "GET": "get",
                "HEAD": "get",
                "PUT": "put",
                "POST": "put",
                "DELETE": "delete",
            }.get(request.method, "other")
        if path.endswith("/keys"):
            return "put" if request.method == "POST" else "list_keys"
        if path.endswith("/props"):
            return "props"
    if path == "/buckets":
        return "list_buckets"
    if path.startswith("/admin/"):
        return "admin"
    return {"/": "discovery", "/ping": "ping", "/stats": "stats", "/metrics": "metrics"}.get(
        path, "other"
    )


def observe_middleware(
    observe: Observe,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
        t0 = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as e:
            status = e.status
            raise
        finally:
            observe(operation(request), status, time.perf_counter() - t0)

    return timed
