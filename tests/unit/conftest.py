"""Fixtures of the deploy checks: a cluster secret and the StatefulSet pod's config."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamo.node import config as config_mod
from dynamo.tools.cli import load_config
from tests.support.deploy import (
    NAMESPACE,
    POD_NAME,
    _argv,
    _clear_dynamo_env,
    _container,
    _env,
    _expand,
    _parse_start,
)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "cluster-secret"
    path.write_text("0123456789abcdef\n")
    return path


@pytest.fixture
def pod_config(monkeypatch: pytest.MonkeyPatch, secret_file: Path) -> config_mod.NodeConfig:
    """The NodeConfig the StatefulSet's container gets, for pod dynamo-1 in namespace prod:
    its args through ``dynamo start``'s parser and ``load_config``, its DYNAMO_* env
    through the environment, the secret file swapped for a local one."""
    container = _container()
    downward = {"metadata.name": POD_NAME, "metadata.namespace": NAMESPACE}
    env: dict[str, str] = {}
    for name, var in _env(container).items():
        if "value" in var:
            env[name] = var["value"]
        elif "fieldRef" in var.get("valueFrom", {}):
            path = var["valueFrom"]["fieldRef"]["fieldPath"]
            assert path in downward, f"env {name}: test knows no value for {path}"
            env[name] = downward[path]
    argv = [_expand(a, env) for a in _argv(container)]
    ns = _parse_start(argv)
    assert ns.cluster_secret_file, "the pod gets no --cluster-secret-file"
    ns.cluster_secret_file = str(secret_file)
    _clear_dynamo_env(monkeypatch)
    for name, value in env.items():
        if name.startswith("DYNAMO_"):
            monkeypatch.setenv(name, value)
    return load_config(ns)
