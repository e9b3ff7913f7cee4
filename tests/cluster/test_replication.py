"""Replication with real processes: quorums under node failures, hinted handoff."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dynamo.tools.localcluster import LocalCluster, NodeProcess, http, wait_for
from http_api.admin import get_json
from tests.cluster.conftest import MakeCluster

pytestmark = pytest.mark.cluster

TEXT = {"Content-Type": "text/plain"}


def put(n: NodeProcess, bucket: str, key: str, value: bytes, query: str = "") -> tuple[int, bytes]:
    status, _, body = http("PUT", f"{n.url}/buckets/{bucket}/keys/{key}{query}", value, TEXT)
    return status, body


def get(n: NodeProcess, bucket: str, key: str, query: str = "") -> tuple[int, bytes]:
    status, _, body = http("GET", f"{n.url}/buckets/{bucket}/keys/{key}{query}")
    return status, body


def primaries(n: NodeProcess, bucket: str, key: str) -> list[str]:
    return list(get_json(f"{n.url}/admin/preflist/{bucket}/{key}")["primaries"])


def local(n: NodeProcess, bucket: str, key: str) -> dict[str, object]:
    result: dict[str, object] = get_json(f"{n.url}/admin/local/{bucket}/{key}")
    return result


def test_quorums_with_one_of_three_down(make_cluster: MakeCluster) -> None:
    c = make_cluster(3)
    c.wait_converged()
    a, b, victim = c.nodes
    assert put(a, "q", "before", b"v0", "?w=all")[0] == 204
    victim.kill9()
    c.wait_up_everywhere(victim, up=False)
    c.wait_up_everywhere(b, up=True)
    status, body = put(a, "q", "k", b"v1", "?w=2")
    assert status == 204, body.decode(errors="replace")  # the reason, should it fail
    assert get(b, "q", "k", "?r=2") == (200, b"v1")
    status, body = put(a, "q", "k", b"v2", "?pw=3")
    assert (status, body.decode().strip()) == (503, "PW-value unsatisfied: 2/3")
    status, body = get(b, "q", "k", "?pr=3")
    assert (status, body.decode().strip()) == (503, "PR-value unsatisfied: 2/3")
    # No fourth node: nowhere for a third copy.
    status, body = put(a, "q", "k", b"v3", "?w=3")
    assert status == 503
    assert "W-value unsatisfied: 2/3" in body.decode()

    b.kill9()
    c.wait_up_everywhere(b, up=False)
    t0 = time.monotonic()
    status, body = put(a, "q", "k", b"v4", "?w=2")
    assert status == 503
    assert "W-value unsatisfied: 1/2" in body.decode()
    assert time.monotonic() - t0 < 1.0  # at once, not after a timeout
    status, _ = get(a, "q", "k", "?r=2")
    assert status == 503

    c.start(victim)
    c.start(b)
    c.wait_up_everywhere(victim, up=True)
    c.wait_up_everywhere(b, up=True)
    for key, value in (("before", b"v0"), ("k", b"v1")):
        assert get(a, "q", key, "?r=all") == (200, value)


def test_w3_succeeds_through_a_fallback_with_four_nodes(make_cluster: MakeCluster) -> None:
    c = make_cluster(4)
    c.wait_converged()
    key = "fallback-key"
    prim = primaries(c[0], "fb", key)
    victim = next(n for n in c.nodes if n.node_id == prim[0])
    coordinator = next(n for n in c.nodes if n.node_id == prim[1])
    victim.kill9()
    c.wait_up_everywhere(victim, up=False)
    assert put(coordinator, "fb", key, b"via-fallback", "?w=3")[0] == 204
    spare = next(n for n in c.nodes if n.node_id not in prim)
    pending = get_json(spare.url + "/admin/handoff")["hints_pending"]
    assert pending == {victim.node_id: 1}
    assert get(coordinator, "fb", key, "?r=3") == (200, b"via-fallback")
    # The fallback serves reads for the primary it stands in for, and hands the
    # write back once the primary returns.
    c.start(victim)
    wait_for(lambda: local(victim, "fb", key)["found"], 30, "the hint handed back")
    wait_for(
        lambda: not get_json(spare.url + "/admin/handoff")["hints_pending"], 30, "the hint deleted"
    )


def write_many(
    c: LocalCluster, nodes: list[NodeProcess], count: int, query: str
) -> dict[str, bytes]:
    acked: dict[str, bytes] = {}

    def one(i: int) -> tuple[str, bytes, int]:
        key, value = f"k{i}", f"value-{i}".encode()
        return key, value, put(nodes[i % len(nodes)], "hh", key, value, query)[0]

    with ThreadPoolExecutor(8) as pool:
        for key, value, status in pool.map(one, range(count)):
            if status == 204:
                acked[key] = value
    return acked


def test_hinted_handoff_returns_every_write_to_a_restarted_node(make_cluster: MakeCluster) -> None:
    c = make_cluster(5)
    c.wait_converged()
    victim = c[4]
    victim.kill9()
    live = c.nodes[:4]
    acked = write_many(c, live, 1000, "?w=2")
    assert len(acked) == 1000
    written = sum(n.stats()["hints_written_total"] for n in live)
    assert written > 0
    c.start(victim)
    mine = [k for k in acked if victim.node_id in primaries(c[0], "hh", k)]
    assert len(mine) > 100  # about 3/5 of the keys

    def all_handed_back() -> bool:
        return all(local(victim, "hh", k)["found"] for k in mine)

    wait_for(all_handed_back, 30, "every key of the restarted node on it, without reads")
    wait_for(
        lambda: all(not get_json(n.url + "/admin/handoff")["hints_pending"] for n in live),
        30,
        "the hints deleted on the fallbacks",
    )
    for key, value in acked.items():
        assert get(c[0], "hh", key, "?r=all") == (200, value)
