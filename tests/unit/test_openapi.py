"""``http_api/openapi.yaml``: valid OpenAPI 3.0, describing every route the server registers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
import yaml  # type: ignore[import-untyped,unused-ignore]
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aiohttp.web_urldispatcher import MatchInfoError
from schemathesis.core.result import Ok

from http_api.server import make_app
from http_api.service import NodeService

SPEC_PATH = Path(__file__).resolve().parents[2] / "http_api" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "head", "patch", "options", "trace")
# A concrete value for each path parameter, so a documented path can be routed.
SAMPLE = {
    "bucket": "b",
    "key": "k",
    "type": "default",
    "index": "age_int",
    "value": "1",
    "start": "1",
    "end": "9",
}


class _FakeService:
    """All ``make_app`` touches of the service while building the app."""

    max_object_bytes = 1024


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    data = yaml.safe_load(SPEC_PATH.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def app() -> web.Application:
    return make_app(cast(NodeService, _FakeService()))


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def _concrete(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], template)


def _resolve_ref(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references: {ref}"
    node: Any = spec
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref} does not resolve"
        assert part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def _deref(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = _resolve_ref(spec, node["$ref"])
    return node


def test_is_valid_openapi_3_0(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.0.3"
    schema = schemathesis.openapi.from_path(SPEC_PATH)
    schema.validate()  # against the OpenAPI 3.0 meta-schema; raises on any error
    labels = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # an operation schemathesis cannot load
        labels.append(result.ok().label)
    assert len(labels) == len(_operations(spec))


def test_every_reference_resolves(spec: dict[str, Any]) -> None:
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                _resolve_ref(spec, ref)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)


def test_operation_ids_are_unique_and_path_parameters_declared(spec: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in _operations(spec)]
    assert len(ids) == len(set(ids))
    for path, method, op in _operations(spec):
        declared = {
            p["name"]
            for p in (
                _deref(spec, p)
                for p in [*spec["paths"][path].get("parameters", []), *op.get("parameters", [])]
            )
            if p["in"] == "path"
        }
        assert declared == set(re.findall(r"\{(\w+)\}", path)), f"{method.upper()} {path}"


# Riak answers a data type's not-found in JSON (``{"type": ..., "error": "notfound"}``).
DATATYPE_NOT_FOUND = "GET /types/{type}/buckets/{bucket}/datatypes/{key} 404"
# A readiness probe's "not ready" carries its reasons as JSON (and overload as text).
NOT_READY = "GET /admin/health 503"


def test_error_statuses_and_content_types_are_documented(spec: dict[str, Any]) -> None:
    for path, method, op in _operations(spec):
        label = f"{method.upper()} {path}"
        for status, response in op["responses"].items():
            response = _deref(spec, response)
            if f"{label} {status}" in (DATATYPE_NOT_FOUND, NOT_READY):  # and text for the rest
                assert list(response["content"]) == ["application/json", "text/plain"], label
            elif int(status) >= 400:
                assert list(response["content"]) == ["text/plain"], f"{label} {status}"
            if status in ("204",):
                assert "content" not in response, f"{label} {status}"
        statuses = set(op["responses"])
        if path != "/ping":
            assert {"401", "503"} <= statuses, label
        if "{key}" in path:
            assert "414" in statuses, label


def test_object_routes_document_the_riak_statuses(spec: dict[str, Any]) -> None:
    for prefix in ("/buckets/{bucket}", "/types/{type}/buckets/{bucket}"):
        item = spec["paths"][prefix + "/keys/{key}"]
        assert set(item) >= {"get", "put", "post", "delete"}
        assert set(item["get"]["responses"]) >= {"200", "300", "400", "404", "503"}
        for method in ("put", "post"):
            assert set(item[method]["responses"]) >= {"200", "204", "300", "400", "412", "413"}
            names = {_deref(spec, p)["name"] for p in item[method]["parameters"]}
            assert names >= {"w", "dw", "pw", "returnbody", "timeout"}
            assert names >= {"X-Riak-Vclock", "If-None-Match", "X-Riak-Meta-Name"}
        assert set(item["delete"]["responses"]) >= {"204", "404"}
        siblings = _deref(spec, item["get"]["responses"]["300"])
        assert set(siblings["content"]) == {"multipart/mixed", "text/plain"}
        new_key = spec["paths"][prefix + "/keys"]["post"]["responses"]["201"]
        assert "Location" in new_key["headers"]
        props = spec["paths"][prefix + "/props"]
        assert set(props["put"]["responses"]) >= {"204", "400", "415"}


def test_quorum_flag_and_timeout_parameters(spec: dict[str, Any]) -> None:
    params = spec["components"]["parameters"]
    for name in ("R", "PR", "W", "DW", "PW", "RW"):
        schema = _deref(spec, params[name]["schema"])
        words = next(s["enum"] for s in schema["oneOf"] if s.get("type") == "string")
        assert words == ["one", "quorum", "all", "default"]
        assert any(s.get("type") == "integer" for s in schema["oneOf"])
    for name in ("BasicQuorum", "NotfoundOk", "ReturnBody"):
        assert _deref(spec, params[name]["schema"])["enum"] == ["true", "false", "default"]
    assert params["Timeout"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 3600000}


async def test_every_registered_route_is_in_the_spec(
    spec: dict[str, Any], app: web.Application
) -> None:
    """Route each documented operation through the real router: every documented
    operation reaches a registered route, and every registered route is reached."""
    reached: set[web.AbstractRoute] = set()
    for path, method, _ in _operations(spec):
        request = make_mocked_request(method.upper(), _concrete(path), app=app)
        match = await app.router.resolve(request)
        assert not isinstance(match, MatchInfoError), (
            f"{method.upper()} {path} is documented but the server has no such route "
            f"({match.http_exception.status})"
        )
        reached.add(match.route)
    reached_resources = {route.resource for route in reached}
    missing = []
    for route in app.router.routes():
        if route in reached:
            continue
        if route.method == "HEAD" and route.resource in reached_resources:
            continue  # aiohttp's automatic HEAD beside a documented GET
        info = route.resource.canonical if route.resource is not None else "?"
        missing.append(f"{route.method} {info}")
    assert not missing, f"registered but not in {SPEC_PATH.name}: {missing}"


def test_spec_names_each_registered_resource(spec: dict[str, Any], app: web.Application) -> None:
    """The same from the other side: every canonical path prefix the server registers
    (``/buckets/{tail}`` -> ``/buckets/``) starts at least one documented path."""
    documented = list(spec["paths"])
    for resource in app.router.resources():
        canonical = resource.canonical
        prefix = canonical.split("{", 1)[0]
        if "{" in canonical:
            assert any(p.startswith(prefix) and p != prefix for p in documented), canonical
        else:
            assert canonical in documented, canonical


def test_the_catch_all_routes_are_documented_shape_by_shape(spec: dict[str, Any]) -> None:
    """``/buckets/{tail}`` and ``/types/{tail}`` are one aiohttp route each; ``Api.dispatch``
    tells these shapes apart, and each must be documented with the methods it serves."""
    shapes = {
        "/buckets": {"get"},
        "/buckets/{bucket}/keys": {"get", "post"},
        "/buckets/{bucket}/keys/{key}": {"get", "put", "post", "delete"},
        "/buckets/{bucket}/props": {"get", "put", "post", "delete"},
        "/types/{type}/buckets": {"get"},
        "/types/{type}/buckets/{bucket}/keys": {"get", "post"},
        "/types/{type}/buckets/{bucket}/keys/{key}": {"get", "put", "post", "delete"},
        "/types/{type}/buckets/{bucket}/props": {"get", "put", "post", "delete"},
        "/types/default/props": {"get"},
    }
    for path, methods in shapes.items():
        assert path in spec["paths"], path
        assert set(spec["paths"][path]) & set(METHODS) == methods, path
