"""Half a minute of real chaos: five nodes, kills, stops, restarts, a partition."""

from __future__ import annotations

import asyncio
import io

import pytest

from dynamo.tools.chaos.runner import ChaosSettings, run

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(360)]  # 6x a slowish day's run


def test_five_nodes_lose_no_acknowledged_write_under_faults() -> None:
    settings = ChaosSettings(
        nodes=5,
        duration_s=25,
        seed=7,
        clients=6,
        keys=12,
        max_impaired=2,
        kinds=("kill", "stop", "partition", "isolate", "lossy"),
        converge_s=90,
    )
    out = io.StringIO()
    report = asyncio.run(run(settings, out))
    text = report.text()
    print(text)
    counts = report.faults.counts()
    assert counts.get("kill", 0) >= 1, text
    assert counts.get("stop", 0) >= 1, text
    assert counts.get("partition", 0) >= 1, text
    assert report.history.acknowledged > 100, text
    assert report.verdict.lost_count == 0, text
    assert not report.verdict.bugs, text
    assert report.converged_after_s is not None, text
    assert report.index_queries > 10, text  # index queries after healing: every one matched
    assert report.passed, text
