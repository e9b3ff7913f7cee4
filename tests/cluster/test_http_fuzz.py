"""Schemathesis against one real node, from ``http_api/openapi.yaml``.

Every documented operation (but ``POST /admin/join`` and ``POST /admin/leave``, which
change the node's membership) is driven with generated requests, valid and invalid.
No response may be a 5xx, every response must be one the spec documents (status,
content type, body schema, headers), and the node must still answer ``/ping`` and its
process still run at the end. Seeded (``derandomize``): the same requests every run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode, Response
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dynamo.tools.localcluster import LocalCluster, NodeProcess, http
from tests.cluster.conftest import MakeCluster

pytestmark = pytest.mark.cluster

SPEC_PATH = Path(__file__).resolve().parents[2] / "http_api" / "openapi.yaml"
EXCLUDED = frozenset({"POST /admin/join", "POST /admin/leave"})
POSITIVE_EXAMPLES = 100
NEGATIVE_EXAMPLES = 50
MAX_OBJECT_BYTES = 65536
TINY_TIMEOUT_MS = 100
ACCEPTS = (
    None,  # whatever requests sends (*/*)
    "multipart/mixed, application/json, */*;q=0.5",  # the Riak Python client's
    "text/plain",
)
HEADER_EXCLUDE = "\r\n"  # a header value cannot hold a line break

SCHEMA = schemathesis.openapi.from_path(SPEC_PATH)
SCHEMA.config.generation.update(exclude_header_characters=HEADER_EXCLUDE)
OPERATIONS = {
    result.ok().label: result.ok()
    for result in SCHEMA.get_all_operations()
    if isinstance(result, Ok) and result.ok().label not in EXCLUDED
}
CHECKS = [status_code_conformance, content_type_conformance, response_headers_conformance]
CHECKS_WITH_BODY = [*CHECKS, response_schema_conformance]


@pytest.fixture(scope="module")
def cluster(module_cluster_factory: MakeCluster) -> LocalCluster:
    return module_cluster_factory(1, settings=(f"max_object_bytes={MAX_OBJECT_BYTES}",))


@pytest.fixture(scope="module")
def node(cluster: LocalCluster) -> NodeProcess:
    return cluster[0]


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    s = requests.Session()
    yield s
    s.close()


def _bug_report(node: NodeProcess, case: Case[Any], response: Response) -> str:
    """The request, the response and the node log's last traceback, for a 5xx."""
    log = ""
    if node.log_path is not None and node.log_path.exists():
        text = node.log_path.read_text(errors="replace")
        at = text.rfind("Traceback (most recent call last)")
        log = text[max(0, text.rfind("\n", 0, at - 200)) :] if at >= 0 else text[-3000:]
    return (
        f"{case.operation.label} answered {response.status_code}: {response.text[:500]!r}\n"
        f"reproduce: {case.as_curl_command(headers=dict(response.request.headers))}\n"
        f"node log:\n{log[-6000:]}"
    )


def _server_error(case: Case[Any], response: Response) -> bool:
    """A 5xx, but for the one 503 a healthy single node may give: a quorum not met
    within a tiny ``timeout`` (a durable write's WAL sync can take longer than 1 ms)."""
    if response.status_code < 500:
        return False
    timeout = str((case.query or {}).get("timeout", ""))
    legit = response.status_code == 503 and re.search("unsatisfied|timed out", response.text)
    return not (legit and timeout.isdigit() and int(timeout) <= TINY_TIMEOUT_MS)


def _streamed(case: Case[Any]) -> bool:
    """``keys=stream`` / ``buckets=stream``: JSON objects back to back, not one document."""
    query = case.query or {}
    return "stream" in (query.get("keys"), query.get("buckets"))


def _strategies(label: str, mode: GenerationMode) -> st.SearchStrategy[Case[Any]]:
    op = OPERATIONS[label]
    strategies = [op.as_strategy(generation_mode=mode)]
    if "{type}" in op.path:
        # Only type "default" exists; a generated type is nearly always a 404.
        strategies.append(op.as_strategy(generation_mode=mode, path_parameters={"type": "default"}))
    return st.one_of(strategies)


def _fuzz(
    node: NodeProcess, session: requests.Session, label: str, mode: GenerationMode, n: int
) -> None:
    @given(case=_strategies(label, mode), accept=st.sampled_from(ACCEPTS))
    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is reported
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    def run(case: Case[Any], accept: str | None) -> None:
        headers = {"Accept": accept} if accept else None
        response = case.call(base_url=node.url, session=session, headers=headers, timeout=30)
        assert not _server_error(case, response), _bug_report(node, case, response)
        checks = CHECKS if _streamed(case) else CHECKS_WITH_BODY
        case.validate_response(response, checks=checks, headers=headers)

    try:
        run()
    except Unsatisfiable:
        # Nothing in this operation can be made invalid (no parameters, no body).
        assert mode is GenerationMode.NEGATIVE, label


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_operation_never_answers_a_server_error(
    node: NodeProcess, session: requests.Session, label: str
) -> None:
    _fuzz(node, session, label, GenerationMode.POSITIVE, POSITIVE_EXAMPLES)
    _fuzz(node, session, label, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)
    assert node.ping(), f"{node.node_id} stopped answering /ping after fuzzing {label}"


def test_the_node_survived_the_fuzzing(node: NodeProcess) -> None:
    assert node.running(), f"the node process exited: see {node.log_path}"
    status, _, body = http("GET", node.url + "/ping")
    assert (status, body) == (200, b"OK")
    assert node.stats()["nodename"] == node.node_id
    if node.log_path is not None:
        bugs = re.findall(r"bug: unhandled error on .*", node.log_path.read_text(errors="replace"))
        assert not bugs, bugs


# --- Regressions -----------------------------------------------------------------------------
# Bugs this fuzzing found (now fixed): each exact trigger stays as a test.


@pytest.mark.parametrize("header", ["X-Riak-Meta-Color", "Content-Type", "Link"])
def test_fuzz_found_non_utf8_header_bytes_are_not_a_500(node: NodeProcess, header: str) -> None:
    """A header value with a byte 0x80-0xff that is not UTF-8 (here Latin-1 'é') reaches
    the store as a lone surrogate ('\\udce9'); msgpack cannot encode it: 500
    (``UnicodeEncodeError`` in ``dynamo/object.py encode``)."""
    value = {"Content-Type": "text/caf\xe9", "Link": '</buckets/caf\xe9/keys/k>; riaktag="t"'}
    headers = {"Content-Type": "text/plain", header: value.get(header, "caf\xe9")}
    status, _, body = http("PUT", node.url + "/buckets/bug1/keys/k", b"v", headers)
    assert status in (204, 400), (status, body)


@pytest.mark.parametrize(
    "query", ["r=%C2%B2", "pr=%C2%B2", "timeout=%C2%B2", "keys=true&timeout=%C2%B2"]
)
def test_fuzz_found_unicode_digits_in_a_parameter_are_a_400(node: NodeProcess, query: str) -> None:
    """``'²'.isdigit()`` is true but ``int('²')`` raises ``ValueError``: 500
    (``http_api/params.py`` ``quorum`` and ``timeout_ms``)."""
    path = "/buckets/bug2/keys" if query.startswith("keys") else "/buckets/bug2/keys/k"
    status, _, body = http("GET", f"{node.url}{path}?{query}")
    assert status == 400, (status, body)


@pytest.mark.parametrize(
    "path", ["/buckets/bug3/keys/a%0Ab", "/buckets/a%0Ab/keys/k", "/admin/local/bug3/a%0Ab"]
)
def test_fuzz_found_a_newline_in_a_path_segment_is_routed(node: NodeProcess, path: str) -> None:
    """aiohttp matches routes against the decoded path and ``{tail:.*}`` stops at a
    newline: a key or bucket holding '\\n' (sent as %0A) is aiohttp's bare 404, so it can
    never be stored (``make_app`` in ``http_api/server.py``)."""
    if path.startswith("/admin/"):
        status, _, body = http("GET", node.url + path)
        assert status == 200, (status, body)
        return
    status, _, body = http("PUT", node.url + path, b"v", {"Content-Type": "text/plain"})
    assert status == 204, (status, body)


@pytest.mark.parametrize("number", [str(2**64), str(-(2**63) - 1), "1" * 30])
def test_fuzz_found_a_huge_integer_prop_is_not_a_500(node: NodeProcess, number: str) -> None:
    """An unknown bucket prop holding an integer msgpack cannot carry (outside -2**63 ..
    2**64-1): ``OverflowError`` when gossip packs the props (``gossip/scuttlebutt.py``
    ``_set_own``), 500."""
    body = f'{{"props": {{"x": {number}}}}}'.encode()
    headers = {"Content-Type": "application/json"}
    status, _, text = http("PUT", node.url + "/buckets/bug4/props", body, headers)
    assert status in (204, 400), (status, text)


def test_fuzz_found_nan_in_props_is_refused(node: NodeProcess) -> None:
    """``json.loads`` takes ``NaN``/``Infinity``; the props are then served back as
    ``{"x": NaN}``, which is not JSON: strict parsers fail on every later GET."""
    headers = {"Content-Type": "application/json"}
    status, _, _ = http("PUT", node.url + "/buckets/bug5/props", b'{"props": {"x": NaN}}', headers)
    _, _, body = http("GET", node.url + "/buckets/bug5/props")

    def refuse(constant: str) -> None:
        raise AssertionError(f"GET props answered {constant}, which is not JSON: {body[:80]!r}")

    assert status == 400 or json.loads(body, parse_constant=refuse)


@pytest.mark.parametrize(
    ("method", "query"),
    [("GET", "pr=one&notfound_ok=false"), ("GET", "pr=all&notfound_ok=false"), ("DELETE", "")],
)
def test_fuzz_found_pr_with_notfound_is_not_a_503(
    node: NodeProcess, method: str, query: str
) -> None:
    """A key that is not there, with ``pr`` and ``notfound_ok=false`` (query or bucket props),
    on a healthy node: 503 ``PR-value unsatisfied: 0/1``. Riak answers 404 (in
    ``riak_kv_get_core:response/1`` "everything was a notfound" comes before the PR
    check); here ``GetQuorum._failed_outcome`` checks PR first. A DELETE or an
    ``If-None-Match: *`` write on such a bucket fails the same way."""
    props = b'{"props": {"pr": 1, "notfound_ok": false}}'
    http("PUT", node.url + "/buckets/bug6/props", props, {"Content-Type": "application/json"})
    status, _, body = http(method, f"{node.url}/buckets/bug6/keys/missing?{query}")
    assert status == 404, (status, body)
