"""Prometheus exposition of the node's figures, through prometheus-client.

A custom collector reads the same sources ``/stats`` does at scrape time, so
the two views never disagree and the hot path pays nothing for Prometheus.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class StatsSource(Protocol):
    def stats(self) -> dict[str, Any]: ...


_COUNTERS = {
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
    "gossip_rounds_total": "Gossip rounds started",
}
_GAUGES = {
    "hints_pending": "Hints held for other nodes",
    "node_uptime_s": "Seconds since the node started",
}
_LATENCY = {
    "node_get_fsm_time": "Quorum read latency over the last minute, microseconds",
    "node_put_fsm_time": "Quorum write latency over the last minute, microseconds",
    "node_get_fsm_siblings": "Siblings per read over the last minute",
    "node_get_fsm_objsize": "Object size per read over the last minute, bytes",
}


class _NodeCollector(Collector):
    def __init__(self, source: StatsSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        s = self.source.stats()
        for name, doc in _COUNTERS.items():
            c = CounterMetricFamily(f"dynamo_{name.removesuffix('_total')}", doc)
            c.add_metric([], float(s.get(name, 0)))
            yield c
        for name, doc in _GAUGES.items():
            g = GaugeMetricFamily(f"dynamo_{name}", doc)
            g.add_metric([], float(s.get(name, 0)))
            yield g
        for prefix, doc in _LATENCY.items():
            g = GaugeMetricFamily(f"dynamo_{prefix}", doc, labels=["quantile"])
            for q in ("mean", "median", "95", "99", "100"):
                g.add_metric([q], float(s.get(f"{prefix}_{q}", 0)))
            yield g
        members = GaugeMetricFamily("dynamo_ring_members", "Members of the ring")
        members.add_metric([], float(len(s.get("ring_members", []))))
        yield members
        connected = GaugeMetricFamily("dynamo_connected_nodes", "Peers with an open connection")
        connected.add_metric([], float(len(s.get("connected_nodes", []))))
        yield connected
        failures = CounterMetricFamily(
            "dynamo_quorum_failures", "Requests refused for an unmet quorum", labels=["kind"]
        )
        for key, v in s.items():
            if key.startswith("quorum_failures_") and key.endswith("_total"):
                failures.add_metric([key[len("quorum_failures_") : -len("_total")]], float(v))
        yield failures
        now = GaugeMetricFamily("dynamo_scrape_time_seconds", "Unix time of this scrape")
        now.add_metric([], time.time())
        yield now


class Metrics:
    def __init__(self, source: StatsSource) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_NodeCollector(source))

    def render(self) -> bytes:
        return generate_latest(self.registry)
