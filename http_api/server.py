"""The Riak-compatible HTTP API (aiohttp): discovery, objects, buckets, props, admin.

Object paths are parsed from the raw request path: split on ``/`` first, then
each segment percent-decoded with ``+`` as space, so a key may hold ``/``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from http_api import codec, datatypes, index_routes, params, type_admin
from http_api.access import AuthConfig, ConcurrencyLimit
from http_api.errors import (
    BadRequest,
    NotFound,
    RequestTooLarge,
    UnsupportedMediaType,
)
from http_api.guards import Front, Observe, json_response
from http_api.guards import text_response as _text
from http_api.service import RIAK_KV_VERSION, NodeService, active_preflist
from http_api.types import (
    DEFAULT_TYPE,
    FetchResult,
    Sibling,
    bucket_url,
    split_bucket,
    typed_bucket,
)

log = logging.getLogger(__name__)

SERVICE: web.AppKey[NodeService] = web.AppKey("service", NodeService)
FRONT: web.AppKey[Front] = web.AppKey("front", Front)
RESOURCES = {
    "riak_kv_wm_buckets": "/buckets",
    "riak_kv_wm_bucket_type": "/types",
    "riak_kv_wm_index": "/buckets",
    "riak_kv_wm_keylist": "/buckets",
    "riak_kv_wm_link_walker": "/buckets",
    "riak_kv_wm_ping": "/ping",
    "riak_kv_wm_preflist": "/buckets",
    "riak_kv_wm_props": "/buckets",
    "riak_kv_wm_stats": "/stats",
}
_RESOURCES_BODY = json.dumps(RESOURCES).encode()
_UI_PAGE = Path(__file__).parent / "static" / "ui.html"
_JSON = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_json = json_response


class Api:
    """Route handlers over one ``NodeService``."""

    def __init__(self, service: NodeService, stats_ttl_s: float = 1.0) -> None:
        self.svc = service
        self._stats_ttl_s = stats_ttl_s
        self._stats_cache: tuple[float, bytes] = (0.0, b"")

    # --- Discovery ----------------------------------------------------------------------------

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(body=_RESOURCES_BODY, content_type=_JSON)

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def stats(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        at, body = self._stats_cache
        if now - at > self._stats_ttl_s or not body:
            data = self.svc.stats()
            data.setdefault("riak_kv_version", RIAK_KV_VERSION)
            data.setdefault("nodename", self.svc.node_name)
            body = json.dumps(data).encode()
            self._stats_cache = (now, body)
        return web.Response(body=body, content_type=_JSON)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.svc.metrics(), headers={"Content-Type": "text/plain; version=0.0.4"}
        )

    # --- Dispatch of /buckets and /types paths -------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = request.raw_path.split("?", 1)[0]
        parts = raw.split("/")[1:]
        if parts and parts[-1] == "" and len(parts) > 1:
            parts = parts[:-1]
        btype = DEFAULT_TYPE
        if parts[0] == "types":
            if len(parts) < 3:
                raise NotFound("unknown resource: use /types/{type}/buckets/{bucket}/...")
            btype = params.segment(parts[1], "bucket type")
            if len(parts) == 3 and parts[2] == "props":
                return await self.type_props(request, btype)
            self.svc.check_type(btype)  # NotFound or BadRequest unless it exists, active
            parts = parts[2:]
            if parts == ["buckets"]:
                return await self._list_buckets_get(request, btype)
        if parts[0] != "buckets":
            raise NotFound("unknown resource")
        if len(parts) == 1:
            return await self._list_buckets_get(request, btype)
        bucket = typed_bucket(btype, params.segment(parts[1], "bucket"))
        if len(parts) >= 3 and parts[2] == "datatypes":
            return await datatypes.dispatch(self.svc, request, bucket, parts[3:])
        if len(parts) >= 3 and parts[2] == "index":
            return await index_routes.dispatch(self.svc, request, bucket, parts[3:])
        if len(parts) == 3 and parts[2] == "props":
            return await self.props(request, bucket)
        if len(parts) >= 3 and parts[2] == "keys":
            if len(parts) == 3:
                if request.method == "POST":
                    return await self.put(request, bucket, None)
                if request.method in ("GET", "HEAD"):
                    return await self.list_keys(request, bucket)
                raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
            key = params.segment(parts[3], "key")
            if len(parts) == 5 and parts[4] == "preflist":
                if request.method not in ("GET", "HEAD"):
                    raise web.HTTPMethodNotAllowed(request.method, ["GET"])
                return _json({"preflist": active_preflist(self.svc.preflist(bucket, key))})
            if len(parts) > 4:
                raise NotFound("link walking is not supported: a key's slashes must be sent as %2F")
            if request.method in ("GET", "HEAD"):
                return await self.get(request, bucket, key)
            if request.method in ("PUT", "POST"):
                return await self.put(request, bucket, key)
            if request.method == "DELETE":
                return await self.delete(request, bucket, key)
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "PUT", "POST", "DELETE"])
        raise NotFound(
            "unknown resource: use /buckets/{bucket}/keys/{key} or /buckets/{bucket}/props"
        )

    # --- Objects ------------------------------------------------------------------------------

    @staticmethod
    def _query(request: web.Request) -> dict[str, str]:
        return dict(request.query)

    def _object_response(
        self,
        request: web.Request,
        bucket: bytes,
        result: FetchResult,
        status: int = 200,
        extra: dict[str, str] | None = None,
    ) -> web.Response:
        bname = split_bucket(bucket)[1].decode()
        ctx = base64.b64encode(result.context).decode() if result.context else None
        headers: dict[str, str] = dict(extra or {})
        if ctx:
            headers["X-Riak-Vclock"] = ctx
        sibs = result.siblings
        vtag = request.query.get("vtag")
        if vtag is not None:
            match = [s for s in sibs if s.vtag == vtag]
            if not match:
                return _text(404, f"not found: no sibling with vtag {vtag!r}", headers)
            sibs = (match[0],)
        elif not result.found:
            headers["X-Riak-Deleted"] = "true" if result.tombstone else "false"
            if not result.tombstone:
                del headers["X-Riak-Deleted"]
            return _text(404, "not found", headers)
        if len(sibs) == 1:
            return self._one(bname, sibs[0], headers, status)
        accept = request.headers.get("Accept", "")
        if "multipart/mixed" in accept:
            boundary = codec.new_boundary()
            headers["Content-Type"] = f"multipart/mixed; boundary={boundary}"
            body = codec.multipart_body(bname, sibs, boundary)
        else:
            headers["Content-Type"] = "text/plain"
            body = codec.text_siblings(sibs)
        return web.Response(status=300 if status == 200 else status, body=body, headers=headers)

    @staticmethod
    def _one(bucket: str, s: Sibling, headers: dict[str, str], status: int) -> web.Response:
        for name, value in codec.sibling_headers(bucket, s):
            if name in headers:
                continue
            headers[name] = value
        return web.Response(status=status, body=s.content.value, headers=headers)

    async def get(self, request: web.Request, bucket: bytes, key: bytes) -> web.Response:
        opts = params.get_options(self._query(request))
        result = await self.svc.fetch(bucket, key, opts)
        return self._object_response(request, bucket, result)

    @staticmethod
    def _context(request: web.Request) -> bytes | None:
        raw = request.headers.get("X-Riak-Vclock")
        if raw is None or not raw.strip():
            return None
        try:
            return base64.b64decode(raw.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("X-Riak-Vclock is not base64: send back the value a read returned")

    async def _body(self, request: web.Request) -> bytes:
        limit = self.svc.max_object_bytes
        if request.content_length is not None and request.content_length > limit:
            raise RequestTooLarge(
                f"value is {request.content_length} bytes, above the limit of {limit}: store less"
            )
        body = await request.read()
        if len(body) > limit:
            raise RequestTooLarge(
                f"value is {len(body)} bytes, above the limit of {limit}: store less"
            )
        return body

    async def put(self, request: web.Request, bucket: bytes, key: bytes | None) -> web.Response:
        q = self._query(request)
        inm = request.headers.get("If-None-Match", "").strip() == "*"
        opts = params.put_options(q, inm)
        context = self._context(request)
        body = await self._body(request)
        content = codec.content_from_headers(
            request.headers, request.headers.items(), body, time.time_ns() // 1000
        )
        created = key is None
        if key is None:
            key = secrets.token_urlsafe(18).replace("-", "A").replace("_", "B").encode()
        result = await self.svc.store(bucket, key, content, context, opts)
        extra: dict[str, str] = {}
        if created:
            extra["Location"] = f"{bucket_url(bucket)}/keys/{key.decode()}"
        if opts.return_body and result is not None:
            return self._object_response(request, bucket, result, 201 if created else 200, extra)
        return web.Response(status=201 if created else 204, headers=extra)

    async def delete(self, request: web.Request, bucket: bytes, key: bytes) -> web.Response:
        opts = params.delete_options(self._query(request))
        found = await self.svc.delete(bucket, key, self._context(request), opts)
        return web.Response(status=204) if found else _text(404, "not found")

    # --- Buckets ------------------------------------------------------------------------------

    async def list_keys(self, request: web.Request, bucket: bytes) -> web.StreamResponse:
        mode = request.query.get("keys")
        timeout = params.timeout_ms(self._query(request))
        if mode == "stream":
            resp = web.StreamResponse(headers={"Content-Type": _JSON})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            async for chunk in self.svc.list_keys(bucket, timeout):
                if chunk:
                    await resp.write(json.dumps({"keys": [k.decode() for k in chunk]}).encode())
            await resp.write(b'{"keys":[]}')
            await resp.write_eof()
            return resp
        if mode != "true":
            if request.query.get("props") in ("true", None) and mode in (None, "false"):
                return self._props_json(bucket)
            raise BadRequest(f"keys={mode!r}: use keys=true or keys=stream")
        keys: list[str] = []
        async for chunk in self.svc.list_keys(bucket, timeout):
            keys.extend(k.decode() for k in chunk)
        return _json({"keys": keys})

    async def _list_buckets_get(self, request: web.Request, btype: bytes) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET"])
        return await self.list_buckets(request, btype)

    async def list_buckets(self, request: web.Request, btype: bytes) -> web.StreamResponse:
        mode = request.query.get("buckets")
        timeout = params.timeout_ms(self._query(request))
        if mode == "stream":
            resp = web.StreamResponse(headers={"Content-Type": _JSON})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            async for chunk in self.svc.list_buckets(timeout, btype):
                if chunk:
                    await resp.write(json.dumps({"buckets": [b.decode() for b in chunk]}).encode())
            await resp.write(b'{"buckets":[]}')
            await resp.write_eof()
            return resp
        if mode != "true":
            raise BadRequest(f"buckets={mode!r}: use buckets=true or buckets=stream")
        names: list[str] = []
        async for chunk in self.svc.list_buckets(timeout, btype):
            names.extend(b.decode() for b in chunk)
        return _json({"buckets": names})

    async def props(self, request: web.Request, bucket: bytes) -> web.Response:
        if request.method in ("GET", "HEAD"):
            return self._props_json(bucket)
        if request.method == "DELETE":
            await self.svc.reset_bucket_props(bucket)
            return web.Response(status=204)
        if request.method not in ("PUT", "POST"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "PUT", "DELETE"])
        if request.content_type != _JSON:
            raise UnsupportedMediaType(
                f"props need Content-Type: application/json, not {request.content_type!r}"
            )
        raw = await request.read()
        try:
            data = json.loads(raw, parse_constant=_no_constant)
        except ValueError as e:
            raise BadRequest(f'props body is not JSON ({e}): send {{"props": {{...}}}}')
        if not isinstance(data, dict) or not isinstance(data.get("props"), dict):
            raise BadRequest('props body must be a JSON object {"props": {...}}')
        await self.svc.set_bucket_props(bucket, data["props"])
        return web.Response(status=204)

    def _props_json(self, bucket: bytes) -> web.Response:
        name = split_bucket(bucket)[1].decode()
        return _json({"props": self.svc.bucket_props(bucket).to_json(name)})

    async def type_props(self, request: web.Request, btype: bytes) -> web.Response:
        """``GET /types/T/props``: the props a bucket of the type starts from."""
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET"])
        return _json({"props": self.svc.type_props(btype).to_json(btype.decode())})

    # --- Admin --------------------------------------------------------------------------------

    def _admin_bkey(self, request: web.Request, prefix: str) -> tuple[bytes, bytes]:
        raw = request.raw_path.split("?", 1)[0][len(prefix) :]
        bucket, sep, key = raw.partition("/")
        if not sep:
            raise BadRequest(f"use {prefix}{{bucket}}/{{key}}[?type={{bucket type}}]")
        name = params.segment(bucket, "bucket")
        btype = request.query.get("type", "default").encode()
        self.svc.check_type(btype)
        return typed_bucket(btype, name), params.segment(key, "key")

    async def admin_local(self, request: web.Request) -> web.Response:
        bucket, key = self._admin_bkey(request, "/admin/local/")
        result = self.svc.local_copy(bucket, key)
        if result is None or not result.siblings:
            return _json({"found": False})
        return _json(
            {
                "found": True,
                "context": base64.b64encode(result.context).decode(),
                "siblings": [
                    {
                        "vtag": s.vtag,
                        "deleted": s.content.deleted,
                        "content_type": s.content.content_type,
                        "value_b64": base64.b64encode(s.content.value).decode(),
                    }
                    for s in result.siblings
                ],
            }
        )

    async def admin_preflist(self, request: web.Request) -> web.Response:
        bucket, key = self._admin_bkey(request, "/admin/preflist/")
        return _json(self.svc.preflist(bucket, key))

    async def admin_members(self, request: web.Request) -> web.Response:
        return _json(self.svc.members())

    async def admin_ring(self, request: web.Request) -> web.Response:
        return _json(self.svc.ring())

    async def admin_handoff(self, request: web.Request) -> web.Response:
        return _json(self.svc.handoff())

    async def admin_backup(self, request: web.Request) -> web.Response:
        try:
            name = (await request.json())["name"]
            if not isinstance(name, str):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise BadRequest('backup needs a JSON body {"name": "..."}: a directory name')
        return _json(await self.svc.backup(name))

    async def admin_health(self, request: web.Request) -> web.Response:
        """Readiness, unlike ``/ping`` (liveness): 503 with the reasons while this node
        cannot take writes (a full disk, no cluster yet); it may still serve reads."""
        reasons = self.svc.health()
        body = {"status": "unavailable" if reasons else "ok", "reasons": reasons}
        return _json(body, status=503 if reasons else 200)

    async def admin_aae(self, request: web.Request) -> web.Response:
        return _json(self.svc.aae())

    async def admin_join(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
            seed = data["seed"]
            if not isinstance(seed, str) or ":" not in seed:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise BadRequest('join needs a JSON body {"seed": "host:peer_port"}')
        return _json(await self.svc.join(seed))

    async def admin_leave(self, request: web.Request) -> web.Response:
        return _json(await self.svc.leave())

    async def admin_bucket_types(self, request: web.Request) -> web.Response:
        return await type_admin.handle(self.svc, request)

    async def admin_remove(self, request: web.Request) -> web.Response:
        """``{"node": id}`` (Riak's force-remove), or ``{"node": old, "replace_with": new}``."""
        try:
            data = await request.json()
            node, new = data["node"], data.get("replace_with")
            if not isinstance(node, str) or not (new is None or isinstance(new, str)):
                raise ValueError
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BadRequest('remove needs a JSON body {"node": id} (and "replace_with": id)')
        return _json(await self.svc.remove(node, new))

    async def admin_ui(self, request: web.Request) -> web.Response:
        return web.Response(body=_UI_PAGE.read_bytes(), content_type="text/html", charset="utf-8")


def make_app(
    service: NodeService,
    *,
    auth: AuthConfig | None = None,
    max_concurrent: int = 1024,
    observe: Observe | None = None,
    limit: ConcurrencyLimit | None = None,
) -> web.Application:
    """The aiohttp application for one node, behind one ``guards.Front`` middleware;
    ``limit``: the concurrency limit it shares with the node's other front ends."""
    front = Front(max_concurrent=max_concurrent, auth=auth, observe=observe, limit=limit)
    app = web.Application(
        middlewares=[front.middleware],
        client_max_size=service.max_object_bytes + 1024 * 1024,
    )
    app[FRONT] = front
    app[SERVICE] = service
    api = Api(service)
    r = app.router
    r.add_get("/", api.root)
    r.add_get("/ping", api.ping)
    r.add_get("/stats", api.stats)
    r.add_get("/metrics", api.metrics)
    r.add_route("*", "/buckets", api.dispatch)
    r.add_route("*", "/buckets/{tail:[\\s\\S]*}", api.dispatch)
    r.add_route("*", "/types/{tail:[\\s\\S]*}", api.dispatch)
    r.add_get("/admin/local/{tail:[\\s\\S]*}", api.admin_local)
    r.add_get("/admin/preflist/{tail:[\\s\\S]*}", api.admin_preflist)
    r.add_get("/admin/members", api.admin_members)
    r.add_get("/admin/ring", api.admin_ring)
    r.add_get("/admin/handoff", api.admin_handoff)
    r.add_get("/admin/health", api.admin_health)
    r.add_post("/admin/backup", api.admin_backup)
    r.add_get("/admin/aae", api.admin_aae)
    r.add_post("/admin/join", api.admin_join)
    r.add_post("/admin/leave", api.admin_leave)
    r.add_post("/admin/remove", api.admin_remove)
    r.add_route("*", type_admin.PREFIX, api.admin_bucket_types)
    r.add_route("*", type_admin.PREFIX + "/{tail:[\\s\\S]*}", api.admin_bucket_types)
    r.add_get("/admin/ui", api.admin_ui)
    return app
