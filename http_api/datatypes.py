"""Riak's data types over HTTP: ``/types/T/buckets/B/datatypes[/K]``.

- ``GET .../datatypes/K`` -> ``{"type": "set", "value": [...], "context": "..."}`` (the
  context, for removes, when ``include_context`` is not false); not found: 404 with
  ``{"type": ..., "error": "notfound"}``, as Riak answers.
- ``POST .../datatypes/K`` with an operation (``{"increment": 1}``, ``{"add_all": [..],
  "remove": "x", "context": "..."}``, ``{"update": {...}, "remove": [...]}`` ...): 204, or
  200 with the new value under ``returnbody=true``; ``POST .../datatypes`` without a key:
  201 with ``Location``. Quorum parameters as for objects.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Any

from aiohttp import web

from http_api import params
from http_api.errors import BadRequest, RequestTooLarge, UnsupportedMediaType
from http_api.guards import json_response
from http_api.service import NodeService
from http_api.types import Datatype, bucket_url

MAX_OP_BYTES = 1024 * 1024
_JSON = "application/json"


_json = json_response


def body_of(dt: Datatype, include_context: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"type": dt.kind, "value": dt.value}
    if include_context and dt.context:
        out["context"] = base64.b64encode(dt.context).decode()
    return out


async def dispatch(
    svc: NodeService, request: web.Request, bucket: bytes, rest: list[str]
) -> web.StreamResponse:
    if len(rest) > 1:
        raise BadRequest("use /types/{type}/buckets/{bucket}/datatypes/{key}")
    key = params.segment(rest[0], "key") if rest else None
    if request.method in ("GET", "HEAD") and key is not None:
        return await fetch(svc, request, bucket, key)
    if request.method in ("POST", "PUT"):
        return await update(svc, request, bucket, key)
    raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])


async def fetch(svc: NodeService, request: web.Request, bucket: bytes, key: bytes) -> web.Response:
    q = dict(request.query)
    include_context = params.flag(q, "include_context") is not False
    dt = await svc.fetch_datatype(bucket, key, params.get_options(q))
    if not dt.found:
        return _json({"type": dt.kind, "error": "notfound"}, 404)
    return _json(body_of(dt, include_context))


async def _operation(request: web.Request) -> tuple[dict[str, Any], bytes | None]:
    if request.content_type != _JSON:
        raise UnsupportedMediaType(
            f"a data type operation needs Content-Type: application/json,"
            f" not {request.content_type!r}"
        )
    if request.content_length is not None and request.content_length > MAX_OP_BYTES:
        raise RequestTooLarge(f"operation above {MAX_OP_BYTES} bytes: send it in parts")
    raw = await request.read()
    if len(raw) > MAX_OP_BYTES:
        raise RequestTooLarge(f"operation above {MAX_OP_BYTES} bytes: send it in parts")
    try:
        op = json.loads(raw)
    except ValueError as e:
        raise BadRequest(f"the operation is not JSON ({e})")
    if not isinstance(op, dict):
        raise BadRequest('the operation must be a JSON object, e.g. {"increment": 1}')
    context: bytes | None = None
    ctx = op.pop("context", None)
    if ctx is not None:
        if not isinstance(ctx, str):
            raise BadRequest("context must be the string a fetch returned")
        try:
            context = base64.b64decode(ctx, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("context is not base64: send back the one a fetch returned")
    return op, context


async def update(
    svc: NodeService, request: web.Request, bucket: bytes, key: bytes | None
) -> web.Response:
    q = dict(request.query)
    opts = params.put_options(q, False)
    include_context = params.flag(q, "include_context") is not False
    op, context = await _operation(request)
    created = key is None
    if key is None:
        key = secrets.token_urlsafe(18).replace("-", "A").replace("_", "B").encode()
    dt = await svc.update_datatype(bucket, key, op, context, opts)
    headers = {"Location": f"{bucket_url(bucket)}/datatypes/{key.decode()}"} if created else None
    if opts.return_body and dt is not None:
        return _json(body_of(dt, include_context), 201 if created else 200, headers)
    return web.Response(status=201 if created else 204, headers=headers)
