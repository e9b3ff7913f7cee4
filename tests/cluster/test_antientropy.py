"""Anti-entropy, join, leave and reaping with real processes."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection

import pytest

from dynamo.tools.localcluster import LocalCluster, NodeProcess, http, wait_for
from http_api.admin import get_json
from tests.cluster.conftest import MakeCluster

pytestmark = pytest.mark.cluster

TEXT = {"Content-Type": "text/plain"}
FAST_AAE = ("aae_quiet_interval_s=0.5",)


def bulk_put(nodes: list[NodeProcess], bucket: str, keys: list[str], query: str) -> set[str]:
    """PUT value-<key> to each key through the nodes in turn, 8 keep-alive connections."""

    def worker(part: int) -> set[str]:
        n = nodes[part % len(nodes)]
        conn = HTTPConnection("127.0.0.1", n.http_port, timeout=30)
        ok = set()
        for key in keys[part::8]:
            conn.request(
                "PUT", f"/buckets/{bucket}/keys/{key}{query}", f"value-{key}".encode(), TEXT
            )
            resp = conn.getresponse()
            resp.read()
            if resp.status == 204:
                ok.add(key)
        conn.close()
        return ok

    with ThreadPoolExecutor(8) as pool:
        return set().union(*pool.map(worker, range(8)))


def holds_all(n: NodeProcess, bucket: str, keys: list[str]) -> list[str]:
    """Keys missing from ``n``'s own store (checked with 8 connections)."""

    def worker(part: int) -> list[str]:
        conn = HTTPConnection("127.0.0.1", n.http_port, timeout=30)
        missing = []
        for key in keys[part::8]:
            conn.request("GET", f"/admin/local/{bucket}/{key}")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or b'"found": true' not in body:
                missing.append(key)
        conn.close()
        return missing

    with ThreadPoolExecutor(8) as pool:
        return [k for part in pool.map(worker, range(8)) for k in part]


def readable_everywhere(n: NodeProcess, bucket: str, keys: set[str]) -> list[str]:
    bad = []
    for key in sorted(keys):
        status, _, body = http("GET", f"{n.url}/buckets/{bucket}/keys/{key}?r=all")
        if status != 200 or body != f"value-{key}".encode():
            bad.append(key)
    return bad


@pytest.mark.timeout(150)  # 6x its run on a slowish day: a slow day is 2x
def test_a_wiped_node_refills_every_key_without_reads(make_cluster: MakeCluster) -> None:
    c = make_cluster(3, settings=FAST_AAE)
    c.wait_converged()
    keys = [f"k{i}" for i in range(10_000)]
    assert len(bulk_put(c.nodes, "wipe", keys, "?w=3")) == len(keys)
    victim = c[1]
    victim.stop()
    victim.wipe()
    c.start(victim)
    # n_val 3 on three nodes: it is a primary for every key.
    wait_for(lambda: not holds_all(victim, "wipe", keys[::50]), 60, "a sample of keys refilled")
    assert holds_all(victim, "wipe", keys) == []
    assert set(get_json(victim.url + "/admin/aae")["peers"]) == {"n1", "n3"}

    def caught_up() -> bool:
        peers = get_json(victim.url + "/admin/aae")["peers"].values()
        return all(p["lag"] == 0 and p["complete"] for p in peers)

    wait_for(caught_up, 30, "the refilled node's anti-entropy to report no lag")


def test_divergence_heals_without_reads_or_hints(make_cluster: MakeCluster) -> None:
    c = make_cluster(3, settings=(*FAST_AAE, "hinted_handoff=false"))
    c.wait_converged()
    paused = c[2]
    paused.pause()
    c.wait_up_everywhere(paused, up=False)
    keys = [f"k{i}" for i in range(500)]
    assert len(bulk_put(c.nodes[:2], "heal", keys, "?w=1")) == len(keys)
    paused.resume()
    wait_for(lambda: not holds_all(paused, "heal", keys), 30, "every write on the paused replica")


class Writer(threading.Thread):
    """Writes new keys (w=2) until stopped; remembers which were acknowledged."""

    def __init__(self, nodes: list[NodeProcess], bucket: str) -> None:
        super().__init__(daemon=True)
        self.nodes = nodes
        self.bucket = bucket
        self.acked: set[str] = set()
        self.stop_flag = threading.Event()
        self.errors = 0

    def run(self) -> None:
        i = 0
        while not self.stop_flag.is_set():
            n = self.nodes[i % len(self.nodes)]
            key = f"w{i}"
            try:
                status, _, _ = http(
                    "PUT",
                    f"{n.url}/buckets/{self.bucket}/keys/{key}?w=2",
                    f"value-{key}".encode(),
                    TEXT,
                    timeout=10,
                )
                if status == 204:
                    self.acked.add(key)
                else:
                    self.errors += 1
            except OSError:
                self.errors += 1
            i += 1

    def finish(self) -> set[str]:
        self.stop_flag.set()
        self.join(30)
        return self.acked


def test_join_under_load_fills_the_new_node(make_cluster: MakeCluster) -> None:
    c = make_cluster(3, settings=FAST_AAE)
    c.wait_converged()
    base = [f"b{i}" for i in range(2000)]
    assert len(bulk_put(c.nodes, "join", base, "?w=2")) == len(base)
    writer = Writer(c.nodes[:3], "join")
    writer.start()
    newcomer = c.add_node()
    c.start(newcomer)
    c.wait_converged(members=4)
    # Reads with r=all during the join merge around the empty replica.
    sample = sorted(base)[:200]
    assert readable_everywhere(c[0], "join", set(sample)) == []
    acked = writer.finish() | set(base)
    mine = [
        k
        for k in sorted(acked)
        if newcomer.node_id in get_json(f"{c[0].url}/admin/preflist/join/{k}")["primaries"]
    ]
    assert len(mine) > len(acked) // 8
    wait_for(lambda: not holds_all(newcomer, "join", mine), 60, "the newcomer's share on it")
    assert readable_everywhere(newcomer, "join", acked) == []


def test_leave_under_load_hands_everything_over(make_cluster: MakeCluster) -> None:
    c = make_cluster(4, settings=FAST_AAE)
    c.wait_converged()
    base = [f"b{i}" for i in range(2000)]
    assert len(bulk_put(c.nodes, "leave", base, "?w=2")) == len(base)
    leaver = c[3]
    stayers = c.nodes[:3]
    writer = Writer(stayers, "leave")
    writer.start()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dynamo.tools.cli",
            "leave",
            "--url",
            leaver.url,
            "--timeout",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "left" in out.stdout
    wait_for(lambda: not leaver.running(), 30, "the leaver to stop")
    c.nodes.remove(leaver)
    c.wait_converged(members=3)
    acked = writer.finish() | set(base)
    assert readable_everywhere(c[0], "leave", acked) == []
    # n_val 3 on three nodes: every key on every remaining node.
    keys = sorted(acked)
    for n in stayers:

        def complete(n: NodeProcess = n) -> bool:
            return not holds_all(n, "leave", keys)

        wait_for(complete, 60, f"every key on {n.node_id}")


@pytest.mark.timeout(150)  # 6x its run on a slowish day: a slow day is 2x
def test_reaped_tombstone_does_not_come_back_from_a_late_hint(make_cluster: MakeCluster) -> None:
    c: LocalCluster = make_cluster(
        4, settings=(*FAST_AAE, "tombstone_grace_s=1", "maintenance_interval_s=0.3")
    )
    c.wait_converged()
    key = "ghost"
    prim = get_json(f"{c[0].url}/admin/preflist/reap/{key}")["primaries"]
    by_id = {n.node_id: n for n in c.nodes}
    down_primary = by_id[prim[2]]
    spare = next(n for n in c.nodes if n.node_id not in prim)
    coordinator = by_id[prim[0]]
    # A primary is down: the write's third copy goes to the spare, as a hint.
    down_primary.kill9()
    c.wait_up_everywhere(down_primary, up=False)
    assert http("PUT", f"{coordinator.url}/buckets/reap/keys/{key}?w=3", b"old", TEXT)[0] == 204
    assert get_json(spare.url + "/admin/handoff")["hints_pending"] == {down_primary.node_id: 1}
    # The spare dies holding the hint; the primary comes back; the key is deleted.
    spare.kill9()
    c.start(down_primary)
    c.wait_up_everywhere(down_primary, up=True)
    c.wait_up_everywhere(spare, up=False)
    status, _, _ = http("DELETE", f"{coordinator.url}/buckets/reap/keys/{key}?w=3")
    assert status == 204

    def reaped_everywhere() -> bool:
        return all(not get_json(f"{by_id[p].url}/admin/local/reap/{key}")["found"] for p in prim)

    wait_for(reaped_everywhere, 30, "the tombstone reaped on every primary")
    assert sum(by_id[p].stats()["tombstones_reaped_total"] for p in prim) == 3
    # The spare returns and hands its late hint over: the key must stay gone.
    c.start(spare)
    wait_for(
        lambda: not get_json(spare.url + "/admin/handoff")["hints_pending"], 30, "the late hint"
    )
    for p in prim:
        assert not get_json(f"{by_id[p].url}/admin/local/reap/{key}")["found"]
    assert http("GET", f"{coordinator.url}/buckets/reap/keys/{key}?r=all")[0] == 404
    # A new write to the key is a new value, not a sibling of the old one.
    assert http("PUT", f"{coordinator.url}/buckets/reap/keys/{key}", b"reborn", TEXT)[0] == 204
    assert http("GET", f"{coordinator.url}/buckets/reap/keys/{key}?r=all")[::2] == (200, b"reborn")
