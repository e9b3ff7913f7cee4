"""Prometheus exposition of the node's figures, through prometheus-client.

Per-request figures (counts and latency by operation and status, siblings and
object sizes of reads) are counted as requests finish, in plain lists and dicts
(no lock per observation: the event loop is the only writer), and turned into
Prometheus counters and histograms when scraped. Everything else
(quorum failures, read repairs, hints, anti-entropy, gossip, members, RPC
errors, RocksDB) is read at scrape time from the same sources as ``/stats``, so
the two views never disagree and the hot path pays nothing for them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SIBLING_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100)
SIZE_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216)


class NodeView(Protocol):
    def stats(self) -> dict[str, Any]: ...

    def extra_metrics(self) -> dict[str, Any]: ...


# The one registry of what a node counts: every key of /stats that /metrics exports,
# with its help text. tests/sim/test_stats_registry.py holds the two to each other.
COUNTERS = {
    "node_gets_total": "Quorum reads coordinated by this node",
    "node_puts_total": "Quorum writes coordinated by this node",
    "read_repairs_total": "Replicas repaired after a read",
    "vnode_gets_total": "Local replica reads",
    "vnode_puts_total": "Local replica writes",
    "coord_redirs_total": "Writes forwarded to a primary",
    "hints_written_total": "Hints stored for down primaries",
    "hints_delivered_total": "Hints handed back to their primary",
    "rpc_calls_total": "Node-to-node calls made",
    "rpc_timeouts_total": "Node-to-node calls that timed out",
    "rpc_protocol_errors_total": "Peer connections closed for garbage",
    "rpc_auth_failures_total": "Peer connections refused for a wrong cluster or secret",
    "rpc_connect_failures_total": "Failed connection attempts to peers",
    "gossip_rounds_total": "Gossip rounds started",
    "gossip_failed_rounds_total": "Gossip rounds that failed",
    "aae_rounds_total": "Anti-entropy rounds",
    "aae_objects_sent_total": "Objects sent by anti-entropy",
    "aae_bytes_sent_total": "Bytes of objects sent by anti-entropy",
    "aae_objects_received_total": "Objects received by anti-entropy",
    "aae_bytes_received_total": "Bytes of objects received by anti-entropy",
    "aae_objects_changed_total": "Objects anti-entropy changed here (copies we lacked)",
    "tombstones_reaped_total": "Tombstones deleted for good",
    "objects_dropped_total": "Objects dropped after ownership moved",
    "cleanup_passes_total": "Walks over every key for ones no longer ours (one after each start)",
    "http_overload_refused_total": "Requests refused with 503 above the concurrency limit",
    "siblings_refused_total": "Writes refused for exceeding the sibling limit",
    "too_large_refused_total": "Writes refused for making a stored object too large",
    "hints_expired_total": "Hints dropped unsent for outliving hint_ttl_s",
    "storage_write_failures_total": "Writes the storage refused (a full disk, an I/O error)",
    "storage_corrupt_objects_total": "Stored objects whose checksum failed: removed, never served",
    "tictac_exchanges_total": "Tictac tree exchanges this node started (the backstop)",
    "tictac_repaired_total": "Objects the tictac backstop changed here (copies no log showed)",
    "tictac_builds_total": "Tictac trees built from a scan of every object",
    "index_queries_total": "Coverage queries coordinated here (2i, $bucket, key listings)",
    "index_replans_total": "Parts of coverage queries asked again after a node failed",
    "aae_failed_rounds_total": "Anti-entropy rounds that failed",
    "aae_objects_oversized_total": "Objects too large for one message, skipped by anti-entropy",
    "pbc_connects_total": "Riak PB connections opened",
    "pb_protocol_errors_total": "PB connections closed for garbage, oversized frames or stalls",
    "pb_refused_connections_total": "PB connections refused above pb_max_connections",
    "pb_auth_failures_total": "PB authentication requests refused",
    "malloc_trims_total": "Times freed C heap memory was handed back (malloc_trim_interval_s)",
    "malloc_trim_seconds_total": "Seconds spent handing freed C heap memory back",
}
GAUGES = {
    "hints_pending": "Hints held for other nodes",
    "storage_writes_refused": "1 while the storage refuses writes (see /admin/health), else 0",
    "aae_lag_max": "Largest anti-entropy lag behind a peer, in log entries",
    "transfers_in_progress": "Hint deliveries and leave transfers running",
    "node_uptime_s": "Seconds since the node started",
    "http_in_flight": "Client requests being served (HTTP and PB)",
    "pbc_active": "Riak PB connections open",
    "rocksdb_live_sst_bytes": "RocksDB live SST file size",
    "rocksdb_pending_compaction_bytes": "RocksDB estimated pending compaction bytes",
    "rocksdb_estimated_keys": "RocksDB estimated objects",
    "rocksdb_mem_table_bytes": "RocksDB memtables, every column family",
    "rocksdb_table_readers_bytes": "RocksDB table readers (index and filter blocks)",
    "rocksdb_block_cache_bytes": "RocksDB block cache in use",
    "rocksdb_live_iterators": "Store scans open now (a leak shows as growth)",
    "asyncio_tasks": "asyncio tasks alive in the node process",
    "malloc_in_use_bytes": "C heap bytes in use (RocksDB, large Python objects): leaks raise it",
    "malloc_free_bytes": "C heap bytes freed but held by the process (fragmentation)",
    "python_allocated_blocks": "Python small-object blocks allocated",
}


class CheapHistogram:
    """A Prometheus histogram without a lock per observation: bucket counts in a list,
    made cumulative only when scraped (the event loop is the only writer)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(
        self,
        name: str,
        doc: str,
        labels: dict[str, str] | None = None,
        into: HistogramMetricFamily | None = None,
    ) -> HistogramMetricFamily:
        fam = into or HistogramMetricFamily(name, doc, labels=list(labels or {}))
        cumulative, buckets = 0, []
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            cumulative += n
            buckets.append((bound, float(cumulative)))
        fam.add_metric(list((labels or {}).values()), buckets, self.sum)
        return fam


class _NodeCollector(Collector):
    def __init__(self, node: NodeView, metrics: Metrics) -> None:
        self.node = node
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        yield m.siblings.family("dynamo_get_siblings", "Siblings per read")
        yield m.object_bytes.family("dynamo_get_object_bytes", "Object size per read, bytes")
        for proto, latencies, counts in (
            ("http", m.latency, m.requests),
            ("pb", m.pb_latency, m.pb_requests),
        ):
            name = proto.upper()
            latency = HistogramMetricFamily(
                f"dynamo_{proto}_request_seconds",
                f"{name} request latency by operation",
                labels=["op"],
            )
            for op, h in sorted(latencies.items()):
                h.family("", "", {"op": op}, into=latency)
            yield latency
            requests = CounterMetricFamily(
                f"dynamo_{proto}_requests",
                f"{name} requests by operation and status (PB: the HTTP status it stands for)",
                labels=["op", "status"],
            )
            for (op, status), n in sorted(counts.items()):
                requests.add_metric([op, str(status)], float(n))
            yield requests
        s = {**self.node.stats(), **self.node.extra_metrics()}
        for name, doc in COUNTERS.items():
            c = CounterMetricFamily(f"dynamo_{name.removesuffix('_total')}", doc)
            c.add_metric([], float(s.get(name) or 0))
            yield c
        for name, doc in GAUGES.items():
            g = GaugeMetricFamily(f"dynamo_{name}", doc)
            g.add_metric([], float(s.get(name) or 0))  # None: not known here
            yield g
        failures = CounterMetricFamily(
            "dynamo_quorum_failures", "Requests refused for an unmet quorum", labels=["kind"]
        )
        for key, v in s.items():
            if key.startswith("quorum_failures_") and key.endswith("_total"):
                failures.add_metric([key[len("quorum_failures_") : -len("_total")]], float(v))
        yield failures
        members = GaugeMetricFamily(
            "dynamo_members", "Members this node sees, by state", labels=["state"]
        )
        for state, n in s.get("members_by_state", {}).items():
            members.add_metric([state], float(n))
        yield members
        yield from _aae_peer_metrics(s.get("aae_peers", {}))
        pending = GaugeMetricFamily(
            "dynamo_hints_pending_by_target", "Hints held", labels=["target"]
        )
        for target, n in s.get("hints_by_target", {}).items():
            pending.add_metric([target], float(n))
        yield pending


def _aae_peer_metrics(peers: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    """Anti-entropy progress and health per peer: a stuck exchange shows here."""
    lag = GaugeMetricFamily("dynamo_aae_lag", "Anti-entropy lag behind each peer", labels=["peer"])
    failures = GaugeMetricFamily(
        "dynamo_aae_consecutive_failures",
        "Anti-entropy rounds with each peer that failed in a row",
        labels=["peer"],
    )
    age = GaugeMetricFamily(
        "dynamo_aae_last_success_age_seconds",
        "Seconds since the last anti-entropy round with each peer succeeded (-1: never)",
        labels=["peer"],
    )
    for peer, p in sorted(peers.items()):
        lag.add_metric([peer], float(p["lag"]))
        failures.add_metric([peer], float(p["consecutive_failures"]))
        seen = p["last_success_age_s"]
        age.add_metric([peer], -1.0 if seen is None else float(seen))
    yield from (lag, failures, age)


class Metrics:
    """One node's registry (never the process-global one: tests run several nodes)."""

    def __init__(self, node: NodeView) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, CheapHistogram] = {}
        self.pb_requests: dict[tuple[str, int], int] = {}
        self.pb_latency: dict[str, CheapHistogram] = {}
        self.siblings = CheapHistogram(SIBLING_BUCKETS)
        self.object_bytes = CheapHistogram(SIZE_BUCKETS)
        self.registry.register(_NodeCollector(node, self))

    def observe_request(self, op: str, status: int, seconds: float) -> None:
        key = (op, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.latency.get(op)
        if histogram is None:
            histogram = self.latency[op] = CheapHistogram(LATENCY_BUCKETS)
        histogram.observe(seconds)

    def observe_pb_request(self, op: str, status: int, seconds: float) -> None:
        """A PB request (``status``: what HTTP would have answered)."""
        key = (op, status)
        self.pb_requests[key] = self.pb_requests.get(key, 0) + 1
        histogram = self.pb_latency.get(op)
        if histogram is None:
            histogram = self.pb_latency[op] = CheapHistogram(LATENCY_BUCKETS)
        histogram.observe(seconds)

    def observe_get(self, siblings: int, size: int) -> None:
        self.siblings.observe(siblings)
        self.object_bytes.observe(size)

    def render(self) -> bytes:
        return generate_latest(self.registry)
