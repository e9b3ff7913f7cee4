"""Day two: metrics, a wrong cluster secret, TLS, HTTP auth, overload, sibling limits."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from http.client import HTTPException, HTTPSConnection
from pathlib import Path

import aiohttp
import pytest

from dynamo.tools.localcluster import NodeProcess, http, wait_for
from http_api.admin import get_json
from tests.cluster.conftest import MakeCluster
from tests.support.certs import make_certs

pytestmark = pytest.mark.cluster

TEXT = {"Content-Type": "text/plain"}


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text exposition."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        mname, _, rest = head.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if mname == name and got == want:
            return float(value)
    raise KeyError(f"{name}{{{want}}} not in metrics")


def test_metrics_expose_requests_quorums_and_storage(make_cluster: MakeCluster) -> None:
    c = make_cluster(3)
    c.wait_converged()
    n = c[0]
    for i in range(20):
        http("PUT", f"{n.url}/buckets/m/keys/k{i}", b"x" * 100, TEXT)
        http("GET", f"{n.url}/buckets/m/keys/k{i}")
    http("GET", f"{n.url}/buckets/m/keys/k1?r=7")  # 400
    status, headers, body = http("GET", n.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert metric(text, "dynamo_http_requests_total", op="put", status="204") == 20
    assert metric(text, "dynamo_http_requests_total", op="get", status="200") == 20
    assert metric(text, "dynamo_http_requests_total", op="get", status="400") == 1
    assert metric(text, "dynamo_http_request_seconds_count", op="get") == 21
    assert metric(text, "dynamo_get_siblings_count") == 20
    assert metric(text, "dynamo_get_object_bytes_sum") == 2000
    assert metric(text, "dynamo_members", state="up") == 3
    assert metric(text, "dynamo_rocksdb_estimated_keys") >= 0
    for name in (
        "dynamo_hints_pending",
        "dynamo_read_repairs_total",
        "dynamo_gossip_rounds_total",
        "dynamo_aae_bytes_sent_total",
        "dynamo_rpc_timeouts_total",
        "dynamo_rocksdb_pending_compaction_bytes",
    ):
        metric(text, name)
    stats = n.stats()
    assert stats["node_puts_total"] == 20


def test_a_node_with_the_wrong_secret_is_refused_by_every_peer(make_cluster: MakeCluster) -> None:
    c = make_cluster(3, settings=("cluster_secret=right-secret",))
    c.wait_converged()
    stranger = c.add_node()
    c.per_node[stranger.node_id] = ["cluster_secret=wrong-secret"]
    c.start(stranger)

    def refused_everywhere() -> bool:
        return all(n.stats()["rpc_auth_failures_total"] > 0 for n in c.nodes[:3])

    wait_for(refused_everywhere, 20, "every peer to refuse the stranger")
    for n in c.nodes[:3]:
        assert len(get_json(n.url + "/admin/ring")["members"]) == 3
        assert stranger.node_id not in {
            m["node"] for m in get_json(n.url + "/admin/members")["members"]
        }
    assert len(get_json(stranger.url + "/admin/ring")["members"]) == 0  # never joined
    assert http("PUT", stranger.url + "/buckets/b/keys/k", b"v", TEXT)[0] == 503
    assert "refused a peer connection" in (c.root / "n1.log").read_text()


def tls_settings(certs: dict[str, Path]) -> tuple[str, ...]:
    return (
        f"http_tls_cert_file={certs['cert']}",
        f"http_tls_key_file={certs['key']}",
        f"peer_tls_cert_file={certs['cert']}",
        f"peer_tls_key_file={certs['key']}",
        f"peer_tls_ca_file={certs['ca']}",
    )


def https(
    n: NodeProcess, ca: Path, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    ctx = ssl.create_default_context(cafile=str(ca))
    conn = HTTPSConnection("127.0.0.1", n.http_port, context=ctx, timeout=10)
    try:
        conn.request(method, path, body=body, headers=TEXT if body is not None else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_tls_for_clients_and_peers(make_cluster: MakeCluster, tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "ok", "dynamo")
    c = make_cluster(3, settings=tls_settings(certs), start=False)
    for n in c.nodes:
        n.start(c.seeds_for(n), [*c.settings])

    def https_ready() -> bool:
        return all(https(n, certs["ca"], "GET", "/ping")[0] == 200 for n in c.nodes)

    wait_for(https_ready, 30, "HTTPS on every node")

    def converged() -> bool:
        rings = [json.loads(https(n, certs["ca"], "GET", "/admin/ring")[1]) for n in c.nodes]
        return all(len(r["members"]) == 3 for r in rings)

    wait_for(converged, 30, "the ring over TLS")
    assert https(c[0], certs["ca"], "PUT", "/buckets/t/keys/k?w=all", b"secret")[0] == 204
    assert https(c[2], certs["ca"], "GET", "/buckets/t/keys/k?r=all") == (200, b"secret")
    with pytest.raises((ConnectionError, HTTPException)):  # plain HTTP on a TLS port
        http("GET", c[0].url + "/ping", timeout=3)
    # A node whose certificate another CA signed cannot talk to the cluster.
    other = make_certs(tmp_path / "other", "intruder")
    intruder = c.add_node()
    intruder.start(
        c.seeds_for(intruder),
        [
            f"peer_tls_cert_file={other['cert']}",
            f"peer_tls_key_file={other['key']}",
            f"peer_tls_ca_file={certs['ca']}",
        ],
    )
    intruder.wait_ready()

    def refused() -> bool:
        return bool(intruder.stats()["rpc_connect_failures_total"] >= 3)

    wait_for(refused, 30, "the intruder's handshakes to fail")
    assert len(get_json(intruder.url + "/admin/ring")["members"]) == 0
    for n in c.nodes[:3]:
        ring = json.loads(https(n, certs["ca"], "GET", "/admin/ring")[1])
        assert intruder.node_id not in ring["members"]


def test_http_auth_guards_every_route_but_ping(make_cluster: MakeCluster) -> None:
    c = make_cluster(1, settings=("http_auth_token=t0ken",))
    n = c[0]
    assert http("GET", n.url + "/ping")[0] == 200
    for method, path in (
        ("GET", "/buckets/b/keys/k"),
        ("PUT", "/buckets/b/keys/k"),
        ("GET", "/stats"),
        ("GET", "/admin/members"),
        ("POST", "/admin/leave"),
    ):
        status, headers, body = http(method, n.url + path, b"v" if method == "PUT" else None, TEXT)
        assert status == 401, (method, path)
        assert "Bearer" in headers["WWW-Authenticate"]
        assert b"Authorization" in body
    auth = {"Authorization": "Bearer t0ken"}
    assert http("PUT", n.url + "/buckets/b/keys/k", b"v", {**TEXT, **auth})[0] == 204
    assert http("GET", n.url + "/buckets/b/keys/k", headers=auth)[::2] == (200, b"v")
    assert http("GET", n.url + "/stats", headers={"Authorization": "Bearer wrong"})[0] == 401


def test_overload_gets_a_fast_503_with_retry_after(make_cluster: MakeCluster) -> None:
    c = make_cluster(3, settings=("max_concurrent_requests=8", "request_timeout_ms=3000"))
    c.wait_converged()
    http("PUT", c[0].url + "/buckets/o/keys/k?w=all", b"v", TEXT)
    for n in c.nodes[1:]:
        n.pause()  # reads with r=all now wait for their timeout: requests pile up

    async def burst() -> list[tuple[int, str | None, float]]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

            async def one() -> tuple[int, str | None, float]:
                t0 = time.monotonic()
                async with s.get(c[0].url + "/buckets/o/keys/k?r=all&timeout=3000") as r:
                    await r.read()
                    return r.status, r.headers.get("Retry-After"), time.monotonic() - t0

            return await asyncio.gather(*(one() for _ in range(64)))

    results = asyncio.run(burst())
    for n in c.nodes[1:]:
        n.resume()
    refused = [r for r in results if r[0] == 503 and r[1] is not None]
    assert len(refused) >= 40
    assert max(r[2] for r in refused) < 2.0  # answered at once, not queued behind the slow ones
    assert c[0].stats()["node_gets_total"] <= 64
    assert http("GET", c[0].url + "/buckets/o/keys/k")[0] == 200


def test_writes_beyond_the_sibling_limit_are_refused(make_cluster: MakeCluster) -> None:
    c = make_cluster(1, settings=("max_siblings=5", "sibling_warning=3"))
    n = c[0]
    for i in range(5):
        assert http("PUT", n.url + "/buckets/s/keys/k", f"v{i}".encode(), TEXT)[0] == 204
    status, _, body = http("PUT", n.url + "/buckets/s/keys/k", b"v5", TEXT)
    assert status == 409
    assert b"resolve" in body
    assert b"context" in body
    ctx = http("GET", n.url + "/buckets/s/keys/k")[1]["X-Riak-Vclock"]
    assert (
        http("PUT", n.url + "/buckets/s/keys/k", b"resolved", {**TEXT, "X-Riak-Vclock": ctx})[0]
        == 204
    )
    assert http("GET", n.url + "/buckets/s/keys/k")[::2] == (200, b"resolved")
    assert "siblings: resolve them" in (c.root / "n1.log").read_text()
