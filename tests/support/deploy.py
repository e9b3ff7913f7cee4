"""What the offline checks of ``deploy/`` share (``tests/unit/test_deploy_*.py``): the
Kubernetes manifests, the systemd unit and its environment file, and the Dockerfile,
read and checked against ``dynamo.node.config.NodeConfig`` and the flags of
``dynamo start``.

The manifests are validated against a structural schema written here (unknown keys are
errors, so a typo such as ``readinessprobe`` does not pass silently), then for what
makes the cluster work: the names, ports, probes, volumes and flags that must agree.
``kubectl`` and ``systemd-analyze`` add their own checks when they are installed.
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
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from aiohttp import web_runner

from dynamo.node import config as config_mod
from dynamo.storage.rocksdb import StoreConfig
from dynamo.tools.cli import build_parser

# pyyaml (a test dependency) ships no type stubs; as a module of type Any mypy accepts it
# whether or not types-PyYAML is installed.
yaml: Any = importlib.import_module("yaml")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes" / "dynamo.yaml"
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
# Stand-ins for what the downward API gives a pod.
POD_NAME = "dynamo-1"
NAMESPACE = "prod"
SUBPROCESS_TIMEOUT_S = 120


# --- A small structural schema language ------------------------------------------------------


class Opt:
    """An optional key."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema


class MapOf:
    """A non-empty mapping with free string keys (labels, annotations, resource lists)."""

    def __init__(self, value: Any) -> None:
        self.value = value


# A schema is a type or tuple of types; a frozenset of allowed literals; a dict of known
# keys (values may be Opt; any other key is an error); a one-item list (a non-empty list
# of that); or a MapOf.


def schema_errors(value: Any, schema: Any, where: str = "") -> Iterator[str]:
    if isinstance(schema, frozenset):
        if value not in schema:
            yield f"{where}: {value!r} is not one of {sorted(map(str, schema))}"
    elif isinstance(schema, type | tuple):
        types = schema if isinstance(schema, tuple) else (schema,)
        # bool is an int to isinstance(), not to Kubernetes.
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            yield f"{where}: expected {names}, got {type(value).__name__} {value!r}"
    elif isinstance(schema, MapOf):
        if not isinstance(value, dict) or not value:
            yield f"{where}: expected a non-empty mapping"
            return
        for k, v in value.items():
            if not isinstance(k, str):
                yield f"{where}: key {k!r} is not a string"
            yield from schema_errors(v, schema.value, f"{where}.{k}")
    elif isinstance(schema, list):
        (item,) = schema
        if not isinstance(value, list) or not value:
            yield f"{where}: expected a non-empty list"
            return
        for i, v in enumerate(value):
            yield from schema_errors(v, item, f"{where}[{i}]")
    elif isinstance(schema, dict):
        if not isinstance(value, dict):
            yield f"{where}: expected a mapping, got {type(value).__name__}"
            return
        for key, sub in schema.items():
            if key not in value:
                if not isinstance(sub, Opt):
                    yield f"{where}.{key}: required"
                continue
            yield from schema_errors(
                value[key], sub.schema if isinstance(sub, Opt) else sub, f"{where}.{key}"
            )
        for key in sorted(set(value) - set(schema), key=str):
            yield f"{where}.{key}: unknown field (a typo, or add it to the schema)"
    else:
        raise TypeError(f"bad schema at {where}: {schema!r}")


def _literal(*values: str) -> frozenset[str]:
    return frozenset(values)


LABELS = MapOf(str)
METADATA = {
    "name": str,
    "namespace": Opt(str),
    "labels": Opt(LABELS),
    "annotations": Opt(LABELS),
}
SELECTOR = {"matchLabels": LABELS}
PORT_REF = (int, str)  # a number or a container port's name
TCP = Opt(_literal("TCP"))

SERVICE = {
    "apiVersion": _literal("v1"),
    "kind": _literal("Service"),
    "metadata": METADATA,
    "spec": {
        "type": Opt(_literal("ClusterIP", "NodePort", "LoadBalancer")),
        "clusterIP": Opt(str),
        "publishNotReadyAddresses": Opt(bool),
        "selector": LABELS,
        "ports": [{"name": str, "port": int, "targetPort": PORT_REF, "protocol": TCP}],
    },
}
PROBE = {
    "httpGet": {"path": str, "port": PORT_REF, "scheme": Opt(_literal("HTTP", "HTTPS"))},
    "initialDelaySeconds": Opt(int),
    "periodSeconds": Opt(int),
    "timeoutSeconds": Opt(int),
    "failureThreshold": Opt(int),
    "successThreshold": Opt(int),
}
ENV_VAR = {
    "name": str,
    "value": Opt(str),  # Kubernetes wants a string: quote numbers
    "valueFrom": Opt(
        {
            "fieldRef": Opt({"fieldPath": str}),
            "secretKeyRef": Opt({"name": str, "key": str, "optional": Opt(bool)}),
        }
    ),
}
QUANTITIES = MapOf((str, int))
CONTAINER = {
    "name": str,
    "image": str,
    "imagePullPolicy": Opt(_literal("Always", "IfNotPresent", "Never")),
    "command": [str],
    "args": Opt([str]),
    "env": Opt([ENV_VAR]),
    "ports": [{"name": str, "containerPort": int, "protocol": TCP}],
    "volumeMounts": Opt(
        [{"name": str, "mountPath": str, "readOnly": Opt(bool), "subPath": Opt(str)}]
    ),
    "resources": {"requests": QUANTITIES, "limits": QUANTITIES},
    "startupProbe": Opt(PROBE),
    "readinessProbe": PROBE,
    "livenessProbe": PROBE,
    "lifecycle": Opt({"preStop": {"exec": {"command": [str]}}}),
    "securityContext": Opt(
        {
            "allowPrivilegeEscalation": Opt(bool),
            "readOnlyRootFilesystem": Opt(bool),
            "runAsNonRoot": Opt(bool),
            "capabilities": Opt({"drop": Opt([str]), "add": Opt([str])}),
        }
    ),
}
POD_SPEC = {
    "terminationGracePeriodSeconds": int,
    "securityContext": Opt(
        {
            "runAsNonRoot": Opt(bool),
            "runAsUser": Opt(int),
            "runAsGroup": Opt(int),
            "fsGroup": Opt(int),
            "fsGroupChangePolicy": Opt(_literal("OnRootMismatch", "Always")),
            "seccompProfile": Opt({"type": _literal("RuntimeDefault", "Localhost")}),
        }
    ),
    "affinity": Opt(
        {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": int,
                        "podAffinityTerm": {"topologyKey": str, "labelSelector": SELECTOR},
                    }
                ]
            }
        }
    ),
    "containers": [CONTAINER],
    "volumes": Opt(
        [
            {
                "name": str,
                "secret": Opt(
                    {
                        "secretName": str,
                        "defaultMode": Opt(int),
                        "items": Opt([{"key": str, "path": str}]),
                    }
                ),
                "emptyDir": Opt({"medium": Opt(str), "sizeLimit": Opt(str)}),
            }
        ]
    ),
}
STATEFULSET = {
    "apiVersion": _literal("apps/v1"),
    "kind": _literal("StatefulSet"),
    "metadata": METADATA,
    "spec": {
        "serviceName": str,
        "replicas": int,
        "podManagementPolicy": _literal("OrderedReady", "Parallel"),
        "updateStrategy": Opt({"type": _literal("RollingUpdate", "OnDelete")}),
        "minReadySeconds": Opt(int),
        "selector": SELECTOR,
        "template": {"metadata": {"labels": LABELS, "annotations": Opt(LABELS)}, "spec": POD_SPEC},
        "volumeClaimTemplates": [
            {
                "metadata": METADATA,
                "spec": {
                    "accessModes": [_literal("ReadWriteOnce", "ReadWriteOncePod")],
                    "storageClassName": Opt(str),
                    "resources": {"requests": {"storage": str}},
                },
            }
        ],
    },
}
PDB = {
    "apiVersion": _literal("policy/v1"),
    "kind": _literal("PodDisruptionBudget"),
    "metadata": METADATA,
    "spec": {
        "maxUnavailable": Opt((int, str)),
        "minAvailable": Opt((int, str)),
        "selector": SELECTOR,
    },
}
NETWORK_POLICY = {
    "apiVersion": _literal("networking.k8s.io/v1"),
    "kind": _literal("NetworkPolicy"),
    "metadata": METADATA,
    "spec": {
        "podSelector": SELECTOR,
        "policyTypes": [_literal("Ingress", "Egress")],
        "ingress": Opt(
            [
                {
                    "from": Opt(
                        [{"podSelector": Opt(SELECTOR), "namespaceSelector": Opt(SELECTOR)}]
                    ),
                    "ports": Opt([{"port": PORT_REF, "protocol": TCP}]),
                }
            ]
        ),
    },
}
SCHEMAS: dict[str, Any] = {
    "Service": SERVICE,
    "StatefulSet": STATEFULSET,
    "PodDisruptionBudget": PDB,
    "NetworkPolicy": NETWORK_POLICY,
}


def manifest_errors(doc: Any) -> list[str]:
    """Everything wrong with one Kubernetes object, as far as the schema can tell."""
    if not isinstance(doc, dict):
        return [f"a document is a {type(doc).__name__}, not a Kubernetes object"]
    errors = [
        f"{key}: required in every object"
        for key in ("apiVersion", "kind", "metadata")
        if not doc.get(key)
    ]
    if errors:
        return errors
    if not isinstance(doc["metadata"], dict) or not doc["metadata"].get("name"):
        return ["metadata.name: required in every object"]
    schema = SCHEMAS.get(doc["kind"])
    if schema is None:
        return [f"kind {doc['kind']}: no schema in this test; add one"]
    label = f"{doc['kind']}/{doc['metadata']['name']}"
    return list(schema_errors(doc, schema, label))


# --- Loading and reading the manifests -------------------------------------------------------


@functools.cache
def _documents() -> tuple[Any, ...]:
    return tuple(d for d in yaml.safe_load_all(K8S.read_text()) if d is not None)


def _objects(kind: str) -> list[dict[str, Any]]:
    return [d for d in _documents() if d["kind"] == kind]


def _one(kind: str) -> dict[str, Any]:
    (obj,) = _objects(kind)
    return obj


def _headless() -> dict[str, Any]:
    (svc,) = [s for s in _objects("Service") if s["spec"].get("clusterIP") == "None"]
    return svc


def _api_services() -> list[dict[str, Any]]:
    return [s for s in _objects("Service") if s["spec"].get("clusterIP") != "None"]


def _statefulset() -> dict[str, Any]:
    return _one("StatefulSet")


def _pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = _statefulset()["spec"]["template"]["spec"]
    return spec


def _container() -> dict[str, Any]:
    (container,) = _pod_spec()["containers"]
    found: dict[str, Any] = container
    return found


def _argv(container: Mapping[str, Any]) -> list[str]:
    return [*container["command"], *container.get("args", [])]


def _container_port(ref: int | str) -> int:
    """A Service's targetPort or a probe's port, as the container port it names."""
    ports = _container()["ports"]
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
