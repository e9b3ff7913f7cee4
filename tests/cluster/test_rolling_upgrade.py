"""A rolling upgrade of the node-to-node protocol, with real processes: a cluster whose
nodes all speak the first release's protocol (v1: ``rpc_max_protocol_version=1`` makes
a node speak exactly as that release did) is restarted one node at a time on v2. At
every step, writes through every node (replicated with ``dw=all``, and forwarded to a
key's only primary in an ``n_val=1`` bucket), refusals relayed across a forward, reads
at ``r=all`` and key listing work, and ``/stats`` names the version each peer speaks."""

from __future__ import annotations

import json

import pytest

from dynamo.tools.localcluster import LocalCluster, NodeProcess, http, wait_for
from http_api.admin import get_json
from tests.cluster.conftest import MakeCluster

pytestmark = pytest.mark.cluster

TEXT = {"Content-Type": "text/plain"}
FIRST_RELEASE = "rpc_max_protocol_version=1"


def _put(n: NodeProcess, path: str, value: bytes, headers: dict[str, str] | None = None) -> int:
    status, _, body = http("PUT", f"{n.url}{path}", value, {**TEXT, **(headers or {})})
    assert status in (204, 412), (status, body)
    return status


def _exercise(c: LocalCluster, tag: str) -> None:
    for n in c.nodes:
        for i in range(4):
            key = f"{tag}-{n.node_id}-{i}"
            assert _put(n, f"/buckets/q/keys/{key}?w=all&dw=all", key.encode()) == 204
            # n_val=1: three of four such writes are forwarded to the key's one primary.
            assert _put(n, f"/buckets/one/keys/{key}?w=1", key.encode()) == 204
            refused = _put(n, f"/buckets/one/keys/{key}", b"again", {"If-None-Match": "*"})
            assert refused == 412, "the primary's refusal, relayed across the forward"
    for n in c.nodes:
        for m in c.nodes:
            for i in range(4):
                key = f"{tag}-{m.node_id}-{i}"
                for bucket, query in (("q", "?r=all"), ("one", "")):
                    status, _, body = http("GET", f"{n.url}/buckets/{bucket}/keys/{key}{query}")
                    assert (status, body) == (200, key.encode()), (n.node_id, bucket, key)
    listed = json.loads(http("GET", f"{c.nodes[0].url}/buckets/q/keys?keys=true")[2])["keys"]
    assert {k for k in listed if k.startswith(f"{tag}-")} == {
        f"{tag}-{n.node_id}-{i}" for n in c.nodes for i in range(4)
    }


def _peer_protocol(c: LocalCluster, want: dict[str, dict[str, int]]) -> None:
    def seen() -> bool:
        return all(
            get_json(n.url + "/stats")["rpc_peer_protocol"] == want[n.node_id] for n in c.nodes
        )

    wait_for(seen, 30, f"peers to speak {want}")


def _expected(c: LocalCluster, upgraded: set[str]) -> dict[str, dict[str, int]]:
    return {
        n.node_id: {
            m.node_id: 2 if {n.node_id, m.node_id} <= upgraded else 1 for m in c.nodes if m is not n
        }
        for n in c.nodes
    }


def test_a_first_release_cluster_upgrades_one_node_at_a_time(make_cluster: MakeCluster) -> None:
    c = make_cluster(3, start=False)
    for n in c.nodes:
        c.per_node[n.node_id] = [FIRST_RELEASE]
    c.start()
    c.wait_converged()
    props = json.dumps({"props": {"n_val": 1}}).encode()
    status, _, _ = http(
        "PUT", f"{c.nodes[0].url}/buckets/one/props", props, {"Content-Type": "application/json"}
    )
    assert status == 204
    wait_for(
        lambda: all(get_json(f"{n.url}/buckets/one/props")["props"]["n_val"] == 1 for n in c.nodes),
        30,
        "the n_val=1 bucket on every node",
    )
    _exercise(c, "v1")
    _peer_protocol(c, _expected(c, set()))
    upgraded: set[str] = set()
    for n in c.nodes:
        del c.per_node[n.node_id]
        assert n.stop() == 0
        c.start(n)
        for m in c.nodes:  # each sees every other up, the restarted one too
            c.wait_up_everywhere(m, up=True)
        upgraded.add(n.node_id)
        _exercise(c, f"up{len(upgraded)}")
        _peer_protocol(c, _expected(c, upgraded))
    assert all(n.running() for n in c.nodes)
