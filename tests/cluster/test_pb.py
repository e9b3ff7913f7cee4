"""Riak PB on real nodes through our client, both flavours: the same operations as over
HTTP, errors with HTTP's texts, and what the node shows of its PB clients."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from dynamo.tools.localcluster import LocalCluster, http, wait_for
from http_api.admin import get_json
from http_api.errors import PreconditionFailed, Unavailable
from http_api.resolvers import json_set_union
from pb_api.client import AsyncPbClient, PbClient, connect
from tests.cluster.conftest import MakeCluster

pytestmark = pytest.mark.cluster


def pb_url(c: LocalCluster, i: int) -> str:
    return f"pb://127.0.0.1:{c[i].pb_port}"


@pytest.fixture(scope="module")
def cluster(module_cluster_factory: MakeCluster) -> LocalCluster:
    c = module_cluster_factory(3)
    c.wait_converged()
    return c


def test_pb_client_does_what_the_http_client_does(cluster: LocalCluster) -> None:
    with PbClient(pb_url(cluster, 0)) as a, PbClient(pb_url(cluster, 1)) as b:
        assert a.ping()
        assert a.server_info() == {"node": "n1", "server_version": "3.0.16"}
        a.put("carts", "bob", b'["apple"]', content_type="application/json")
        b.put("carts", "bob", b'["pear"]', content_type="application/json", w="all")
        got = a.get("carts", "bob", r="all")
        assert len(got.live) == 2
        a.set_resolver("carts", json_set_union)
        a.update(
            "carts", "bob", lambda old: json.dumps([*json.loads(old or b"[]"), "plum"]).encode()
        )
        final = b.get("carts", "bob", r="all")
        assert json.loads(final.value or b"") == ["apple", "pear", "plum"]
        assert final.content is not None
        assert final.content.content_type == "application/json"
        with pytest.raises(PreconditionFailed):
            a.put("carts", "bob", b"[]", if_none_match=True)
        written = a.put("carts", "ann", "text", meta={"Color": "blue"}, return_body=True)
        assert written is not None
        assert written.value == b"text"
        assert written.context
        assert written.content is not None
        assert dict(written.content.user_meta) == {"Color": "blue"}
        assert sorted(a.list_keys("carts")) == ["ann", "bob"]
        assert "carts" in a.list_buckets()
        assert "carts" in a.list_buckets(stream=True)
        key = a.post("carts", b"chosen")
        assert b.get("carts", key).value == b"chosen"
        assert a.delete("carts", "bob", w="all")
        gone = b.get("carts", "bob", r="all")
        assert not gone.exists
        assert gone.tombstone  # the client asks for the tombstone's vclock, as Riak's do
        a.set_bucket_props("carts", {"n_val": 2, "r": "one"})
        assert b.get_bucket_props("carts")["r"] in ("quorum", "one")  # gossip may lag
        a.reset_bucket_props("carts")
        preflist = a.preflist("carts", "ann")
        assert len(preflist) == 3
        assert {p["node"] for p in preflist} == {"n1", "n2", "n3"}
        assert all(p["primary"] for p in preflist)
        with connect(cluster[2].url, protocol="http") as over_http:
            assert preflist == over_http.preflist("carts", "ann")


def test_an_object_written_over_pb_reads_the_same_over_http(cluster: LocalCluster) -> None:
    with PbClient(pb_url(cluster, 2)) as pb:
        pb.put("both", "k", b"v1", content_type="text/plain; charset=utf-8", meta={"M": "x"})
    status, headers, body = http("GET", cluster[0].url + "/buckets/both/keys/k")
    assert (status, body) == (200, b"v1")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["X-Riak-Meta-M"] == "x"
    with PbClient(pb_url(cluster, 1)) as pb:
        obj = pb.get("both", "k")
    assert obj.context is not None
    assert headers["X-Riak-Vclock"] == base64.b64encode(obj.context).decode()


def test_the_async_pb_client(cluster: LocalCluster) -> None:
    async def main() -> None:
        async with AsyncPbClient(pb_url(cluster, 2)) as c:
            assert await c.ping()
            await c.put("async-pb", "k", "text value")
            assert (await c.get("async-pb", "k")).value == b"text value"
            key = await c.post("async-pb", b"server chooses")
            assert (await c.get("async-pb", key)).value == b"server chooses"
            assert await c.delete("async-pb", "k", w="all")  # every replica, before listing
            assert not (await c.get("async-pb", "k")).exists
            assert sorted(await c.list_keys("async-pb")) == [key]

    asyncio.run(main())


def test_the_node_shows_its_pb_clients(cluster: LocalCluster) -> None:
    before = get_json(cluster[0].url + "/stats")["pbc_connects_total"]
    with PbClient(pb_url(cluster, 0)) as pb:
        assert pb.ping()

        def counted() -> bool:  # /stats is cached for about a second
            stats = get_json(cluster[0].url + "/stats")
            return bool(
                stats["pbc_active"] >= 1
                and stats["pbc_connects_total"] > before
                and stats["pbc_connects"] >= 1
            )

        wait_for(counted, 10, "the PB connection counted in /stats")
    members = get_json(cluster[1].url + "/admin/members")["members"]
    assert {m["node"]: m["pb_addr"] for m in members} == {
        n.node_id: f"127.0.0.1:{n.pb_port}" for n in cluster.nodes
    }
    metrics = http("GET", cluster[0].url + "/metrics")[2].decode()
    assert 'dynamo_pb_requests_total{op="ping",status="200"}' in metrics


def test_quorum_failures_read_as_riak_sends_them(make_cluster: MakeCluster) -> None:
    c = make_cluster(3)
    c.wait_converged()
    with PbClient(pb_url(c, 0)) as pb:
        pb.put("q", "k", b"v", w="all")
        assert c[2].stop() == 0
        c.wait_up_everywhere(c[2], up=False)
        with pytest.raises(Unavailable, match=r"^PR-value unsatisfied: 2/3"):
            pb.get("q", "k", pr="all")
        with pytest.raises(Unavailable, match=r"^PW-value unsatisfied: 2/3"):
            pb.put("q", "k", b"v2", pw="all")
        assert pb.get("q", "k").value == b"v"


def test_a_node_without_pb(make_cluster: MakeCluster) -> None:
    c = make_cluster(1, settings=("pb_port=0",))
    members = get_json(c[0].url + "/admin/members")["members"]
    assert members[0]["pb_addr"] is None
    with PbClient(pb_url(c, 0), timeout_s=2) as pb:
        assert not pb.ping()
