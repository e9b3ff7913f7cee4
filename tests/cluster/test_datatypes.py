"""Data types and bucket types on a real 3-node cluster, through our client (HTTP and PB),
raw HTTP for what the client cannot send, and ``dynamo bucket-type``."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dynamo.tools.localcluster import LocalCluster
from http_api.client_sync import Client
from http_api.errors import BadRequest, NotFound, PreconditionFailed
from pb_api.client import PbClient
from tests.cluster.conftest import MakeCluster

pytestmark = pytest.mark.cluster

TYPES = {"counters": "counter", "sets": "set", "maps": "map", "hlls": "hll", "gsets": "gset"}


def cli(c: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "dynamo.tools.cli", *args, "--url", c[0].url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def cluster(module_cluster_factory: MakeCluster) -> LocalCluster:
    c = module_cluster_factory(3)
    c.wait_converged()
    for name, kind in TYPES.items():
        made = cli(c, "bucket-type", "create", name, json.dumps({"props": {"datatype": kind}}))
        assert made.returncode == 0, made.stderr
        active = cli(c, "bucket-type", "activate", name)
        assert active.returncode == 0, active.stderr
    return c


@pytest.fixture
def clients(cluster: LocalCluster) -> Iterator[list[Client | PbClient]]:
    """One client per node, HTTP and PB in turn."""
    out: list[Client | PbClient] = []
    for i, n in enumerate(cluster.running()):
        out.append(Client(n.url) if i % 2 == 0 else PbClient(f"pb://127.0.0.1:{n.pb_port}"))
    yield out
    for client in out:
        client.close()


def raw(c: LocalCluster, method: str, path: str, body: Any = None, ctype: str = "") -> Any:
    """(status, body text) of one HTTP request to the first node."""
    n = c[0]
    conn = http.client.HTTPConnection("127.0.0.1", n.http_port, timeout=10)
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": ctype or "application/json"} if data is not None else {}
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    out = response.status, response.read().decode()
    conn.close()
    return out


def test_increments_from_every_node_over_both_protocols_add_up(
    clients: list[Client | PbClient],
) -> None:
    each = 40

    def bump(client: Client | PbClient) -> None:
        counter = client.counter("counters", "pages", "home")
        for _ in range(each):
            counter.increment()
            counter.store(return_body=False)

    cs = clients
    with ThreadPoolExecutor(len(cs)) as pool:
        list(pool.map(bump, cs))
    for client in cs:
        got = client.fetch_datatype("counters", "pages", "home", r="all")
        assert got.value == each * len(cs)
        assert got.kind == "counter"


def test_a_set_remove_needs_the_fetched_context_and_a_concurrent_add_wins(
    clients: list[Client | PbClient],
) -> None:
    a, b, *_ = clients
    tags = a.set("sets", "posts", "p1")
    tags.add("x")
    tags.add("y")
    tags.store()
    assert tags.value == ["x", "y"]
    # Both fetch, one removes y, the other adds y again concurrently: the add survives.
    first, second = a.set("sets", "posts", "p1").reload(), b.set("sets", "posts", "p1").reload()
    assert isinstance(first, type(tags))
    assert isinstance(second, type(tags))
    first.discard("y")
    first.store()
    second.add("y")
    second.add("z")
    second.store()
    assert a.fetch_datatype("sets", "posts", "p1", r="all").value == ["x", "y", "z"]
    # A remove without a context of what is not there is refused, as Riak does (412);
    # with a context it waits for the add it may not have seen yet.
    stale = a.set("sets", "posts", "p1")
    stale.discard("never")
    with pytest.raises(PreconditionFailed):
        stale.store()


def test_a_map_of_every_field_type_with_removes(clients: list[Client | PbClient]) -> None:
    for client in clients[:2]:
        key = f"ann-{type(client).__name__}"
        m = client.map("maps", "users", key)
        m.registers["name"].assign("Ann")
        m.counters["visits"].increment(3)
        m.flags["admin"].enable()
        m.sets["roles"].add("ops")
        m.maps["address"].registers["city"].assign("Oslo")
        m.store()
        assert m.value == {
            "name_register": "Ann",
            "visits_counter": 3,
            "admin_flag": True,
            "roles_set": ["ops"],
            "address_map": {"city_register": "Oslo"},
        }
        m.reload()
        del m.flags["admin"]
        del m.maps["address"]
        m.counters["visits"].decrement()
        m.store()
        assert m.value == {"name_register": "Ann", "visits_counter": 2, "roles_set": ["ops"]}


def test_hll_gset_and_keys_the_node_chooses(clients: list[Client | PbClient]) -> None:
    for client in clients[:2]:
        visitors = client.hll("hlls", "site", None)
        for i in range(1000):
            visitors.add(f"v{i % 500}")
        visitors.store()
        assert visitors.key is not None
        assert abs(visitors.value - 500) <= 25  # 0.81% standard error at precision 14
        log = client.gset("gsets", "log", None)
        log.add("a")
        log.store()
        log.add("b")
        log.store()
        assert log.value == ["a", "b"]
        assert client.fetch_datatype("gsets", "log", str(log.key)).value == ["a", "b"]


def test_http_answers_in_riak_shapes_and_refuses_bad_input(cluster: LocalCluster) -> None:
    status, body = raw(cluster, "GET", "/types/counters/buckets/b/datatypes/none")
    assert (status, json.loads(body)) == (404, {"type": "counter", "error": "notfound"})
    status, body = raw(
        cluster, "POST", "/types/sets/buckets/b/datatypes/k?returnbody=true", {"add_all": ["q"]}
    )
    assert status == 200
    got = json.loads(body)
    assert got["type"] == "set"
    assert got["value"] == ["q"]
    assert got["context"]
    status, _ = raw(cluster, "POST", "/types/counters/buckets/b/datatypes", {"increment": 2})
    assert status == 201

    refused = [
        ("POST", "/types/counters/buckets/b/datatypes/k", {"add": "x"}, 400, "increment"),
        ("POST", "/types/counters/buckets/b/datatypes/k", b"{", 400, "not JSON"),
        ("POST", "/types/counters/buckets/b/datatypes/k", [1], 400, "JSON object"),
        ("POST", "/types/maps/buckets/b/datatypes/k", {"update": {"x": 1}}, 400, "<name>_<type>"),
        ("POST", "/types/sets/buckets/b/datatypes/k", {"remove": "q", "context": "@@"}, 400,
         "base64"),
        ("GET", "/types/nope/buckets/b/datatypes/k", None, 404, "nope"),
        ("GET", "/buckets/b/datatypes/k", None, 400, "plain objects"),
        ("GET", "/types/default/buckets/b/datatypes/k", None, 400, "plain objects"),
        ("PUT", "/types/counters/buckets/b/keys/k", b"7", 400, "datatypes/{key}"),
        ("GET", "/types/counters/buckets/b/keys/k", None, 400, "datatypes/{key}"),
    ]  # fmt: skip
    for method, path, body, want, words in refused:
        ctype = "text/plain" if method == "PUT" else ""
        status, text = raw(cluster, method, path, body, ctype)
        assert status == want, (method, path, status, text)
        assert words in text, (path, text)
    status, text = raw(
        cluster, "POST", "/types/counters/buckets/b/datatypes/k", b"{}", "text/plain"
    )
    assert status == 415
    assert "application/json" in text


def test_bucket_type_lifecycle_through_the_cli(cluster: LocalCluster) -> None:
    made = cli(cluster, "bucket-type", "create", "later", '{"props": {"datatype": "set"}}')
    assert made.returncode == 0, made.stderr
    status = json.loads(cli(cluster, "bucket-type", "status", "later").stdout)
    assert status["active"] is False
    # Not active yet: unknown to requests, as in Riak.
    with Client(cluster[1].url) as client, pytest.raises(NotFound, match="later"):
        client.fetch_datatype("later", "b", "k")
    again = cli(cluster, "bucket-type", "create", "later", '{"props": {"datatype": "map"}}')
    assert again.returncode != 0
    assert "exists" in again.stderr
    assert cli(cluster, "bucket-type", "activate", "later").returncode == 0
    change = cli(cluster, "bucket-type", "update", "later", '{"props": {"datatype": "map"}}')
    assert change.returncode != 0
    assert "datatype" in change.stderr
    assert cli(cluster, "bucket-type", "update", "later", '{"props": {"n_val": 2}}').returncode == 0
    listed = json.loads(cli(cluster, "bucket-type", "list").stdout)
    later = next(t for t in listed["types"] if t["name"] == "later")
    assert later["active"] is True
    assert later["props"]["n_val"] == 2
    for node in cluster.running():  # every member serves it, with its props
        with Client(node.url) as client:
            s = client.set("later", "b", "k")
            s.add(node.node_id)
            s.store()
    with PbClient(f"pb://127.0.0.1:{cluster[2].pb_port}") as pb:
        assert pb.fetch_datatype("later", "b", "k").value == sorted(
            n.node_id for n in cluster.running()
        )
    bad = cli(cluster, "bucket-type", "create", "bad", '{"props": {"datatype": "tree"}}')
    assert bad.returncode != 0
    assert "counter" in bad.stderr
    with Client(cluster[0].url) as client, pytest.raises(BadRequest, match="plain objects"):
        client.counter("default", "b", "k").reload()


def test_limits_and_typed_bucket_props(make_cluster: MakeCluster) -> None:
    c = make_cluster(1, settings=("crdt_max_elements=3", "crdt_max_depth=2"))
    for name, kind in (("sets", "set"), ("maps", "map")):
        assert cli(c, "bucket-type", "create", name, json.dumps({"props": {"datatype": kind}}))
        assert cli(c, "bucket-type", "activate", name).returncode == 0
    with Client(c[0].url) as client:
        s = client.set("sets", "b", "k")
        for e in "abcd":
            s.add(e)
        with pytest.raises(BadRequest, match="max_elements"):
            s.store()
        m = client.map("maps", "b", "k")
        m.maps["a"].maps["b"].registers["c"].assign("too deep")
        with pytest.raises(BadRequest, match="max_depth"):
            m.store()
        m = client.map("maps", "b", "k")
        m.maps["a"].registers["c"].assign("fine")
        m.store()
        assert m.value == {"a_map": {"c_register": "fine"}}
    # A typed bucket's own props, over HTTP as Riak: from the type's, then its own.
    status, body = raw(c, "GET", "/types/sets/props")
    assert status == 200
    assert json.loads(body)["props"]["datatype"] == "set"
    status, _ = raw(c, "PUT", "/types/sets/buckets/b/props", {"props": {"n_val": 1}})
    assert status == 204
    status, body = raw(c, "GET", "/types/sets/buckets/b/props")
    props = json.loads(body)["props"]
    assert (props["n_val"], props["datatype"]) == (1, "set")
    for change in ({"datatype": "map"}, {"allow_mult": False}):
        status, text = raw(c, "PUT", "/types/sets/buckets/b/props", {"props": change})
        assert status == 400, text
        assert "bucket-type" in text or "allow_mult" in text
