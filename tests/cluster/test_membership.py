"""Membership with real processes: join through one seed, failure detection, props."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dynamo.tools.localcluster import NodeProcess, http, wait_for
from http_api.admin import get_json
from tests.cluster.conftest import MakeCluster

pytestmark = pytest.mark.cluster


def test_five_nodes_one_seed_agree_then_detect_a_kill_and_a_restart(
    make_cluster: MakeCluster,
) -> None:
    c = make_cluster(5, seed_all=False)
    ring_hash = c.wait_converged(timeout_s=15)
    for n in c.nodes:
        stats = n.stats()
        assert len(stats["ring_members"]) == 5
        assert len(stats["connected_nodes"]) >= 1
        ring = get_json(n.url + "/admin/ring")
        assert abs(sum(ring["ownership"].values()) - 1.0) < 1e-6

    victim = c[2]
    victim.kill9()
    c.wait_up_everywhere(victim, up=False, timeout_s=20)
    # Down is an opinion: the ring keeps the node.
    for n in c.running():
        assert get_json(n.url + "/admin/ring")["ring_hash"] == ring_hash

    c.start(victim)
    c.wait_up_everywhere(victim, up=True, timeout_s=15)
    assert c.wait_converged(timeout_s=15) == ring_hash
    members = get_json(c[0].url + "/admin/members")["members"]
    assert {m["node"] for m in members} == {f"n{i}" for i in range(1, 6)}


def test_bucket_props_set_on_one_node_reach_every_node(make_cluster: MakeCluster) -> None:
    c = make_cluster(3)
    c.wait_converged()
    body = json.dumps({"props": {"n_val": 2, "allow_mult": False}}).encode()
    status, _, _ = http(
        "PUT", c[1].url + "/buckets/shared/props", body, {"Content-Type": "application/json"}
    )
    assert status == 204

    def everywhere() -> bool:
        for n in c.nodes:
            props = get_json(n.url + "/buckets/shared/props")["props"]
            if (props["n_val"], props["allow_mult"]) != (2, False):
                return False
        return True

    wait_for(everywhere, 10, "bucket props on every node")
    # Last writer wins: a later reset on another node wins everywhere.
    assert http("DELETE", c[2].url + "/buckets/shared/props")[0] == 204

    def reset() -> bool:
        return all(
            get_json(n.url + "/buckets/shared/props")["props"]["n_val"] == 3 for n in c.nodes
        )

    wait_for(reset, 10, "the reset on every node")


def test_preflist_and_cli_views(make_cluster: MakeCluster) -> None:
    c = make_cluster(3)
    c.wait_converged()
    pl = get_json(c[0].url + "/admin/preflist/b/k")
    assert len(pl["primaries"]) == 3
    assert pl["fallbacks"] == []
    assert isinstance(pl["position"], int)
    assert get_json(c[1].url + "/admin/preflist/b/k")["primaries"] == pl["primaries"]
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "dynamo.tools.cli", "members", "--url", c[0].url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    for n in c.nodes:
        assert n.node_id in out
    out = subprocess.run(
        [sys.executable, "-m", "dynamo.tools.cli", "ring", "--url", c[0].url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "3 members" in out


def test_a_seed_down_at_start_is_retried_while_http_serves(make_cluster: MakeCluster) -> None:
    c = make_cluster(2, seed_all=False, start=False)
    first, second = c.nodes
    c.start(second)  # its only seed, the first node, is not running yet
    assert second.ping()
    status, _, body = http("GET", second.url + "/buckets/b/keys/k")
    assert status == 503  # no ring yet: it says so rather than answering wrongly
    assert b"unsatisfied" in body
    c.start(first)
    c.wait_converged(timeout_s=20)
    status, _, _ = http(
        "PUT", second.url + "/buckets/b/keys/k?w=all", b"v", {"Content-Type": "text/plain"}
    )
    assert status == 204


def test_a_node_restarted_while_its_peers_are_stopped_keeps_its_ring_and_refuses_quorums(
    make_cluster: MakeCluster,
) -> None:
    """A restarted node must not serve as a cluster of one until it hears from a peer:
    it would acknowledge a w=2 write that only it holds."""
    c = make_cluster(3)
    ring_hash = c.wait_converged()
    victim, *peers = c.nodes
    victim.kill9()
    for p in peers:
        p.pause()
    try:
        c.start(victim)
        ring = get_json(victim.url + "/admin/ring")
        assert (ring["ring_hash"], len(ring["members"])) == (ring_hash, 3)
        members = get_json(victim.url + "/admin/members")["members"]
        assert {m["node"]: m["up"] for m in members} == {
            victim.node_id: True,
            **{p.node_id: False for p in peers},
        }
        status, _, body = http(
            "PUT", victim.url + "/buckets/b/keys/k?w=2", b"v", {"Content-Type": "text/plain"}
        )
        assert (status, b"W-value unsatisfied" in body) == (503, True), body
    finally:
        for p in peers:
            p.resume()
    c.wait_up_everywhere(victim, up=True)
    wait_for(
        lambda: (
            http("PUT", victim.url + "/buckets/b/keys/k?w=2", b"v", {"Content-Type": "text/plain"})[
                0
            ]
            == 204
        ),
        20,
        "the restarted node took a w=2 write once its peers were back",
    )


def test_a_stopped_node_does_not_make_the_others_look_down(make_cluster: MakeCluster) -> None:
    """Gossip rounds stuck on a SIGSTOPped peer must not starve the others' heartbeats."""
    c = make_cluster(3)
    c.wait_converged()
    a, b, stopped = c.nodes
    stopped.pause()
    c.wait_up_everywhere(stopped, up=False)

    def member(viewer: NodeProcess, node: NodeProcess) -> dict[str, Any]:
        members = get_json(viewer.url + "/admin/members")["members"]
        return next(m for m in members if m["node"] == node.node_id)

    # Long enough for several rounds to have picked the stopped peer.
    wait_for(lambda: float(member(a, stopped)["phi"]) > 20, 40, "the stopped node deeply suspected")
    assert member(a, b)["up"]
    assert member(b, a)["up"]
    assert float(member(a, b)["phi"]) < 4
    stopped.resume()
    c.wait_up_everywhere(stopped, up=True)
