"""/stats and /metrics agree: every registered figure is measured, every count exported."""

from __future__ import annotations

import asyncio

import pytest

from dynamo.node.metrics import COUNTERS, GAUGES
from dynamo.tools.simulation.harness import SimCluster, SimSettings, on_virtual_time

pytestmark = pytest.mark.sim


def test_every_registered_figure_is_measured_and_every_count_is_registered() -> None:
    async def figures() -> tuple[set[str], set[str]]:
        sim = SimCluster(1, SimSettings(nodes=3))
        for n in sim.ids:
            await sim.start(n)
        while any(len(node.cluster.ring) < 3 for node in sim.nodes.values()):
            await asyncio.sleep(0.1)
        node = sim.nodes["n1"]
        measured = set(node.stats()) | set(node.extra_metrics())
        totals = {k for k in node.stats() if k.endswith("_total")}
        for n in list(sim.nodes):
            sim.crash(n, power_loss=False)
        return measured, totals

    measured, totals = on_virtual_time(figures)
    assert set(COUNTERS) | set(GAUGES) <= measured, "registered but never measured"
    unexported = {k for k in totals if k not in COUNTERS and not k.startswith("quorum_failures_")}
    assert not unexported, "counted but not in /metrics: register them in dynamo.node.metrics"
