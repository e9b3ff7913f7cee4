"""Fixtures of the deploy checks: a cluster secret, a StatefulSet and its pod's config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dynamo.node import config as config_mod
from tests.support.deploy import _pod_config, _pod_names, _statefulset, _statefulsets


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "cluster-secret"
    path.write_text("0123456789abcdef\n")
    return path


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking ``statefulset`` runs once per zone's StatefulSet."""
    if "statefulset" in metafunc.fixturenames:
        names = [s["metadata"]["name"] for s in _statefulsets()]
        metafunc.parametrize("statefulset", names, indirect=True)


@pytest.fixture
def statefulset(request: pytest.FixtureRequest) -> dict[str, Any]:
    """One StatefulSet of the manifests, by the name a test module's
    ``pytest_generate_tests`` above parametrizes it with (one run per zone)."""
    name = getattr(request, "param", None)
    assert isinstance(name, str), "parametrize `statefulset` with the StatefulSets' names"
    return _statefulset(name)


@pytest.fixture
def pod_config(
    statefulset: dict[str, Any], monkeypatch: pytest.MonkeyPatch, secret_file: Path
) -> config_mod.NodeConfig:
    """The NodeConfig the StatefulSet's last pod gets in namespace prod (see
    ``tests.support.deploy._pod_config``)."""
    pod = _pod_names(statefulset)[-1]
    return _pod_config(statefulset, pod, secret_file, monkeypatch)
