"""What the offline checks of ``deploy/`` share (``tests/unit/test_deploy_*.py``): the
Kubernetes manifests, the systemd unit and its environment file, and the Dockerfile,
read and checked against ``dynamo.node.config.NodeConfig`` and the flags of
``dynamo start``.

The manifests (every ``deploy/kubernetes/*.yaml``: the shared objects and one StatefulSet
per zone) are validated against a structural schema written here (unknown keys are
errors, so a typo such as ``readinessprobe`` does not pass silently), then for what
makes the cluster work: the names, ports, probes, volumes, zones and flags that must
agree. ``kubectl`` and ``systemd-analyze`` add their own checks when they are installed.
"""

from __future__ import annotations

import argparse
import configparser
import dataclasses
import functools
import importlib
import inspect
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from aiohttp import web_runner

from dynamo.node import config as config_mod
from dynamo.storage.rocksdb import StoreConfig
from dynamo.tools.cli import build_parser, load_config

# pyyaml (a test dependency) ships no type stubs; as a module of type Any mypy accepts it
# whether or not types-PyYAML is installed.
yaml: Any = importlib.import_module("yaml")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_DIR = DEPLOY / "kubernetes"  # `kubectl apply -f` of the directory: every file an object
UNIT = DEPLOY / "systemd" / "dynamo.service"
ENV_EXAMPLE = DEPLOY / "systemd" / "dynamo.env.example"
SYSUSERS = DEPLOY / "systemd" / "dynamo.sysusers"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"

FIELDS = frozenset(f.name for f in dataclasses.fields(config_mod.NodeConfig))
MIB = 1024 * 1024
# What a node needs besides the block cache: RocksDB's memtables (a fixed cap over all
# column families) and the Python process itself.
MEMTABLE_CAP = StoreConfig().total_write_buffer_bytes
PROCESS_BYTES = 128 * MIB
# On SIGTERM the node's aiohttp runner (created without shutdown_timeout) lets in-flight
# requests finish for up to this long before RocksDB is closed.
HTTP_DRAIN_S: float = (
    inspect.signature(web_runner.BaseRunner).parameters["shutdown_timeout"].default
)
CLOSE_S = 5.0  # cancelling tasks, the final WAL sync and closing RocksDB, with margin
# The nodes' well-known zone label, which the StatefulSets' node affinity requires.
ZONE_KEY = "topology.kubernetes.io/zone"
# A stand-in for what the downward API gives a pod (its name comes from its StatefulSet).
NAMESPACE = "prod"
SUBPROCESS_TIMEOUT_S = 120


# --- Loading and reading the manifests -------------------------------------------------------


def _manifest_files() -> list[Path]:
    return sorted(K8S_DIR.glob("*.yaml"))


@functools.cache
def _documents_by_file() -> tuple[tuple[Path, Any], ...]:
    """(file, object) for every object of every manifest file, in file order."""
    return tuple(
        (path, d)
        for path in _manifest_files()
        for d in yaml.safe_load_all(path.read_text())
        if d is not None
    )


def _documents() -> tuple[Any, ...]:
    return tuple(d for _, d in _documents_by_file())


def _objects(kind: str) -> list[dict[str, Any]]:
    # Not d["kind"]: a file that is no object is test_every_manifest_matches_its_schema's
    # to report, not a KeyError while collecting the tests.
    return [d for d in _documents() if isinstance(d, dict) and d.get("kind") == kind]


def _one(kind: str) -> dict[str, Any]:
    (obj,) = _objects(kind)
    return obj


def _headless() -> dict[str, Any]:
    (svc,) = [s for s in _objects("Service") if s["spec"].get("clusterIP") == "None"]
    return svc


def _api_services() -> list[dict[str, Any]]:
    return [s for s in _objects("Service") if s["spec"].get("clusterIP") != "None"]


def _statefulsets() -> list[dict[str, Any]]:
    """Every StatefulSet (one per zone), by name."""
    return sorted(_objects("StatefulSet"), key=lambda s: str(s["metadata"]["name"]))


def _statefulset(name: str) -> dict[str, Any]:
    (sts,) = [s for s in _statefulsets() if s["metadata"]["name"] == name]
    return sts


# Without a StatefulSet, the helpers below read the first one: the others may differ from
# it only in name and zone (test_zone_statefulsets_differ_only_in_name_and_zone).


def _pod_spec(sts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    if sts is None:
        sts = _statefulsets()[0]
    spec: dict[str, Any] = sts["spec"]["template"]["spec"]
    return spec


def _container(sts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    (container,) = _pod_spec(sts)["containers"]
    found: dict[str, Any] = container
    return found


def _pod_names(sts: Mapping[str, Any]) -> list[str]:
    """The pods a StatefulSet makes: <name>-0, <name>-1, ..."""
    return [f"{sts['metadata']['name']}-{i}" for i in range(sts["spec"]["replicas"])]


def _argv(container: Mapping[str, Any]) -> list[str]:
    return [*container["command"], *container.get("args", [])]


def _container_port(ref: int | str, sts: Mapping[str, Any] | None = None) -> int:
    """A Service's targetPort or a probe's port, as the container port it names."""
    ports = _container(sts)["ports"]
    if isinstance(ref, int):
        assert ref in {p["containerPort"] for p in ports}, f"no container port {ref}"
        return ref
    (port,) = [p["containerPort"] for p in ports if p["name"] == ref]
    return int(port)


def _env(container: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _is_subset(labels: Mapping[str, str], of: Mapping[str, str]) -> bool:
    return all(of.get(k) == v for k, v in labels.items())


def _quantity(q: str | int) -> float:
    """A Kubernetes quantity: "1Gi", "512Mi", "500m", "2"."""
    units = {
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
        "m": 1e-3,
    }
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(q))
    assert m is not None, f"bad quantity {q!r}"
    assert m[2] == "" or m[2] in units, f"bad quantity {q!r}"
    return float(m[1]) * units.get(m[2], 1)


# --- dynamo start, as the manifests and the unit call it -------------------------------------


def _start_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            start: argparse.ArgumentParser = action.choices["start"]
            start.exit_on_error = False
            return start
    raise AssertionError("dynamo has no subcommands")


def _start_options() -> set[str]:
    return {opt for a in _start_parser()._actions for opt in a.option_strings}


def _parse_start(argv: list[str]) -> argparse.Namespace:
    """``dynamo start ...`` parsed by the real parser; every flag and --set name must exist."""
    assert len(argv) >= 2, argv
    assert PurePosixPath(argv[0]).name == "dynamo", f"{argv[0]} is not the dynamo command"
    assert argv[1] == "start", f"runs `dynamo {argv[1]}`, not `dynamo start`"
    flags = argv[2:]
    known = _start_options()
    unknown = [f for f in flags if f.startswith("-") and f.partition("=")[0] not in known]
    assert not unknown, f"not flags of `dynamo start`: {unknown}; it has {sorted(known)}"
    ns, extra = _start_parser().parse_known_args(flags)
    assert not extra, f"`dynamo start` would refuse {extra}"
    for item in ns.set:
        name, sep, _ = item.partition("=")
        assert sep, f"--set {item!r} is not NAME=VALUE"
        assert name in FIELDS, f"--set {name}: not a setting of NodeConfig"
    return ns


def _expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion; an unknown $(VAR) would stay literally in the value."""

    def sub(m: re.Match[str]) -> str:
        assert m[1] in env, f"$({m[1]}) is not defined in the container's env"
        return env[m[1]]

    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, value)


def _clear_dynamo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DYNAMO_"):
            monkeypatch.delenv(name)


def _pod_config(
    sts: Mapping[str, Any], pod: str, secret_file: Path, monkeypatch: pytest.MonkeyPatch
) -> config_mod.NodeConfig:
    """The NodeConfig pod ``pod`` of ``sts`` gets in namespace ``NAMESPACE``: the
    container's args through ``dynamo start``'s parser and ``load_config``, its DYNAMO_*
    env through the environment, the secret file swapped for a local one."""
    assert pod in _pod_names(sts), f"{sts['metadata']['name']} makes no pod {pod}"
    container = _container(sts)
    downward = {"metadata.name": pod, "metadata.namespace": NAMESPACE}
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


# --- The image and the unit, read --------------------------------------------------------


def _dockerfile_lines() -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _dockerfile_uid() -> int:
    users = [line.split()[1] for line in _dockerfile_lines() if line.startswith("USER ")]
    assert users, "the image runs as root"
    uid = users[-1].partition(":")[0]
    assert uid.isdigit(), "USER must be numeric for runAsNonRoot"
    return int(uid)


class _UnitParser(configparser.ConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return optionstr  # systemd keys are case-sensitive


def _unit() -> configparser.ConfigParser:
    parser = _UnitParser(strict=False, interpolation=None, delimiters=("=",))
    parser.read_string(UNIT.read_text(), source=str(UNIT))
    return parser


def _exec_start() -> list[str]:
    return shlex.split(_unit()["Service"]["ExecStart"])


def _labels(sts: Mapping[str, Any]) -> dict[str, str]:
    """The labels of a StatefulSet's pods."""
    labels: dict[str, str] = sts["spec"]["template"]["metadata"]["labels"]
    return labels
