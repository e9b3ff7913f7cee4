"""What stands in front of the routes: authentication, a concurrency limit, and the
per-request observation that feeds metrics.

- **Auth** (optional): a bearer token and/or HTTP basic credentials. Every route
  but ``/ping`` needs them (the admin routes too); without them, 401.
- **Concurrency limit**: beyond ``max_concurrent`` requests in flight, a request
  is answered 503 with ``Retry-After`` at once, before its body is read: load
  above capacity gets a fast refusal, not a growing queue.
- **Observation**: ``observe(op, status, seconds)`` after every request.
- **Errors**: a ``ServiceError`` becomes its status and message; anything else is a
  bug, logged, and a 500.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from http_api.access import AuthConfig, ConcurrencyLimit
from http_api.errors import Overloaded, ServiceError

log = logging.getLogger("http_api.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Observe = Callable[[str, int, float], None]
OPEN_PATHS = frozenset({"/ping"})


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        content_type="application/json",
        headers=headers,
    )


def text_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=message if message.endswith("\n") else message + "\n", headers=headers
    )


def error_response(request: web.Request, e: Exception) -> web.StreamResponse:
    """What a request that raised answers: its status and message, or a 500 for a bug."""
    if isinstance(e, Overloaded):
        return text_response(e.status, e.message, {"Retry-After": str(e.retry_after_s)})
    if isinstance(e, ServiceError):
        return text_response(e.status, e.message)
    if isinstance(e, web.HTTPRequestEntityTooLarge):
        return text_response(
            413, "request body too large: store smaller values (see max_object_bytes)"
        )
    if isinstance(e, web.HTTPException):
        raise e
    log.error("bug: unhandled error on %s %s", request.method, request.path, exc_info=e)
    return text_response(500, "internal error: this is a bug, the node log has the details")


class Front:
    """One middleware for everything in front of the routes (one layer is cheaper than
    four): the concurrency limit, authentication, errors to statuses, observation."""

    def __init__(
        self,
        *,
        max_concurrent: int,
        auth: AuthConfig | None,
        observe: Observe | None,
        limit: ConcurrencyLimit | None = None,
    ):
        self.limit = limit if limit is not None else ConcurrencyLimit(max_concurrent)
        self.auth = auth if auth is not None and auth.enabled else None
        self.observe = observe
        self.challenge = (
            'Bearer realm="dynamo"' if self.auth and self.auth.token else 'Basic realm="dynamo"'
        )

    @property
    def in_flight(self) -> int:
        return self.limit.in_flight

    @property
    def refused(self) -> int:
        return self.limit.refused

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        t0 = time.perf_counter()
        response = await self._guarded(request, handler)
        if self.observe is not None:
            self.observe(operation(request), response.status, time.perf_counter() - t0)
        return response

    async def _guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        limit = self.limit
        if path in OPEN_PATHS:
            limit.in_flight += 1  # counted, never refused: liveness must answer
        elif not limit.try_acquire():
            return text_response(503, limit.overload_message(), {"Retry-After": "1"})
        auth = self.auth
        if (
            auth is not None
            and path not in OPEN_PATHS
            and not auth.accepts_header(request.headers.get("Authorization", ""))
        ):
            limit.release()
            return text_response(
                401,
                "authentication required: send Authorization: Bearer <token>"
                + (" or Basic credentials" if auth.basic else ""),
                {"WWW-Authenticate": self.challenge},
            )
        try:
            return await handler(request)
        except web.HTTPException as e:
            if isinstance(e, web.HTTPRequestEntityTooLarge):
                return error_response(request, e)
            raise
        except Exception as e:
            return error_response(request, e)
        finally:
            limit.release()


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
