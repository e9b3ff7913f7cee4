"""Bucket types over admin HTTP, as ``riak admin bucket-type`` (``dynamo bucket-type``):

- ``GET /admin/bucket-types``: every type, its props and whether it is active;
- ``GET /admin/bucket-types/{name}``: one, with the ring members that hold it and
  those that do not yet (activation waits for all);
- ``POST /admin/bucket-types/{name}`` ``{"props": {...}}``: create (``datatype``, one of
  counter, set, gset, map, hll, is fixed from then on);
- ``PUT /admin/bucket-types/{name}`` ``{"props": {...}}``: update (not the datatype);
- ``POST /admin/bucket-types/{name}/activate``: activate (409 while some member lacks it).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from http_api import params
from http_api.errors import BadRequest
from http_api.guards import json_response
from http_api.service import NodeService

PREFIX = "/admin/bucket-types"


_json = json_response


async def _props(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise BadRequest(f'the body is not JSON ({e}): send {{"props": {{...}}}}')
    if not isinstance(data, dict) or not isinstance(data.get("props", {}), dict):
        raise BadRequest('the body must be a JSON object {"props": {...}}')
    props: dict[str, Any] = data.get("props", {})
    return props


def _name(request: web.Request) -> str:
    raw = request.raw_path.split("?", 1)[0][len(PREFIX) + 1 :]
    name, _, action = raw.partition("/")
    if action not in ("", "activate"):
        raise BadRequest("use /admin/bucket-types/{name} or /admin/bucket-types/{name}/activate")
    return params.segment(name, "bucket type").decode()


async def handle(svc: NodeService, request: web.Request) -> web.Response:
    path = request.raw_path.split("?", 1)[0].rstrip("/")
    if path == PREFIX:
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET"])
        return _json(svc.bucket_types())
    name = _name(request)
    if path.endswith("/activate"):
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["POST"])
        return _json(await svc.activate_bucket_type(name))
    if request.method in ("GET", "HEAD"):
        return _json(svc.bucket_type_status(name))
    if request.method == "POST":
        return _json(await svc.create_bucket_type(name, await _props(request)), 201)
    if request.method == "PUT":
        return _json(await svc.update_bucket_type(name, await _props(request)))
    raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST", "PUT"])
