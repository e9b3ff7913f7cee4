"""Half a minute of chaos in the network lab (root): hosts of two node processes each, silent
partitions (symmetric, asymmetric, flapping), hosts lost whole and paused."""

from __future__ import annotations

import asyncio
import io

import pytest

from dynamo.tools.chaos.lab_faults import LAB_KINDS
from dynamo.tools.chaos.runner import ChaosSettings, run
from dynamo.tools.lab import environment_problems

problems = environment_problems()
pytestmark = [
    pytest.mark.chaos,
    pytest.mark.timeout(480),  # 6x a slowish day's run
    pytest.mark.skipif(bool(problems), reason="; ".join(problems) or "lab available"),
]


def test_lab_hosts_lose_no_acknowledged_write_under_network_faults() -> None:
    settings = ChaosSettings(
        nodes=3,
        processes=2,
        lab=True,
        duration_s=30,
        seed=11,
        clients=6,
        keys=12,
        max_impaired=1,
        kinds=LAB_KINDS,
        converge_s=120,
    )
    report = asyncio.run(run(settings, io.StringIO()))
    text = report.text()
    print(text)
    counts = report.faults.counts()
    assert sum(counts.get(k, 0) for k in ("partition", "asymmetric", "flap")) >= 2, text
    assert counts.get("host_loss", 0) + counts.get("pause", 0) >= 1, text
    assert report.history.acknowledged > 50, text
    assert report.verdict.lost_count == 0, text
    assert not report.verdict.bugs, text
    assert report.converged_after_s is not None, text
    assert report.passed, text
