"""One real node over HTTP: objects, siblings, tombstones, props, listing, bad input."""

from __future__ import annotations

import base64
import json
import socket

import pytest

from dynamo.tools.localcluster import LocalCluster, NodeProcess, http
from http_api.admin import get_json
from tests.cluster.conftest import MakeCluster

pytestmark = pytest.mark.cluster

TEXT = {"Content-Type": "text/plain"}
MULTI = {"Accept": "multipart/mixed, application/json, */*;q=0.5"}


@pytest.fixture(scope="module")
def node(module_cluster_factory: MakeCluster) -> NodeProcess:
    c: LocalCluster = module_cluster_factory(1, settings=("max_object_bytes=65536",))
    return c[0]


def put(
    n: NodeProcess, path: str, body: bytes, headers: dict[str, str] | None = None, query: str = ""
) -> tuple[int, dict[str, str], bytes]:
    return http("PUT", f"{n.url}{path}{query}", body, {**TEXT, **(headers or {})})


def test_discovery(node: NodeProcess) -> None:
    status, _, body = http("GET", node.url + "/", headers={"Accept": "application/json"})
    assert status == 200
    resources = json.loads(body)
    assert resources["riak_kv_wm_buckets"] == "/buckets"
    assert http("GET", node.url + "/ping")[2] == b"OK"
    stats = node.stats()
    major, minor, patch = stats["riak_kv_version"].split(".")
    assert all(p.isdigit() for p in (major, minor, patch))
    assert stats["nodename"] == "n1"
    for name in ("node_gets", "node_puts", "node_get_fsm_time_99", "vnode_puts", "read_repairs"):
        assert name in stats


def test_put_get_and_metadata(node: NodeProcess) -> None:
    status, _, _ = put(
        node,
        "/buckets/meta/keys/k1",
        b"hello",
        {"X-Riak-Meta-Color": "blue", "Content-Type": "text/plain; charset=utf-8"},
    )
    assert status == 204
    status, headers, body = http("GET", node.url + "/buckets/meta/keys/k1")
    assert status == 200
    assert body == b"hello"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["X-Riak-Meta-Color"] == "blue"
    assert headers["Link"] == '</buckets/meta>; rel="up"'
    assert headers["ETag"].startswith('"')
    assert "GMT" in headers["Last-Modified"]
    base64.b64decode(headers["X-Riak-Vclock"], validate=True)


def test_path_segments_are_percent_decoded(node: NodeProcess) -> None:
    assert put(node, "/buckets/a+b/keys/k%2F1", b"slash")[0] == 204
    assert http("GET", node.url + "/buckets/a%20b/keys/k%2F1")[2] == b"slash"
    local = get_json(node.url + "/admin/local/a+b/k%2F1")
    assert local["found"] is True


def test_siblings_then_resolve_with_context(node: NodeProcess) -> None:
    path = "/buckets/sib/keys/k"
    for v in (b"one", b"two", b"three"):
        assert put(node, path, v)[0] == 204
    status, headers, body = http("GET", node.url + path, headers=MULTI)
    assert status == 300
    ctype = headers["Content-Type"]
    assert ctype.startswith("multipart/mixed; boundary=")
    boundary = ctype.split("boundary=")[1]
    assert body.startswith(f"\r\n--{boundary}\r\n".encode())
    assert body.endswith(f"\r\n--{boundary}--\r\n".encode())
    for v in (b"one", b"two", b"three"):
        assert b"\r\n\r\n" + v + b"\r\n--" in body
    status, _, text = http("GET", node.url + path, headers={"Accept": "text/plain"})
    assert status == 300
    lines = text.decode().splitlines()
    assert lines[0] == "Siblings:"
    assert len(lines) == 4
    vtag = lines[1]
    status, _, one = http("GET", f"{node.url}{path}?vtag={vtag}")
    assert status == 200
    assert one in (b"one", b"two", b"three")
    status, _, _ = put(node, path, b"resolved", {"X-Riak-Vclock": headers["X-Riak-Vclock"]})
    assert status == 204
    status, _, body = http("GET", node.url + path)
    assert (status, body) == (200, b"resolved")


def test_returnbody_and_post_with_server_key(node: NodeProcess) -> None:
    status, headers, body = put(node, "/buckets/rb/keys/k", b"v", query="?returnbody=true")
    assert (status, body) == (200, b"v")
    assert "X-Riak-Vclock" in headers
    status, headers, _ = http("POST", node.url + "/buckets/rb/keys", b"new", TEXT)
    assert status == 201
    location = headers["Location"]
    assert location.startswith("/buckets/rb/keys/")
    assert http("GET", node.url + location)[2] == b"new"


def test_delete_leaves_a_tombstone_with_context(node: NodeProcess) -> None:
    path = "/buckets/del/keys/k"
    put(node, path, b"v")
    ctx = http("GET", node.url + path)[1]["X-Riak-Vclock"]
    assert http("DELETE", node.url + path, headers={"X-Riak-Vclock": ctx})[0] == 204
    status, headers, _ = http("GET", node.url + path)
    assert status == 404
    assert headers.get("X-Riak-Deleted") == "true"
    assert "X-Riak-Vclock" in headers
    # A write with the tombstone's context supersedes it: one value, no sibling.
    put(node, path, b"again", {"X-Riak-Vclock": headers["X-Riak-Vclock"]})
    assert http("GET", node.url + path)[:3:2] == (200, b"again")
    # Delete without a context reads first; a missing key is a 404.
    assert http("DELETE", node.url + path)[0] == 204
    assert http("DELETE", node.url + "/buckets/del/keys/never")[0] == 404
    assert http("GET", node.url + "/buckets/del/keys/never")[0] == 404


def test_if_none_match(node: NodeProcess) -> None:
    path = "/buckets/inm/keys/k"
    assert put(node, path, b"first", {"If-None-Match": "*"})[0] == 204
    assert put(node, path, b"second", {"If-None-Match": "*"})[0] == 412
    assert http("GET", node.url + path)[2] == b"first"


def test_allow_mult_false_keeps_the_newest(node: NodeProcess) -> None:
    props = json.dumps({"props": {"allow_mult": False}}).encode()
    h = {"Content-Type": "application/json"}
    assert http("PUT", node.url + "/buckets/lww/props", props, h)[0] == 204
    for v in (b"a", b"b", b"c"):
        put(node, "/buckets/lww/keys/k", v)
    assert http("GET", node.url + "/buckets/lww/keys/k")[:3:2] == (200, b"c")


def test_last_write_wins_replaces_without_reading(node: NodeProcess) -> None:
    props = json.dumps({"props": {"allow_mult": False, "last_write_wins": True}}).encode()
    h = {"Content-Type": "application/json"}
    assert http("PUT", node.url + "/buckets/lwwb/props", props, h)[0] == 204
    put(node, "/buckets/lwwb/keys/k", b"first")
    stale = http("GET", node.url + "/buckets/lwwb/keys/k")[1]["X-Riak-Vclock"]
    put(node, "/buckets/lwwb/keys/k", b"second")
    put(node, "/buckets/lwwb/keys/k", b"third", {"X-Riak-Vclock": stale})  # stale context
    assert http("GET", node.url + "/buckets/lwwb/keys/k")[::2] == (200, b"third")


def test_bucket_props_round_trip(node: NodeProcess) -> None:
    url = node.url + "/buckets/p/props"
    h = {"Content-Type": "application/json"}
    assert http("PUT", url, json.dumps({"props": {"n_val": 2, "r": "one"}}).encode(), h)[0] == 204
    props = get_json(url)["props"]
    assert (props["name"], props["n_val"], props["r"], props["w"]) == ("p", 2, "one", "quorum")
    assert props["dvv_enabled"] is True
    assert http("DELETE", url)[0] == 204
    assert get_json(url)["props"]["n_val"] == 3
    assert get_json(node.url + "/types/default/props")["props"]["n_val"] == 3


def test_key_and_bucket_listing(node: NodeProcess) -> None:
    for i in range(25):
        put(node, f"/buckets/list/keys/k{i}", b"x")
    put(node, "/buckets/list/keys/gone", b"x")
    http("DELETE", node.url + "/buckets/list/keys/gone")
    keys = get_json(node.url + "/buckets/list/keys?keys=true")["keys"]
    assert sorted(keys) == sorted(f"k{i}" for i in range(25))
    status, _, body = http("GET", node.url + "/buckets/list/keys?keys=stream")
    assert status == 200
    streamed: list[str] = []
    decoder = json.JSONDecoder()
    text, pos = body.decode(), 0
    while pos < len(text):
        obj, pos = decoder.raw_decode(text, pos)
        streamed.extend(obj["keys"])
    assert sorted(streamed) == sorted(keys)
    assert text.endswith('{"keys":[]}')
    buckets = get_json(node.url + "/buckets?buckets=true")["buckets"]
    assert "list" in buckets


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "says"),
    [
        ("PUT", "/buckets/bad/keys/k", {}, b"v", 400, "Content-Type"),
        ("PUT", "/buckets/bad/keys/k?w=lots", TEXT, b"v", 400, "w="),
        ("PUT", "/buckets/bad/keys/k?w=4", TEXT, b"v", 400, "n_val"),
        ("GET", "/buckets/bad/keys/k?r=7", {}, None, 400, "n_val"),
        ("GET", "/buckets/bad/keys/k?timeout=soon", {}, None, 400, "timeout"),
        (
            "PUT",
            "/buckets/bad/keys/k",
            {**TEXT, "X-Riak-Vclock": "not base64!"},
            b"v",
            400,
            "base64",
        ),
        ("PUT", "/buckets/bad/keys/k", {**TEXT, "X-Riak-Vclock": "aGVsbG8="}, b"v", 400, "context"),
        ("PUT", "/buckets/bad/keys/k", TEXT, b"x" * 70_000, 413, "limit"),
        ("PUT", "/buckets/" + "b" * 300 + "/keys/k", TEXT, b"v", 400, "bucket"),
        ("PUT", "/buckets/bad/keys/" + "k" * 1100, TEXT, b"v", 414, "key"),
        ("PUT", "/buckets/bad/props", {"Content-Type": "application/json"}, b"{nope", 400, "JSON"),
        (
            "PUT",
            "/buckets/bad/props",
            {"Content-Type": "application/json"},
            b'{"props": {"n_val": 0}}',
            400,
            "n_val",
        ),
        (
            "PUT",
            "/buckets/bad/props",
            {"Content-Type": "application/json"},
            b'{"props": {"allow_mult": true, "last_write_wins": true}}',
            400,
            "both",
        ),
        ("PUT", "/buckets/bad/props", TEXT, b'{"props": {}}', 415, "application/json"),
        ("GET", "/types/other/buckets/bad/keys/k", {}, None, 404, "bucket type"),
    ],
)
def test_bad_input_gets_a_4xx_and_changes_nothing(
    node: NodeProcess,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    says: str,
) -> None:
    put(node, "/buckets/bad/keys/k", b"original", {"If-None-Match": "*"})
    got_status, _, got_body = http(method, node.url + path, body, headers)
    assert got_status == status, got_body
    assert says.lower() in got_body.decode().lower()
    assert http("GET", node.url + "/buckets/bad/keys/k")[2] == b"original"
    assert get_json(node.url + "/buckets/bad/props")["props"]["n_val"] == 3


def test_garbage_on_the_socket_never_crashes_the_node(node: NodeProcess) -> None:
    payloads = [
        b"\x00\xff\x13garbage\r\n\r\n",
        b"GET /buckets/x/keys/y HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\nshort",
        b"PUT /buckets/x/keys/y HTTP/1.1\r\nHost",
        b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 100_000 + b"\r\n\r\n",
    ]
    for p in payloads:
        with socket.create_connection(("127.0.0.1", node.http_port), timeout=5) as s:
            s.sendall(p)
            s.shutdown(socket.SHUT_WR)
            try:
                while s.recv(65536):
                    pass
            except OSError:
                pass
    for port in (node.peer_port,):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"\xc1" * 64 + b"random bytes")
    assert node.ping()
    assert node.running()


def test_value_survives_kill_9(make_cluster: MakeCluster) -> None:
    c = make_cluster(1)
    n = c[0]
    assert put(n, "/buckets/durable/keys/k", b"kept")[0] == 204
    assert (
        http(
            "PUT",
            n.url + "/buckets/durable/props",
            b'{"props": {"n_val": 1}}',
            {"Content-Type": "application/json"},
        )[0]
        == 204
    )
    n.kill9()
    c.start(n)
    assert http("GET", n.url + "/buckets/durable/keys/k")[2] == b"kept"
    assert get_json(n.url + "/buckets/durable/props")["props"]["n_val"] == 1
