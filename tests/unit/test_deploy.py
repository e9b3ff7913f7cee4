"""Offline checks of ``deploy/``: the Kubernetes manifests, the systemd unit and its
environment file, and the Dockerfile, against ``dynamo.node.config.NodeConfig`` and the
flags of ``dynamo start``.

The manifests are validated against a structural schema written here (unknown keys are
errors, so a typo such as ``readinessprobe`` does not pass silently), then for what
makes the cluster work: the names, ports, probes, volumes and flags that must agree.
``kubectl`` and ``systemd-analyze`` add their own checks when they are installed.
"""

from __future__ import annotations

import argparse
import configparser
import copy
import dataclasses
import functools
import importlib
import inspect
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
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


# --- Kubernetes --------------------------------------------------------------------------------


def test_every_manifest_matches_its_schema() -> None:
    docs = _documents()
    assert docs, f"{K8S} holds no objects"
    errors = [e for d in docs for e in manifest_errors(d)]
    assert not errors, "\n".join(errors)
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), f"duplicate objects: {names}"
    assert {k for k, _ in names} >= {"Service", "StatefulSet", "PodDisruptionBudget"}


def test_the_schema_check_finds_mistakes() -> None:
    sts = copy.deepcopy(_statefulset())
    del sts["spec"]["serviceName"]
    sts["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    sts["spec"]["template"]["spec"]["containers"][0]["env"][0] = {"name": "X", "value": 8098}
    sts["spec"]["replicas"] = True
    errors = "\n".join(manifest_errors(sts))
    assert "spec.serviceName: required" in errors
    assert "readinessprobe: unknown field" in errors
    assert "env[0].value: expected str, got int" in errors
    assert "spec.replicas: expected int, got bool" in errors
    assert manifest_errors({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    assert manifest_errors({"kind": "Service", "metadata": {"name": "x"}})
    assert manifest_errors({"apiVersion": "v1", "kind": "Service", "metadata": {}})


def test_headless_service_publishes_every_pod_for_peer_discovery() -> None:
    peers = _headless()
    assert peers["spec"]["publishNotReadyAddresses"] is True
    assert _statefulset()["spec"]["serviceName"] == peers["metadata"]["name"]
    (port,) = peers["spec"]["ports"]
    assert _container_port(port["targetPort"]) == port["port"]


def test_api_service_exposes_http_on_8098() -> None:
    (api,) = _api_services()
    (port,) = api["spec"]["ports"]
    assert port["port"] == 8098
    assert _container_port(port["targetPort"]) == 8098


def test_services_pdb_and_policy_select_the_statefulset_pods() -> None:
    sts = _statefulset()
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert _is_subset(sts["spec"]["selector"]["matchLabels"], labels)
    for svc in _objects("Service"):
        assert _is_subset(svc["spec"]["selector"], labels), svc["metadata"]["name"]
    assert _is_subset(_one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    for policy in _objects("NetworkPolicy"):
        assert _is_subset(policy["spec"]["podSelector"]["matchLabels"], labels)
    anti = _pod_spec()["affinity"]["podAntiAffinity"]
    for term in anti["preferredDuringSchedulingIgnoredDuringExecution"]:
        assert _is_subset(term["podAffinityTerm"]["labelSelector"]["matchLabels"], labels)


def test_statefulset_shape() -> None:
    spec = _statefulset()["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec.get("updateStrategy", {}).get("type", "RollingUpdate") == "RollingUpdate"
    pdb = _one("PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1
    assert "minAvailable" not in pdb
    image = _container()["image"]
    assert re.fullmatch(r"[\w./-]+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?", image), image
    assert ":" in image.rpartition("/")[2], f"image {image} has no tag"


def test_container_runs_dynamo_start_with_existing_flags() -> None:
    container = _container()
    argv = _argv(container)
    assert argv[:2] == ["dynamo", "start"]
    _parse_start(argv)
    for name in _env(container):
        if name.startswith("DYNAMO_"):
            field = name.removeprefix("DYNAMO_").lower()
            assert field in FIELDS, f"env {name}: NodeConfig has no setting {field}"


def test_pod_identity_comes_from_the_downward_api() -> None:
    env = _env(_container())
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    ns = _parse_start(_argv(_container()))
    assert ns.node_id == "$(POD_NAME)"
    peers = _headless()["metadata"]["name"]
    assert ns.host == f"$(POD_NAME).{peers}.$(NAMESPACE).svc.cluster.local"
    assert ns.http_host == "0.0.0.0"


def test_pod_config_loads_and_agrees_with_the_manifest(
    pod_config: config_mod.NodeConfig,
) -> None:
    cfg = pod_config
    sts = _statefulset()
    peers = _headless()["metadata"]["name"]
    assert cfg.node_id == POD_NAME
    assert cfg.host == f"{POD_NAME}.{peers}.{NAMESPACE}.svc.cluster.local"
    assert cfg.http_bind == "0.0.0.0"
    assert cfg.http_port == _container_port("http") == 8098
    assert cfg.peer_port == _container_port("peer")
    assert cfg.secret() is not None
    assert 1 <= cfg.n_val <= sts["spec"]["replicas"]
    # Seeds: the stable names of the first pods, on the peer port.
    assert len(cfg.seeds) >= 2, "with one seed, that pod has no seed but itself"
    pattern = rf"{re.escape(sts['metadata']['name'])}-(\d+)\.{re.escape(peers)}\."
    pattern += rf"{NAMESPACE}\.svc\.cluster\.local:{cfg.peer_port}"
    for seed in cfg.seeds:
        m = re.fullmatch(pattern, seed)
        assert m is not None, f"seed {seed} is not a pod of the StatefulSet on the peer port"
        assert int(m[1]) < sts["spec"]["replicas"], f"seed {seed}: no such pod"


def test_volume_mounts_reference_defined_volumes(pod_config: config_mod.NodeConfig) -> None:
    spec = _pod_spec()
    container = _container()
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    claims = {c["metadata"]["name"] for c in _statefulset()["spec"]["volumeClaimTemplates"]}
    assert not volumes.keys() & claims, "a volume and a claim share a name"
    mounts = container["volumeMounts"]
    paths = [m["mountPath"] for m in mounts]
    assert len(paths) == len(set(paths)), f"mount paths repeat: {paths}"
    for m in mounts:
        assert m["name"] in volumes or m["name"] in claims, f"mount {m['name']}: no such volume"
    mounted = {m["name"] for m in mounts}
    assert mounted >= volumes.keys() | claims, "a volume or claim is never mounted"

    def mount_of(path: str) -> dict[str, Any]:
        under = [m for m in mounts if PurePosixPath(path).is_relative_to(m["mountPath"])]
        assert under, f"{path} is on no volume"
        found: dict[str, Any] = max(under, key=lambda m: len(m["mountPath"]))
        return found

    # RocksDB on the persistent claim.
    assert mount_of(str(pod_config.data_dir))["name"] in claims
    for claim in _statefulset()["spec"]["volumeClaimTemplates"]:
        assert _quantity(claim["spec"]["resources"]["requests"]["storage"]) >= 2**30
    # The cluster secret: a file of a Secret volume, read-only, not world-readable.
    ns = _parse_start(_argv(container))
    secret_path = PurePosixPath(ns.cluster_secret_file)
    mount = mount_of(str(secret_path))
    assert mount.get("readOnly") is True
    secret = volumes[mount["name"]].get("secret")
    assert secret is not None, f"{secret_path} is not on a Secret volume"
    assert secret.get("defaultMode", 0o644) & 0o007 == 0, "the secret is world-readable"
    relative = secret_path.relative_to(mount["mountPath"]).as_posix()
    if "items" in secret:
        assert relative in {i["path"] for i in secret["items"]}
    # A read-only root file system leaves only mounts writable.
    if container.get("securityContext", {}).get("readOnlyRootFilesystem"):
        assert "/tmp" in paths


def test_probes_ping_the_http_port(pod_config: config_mod.NodeConfig) -> None:
    container = _container()
    scheme = "HTTP" if pod_config.http_tls_cert_file is None else "HTTPS"
    probes = [k for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in container]
    assert {"readinessProbe", "livenessProbe"} <= set(probes)
    for kind in probes:
        get = container[kind]["httpGet"]
        assert get["path"] == "/ping", f"{kind} asks {get['path']}"
        assert _container_port(get["port"]) == pod_config.http_port, kind
        assert get.get("scheme", "HTTP") == scheme, kind


def test_ports_agree_between_services_container_and_policy(
    pod_config: config_mod.NodeConfig,
) -> None:
    ports = _container()["ports"]
    assert len({p["name"] for p in ports}) == len(ports)
    assert {p["name"]: p["containerPort"] for p in ports} == {
        "http": pod_config.http_port,
        "peer": pod_config.peer_port,
    }
    for svc in _objects("Service"):
        for p in svc["spec"]["ports"]:
            target = _container_port(p["targetPort"])
            assert p["port"] == target, f"{svc['metadata']['name']}: {p['port']} -> {target}"
    labels = _statefulset()["spec"]["template"]["metadata"]["labels"]
    for policy in _objects("NetworkPolicy"):
        rules = policy["spec"].get("ingress", [])
        for rule in rules:
            for p in rule.get("ports", []):
                _container_port(p["port"])
        peer_rules = [
            r
            for r in rules
            if any(_container_port(p["port"]) == pod_config.peer_port for p in r.get("ports", []))
        ]
        assert peer_rules, "the NetworkPolicy shuts the peer port"
        for rule in peer_rules:
            sources = rule.get("from", [])
            assert sources, "the NetworkPolicy opens the peer port to everyone"
            for source in sources:
                assert _is_subset(source["podSelector"]["matchLabels"], labels)
    annotations = _statefulset()["spec"]["template"]["metadata"].get("annotations", {})
    if "prometheus.io/port" in annotations:
        assert int(annotations["prometheus.io/port"]) == pod_config.http_port


def test_resources_fit_the_rocksdb_settings(pod_config: config_mod.NodeConfig) -> None:
    resources = _container()["resources"]
    for what in ("cpu", "memory"):
        assert what in resources["requests"], what
        assert what in resources["limits"], what
        assert _quantity(resources["requests"][what]) <= _quantity(resources["limits"][what])
    need = pod_config.block_cache_bytes + MEMTABLE_CAP + PROCESS_BYTES
    limit = _quantity(resources["limits"]["memory"])
    assert limit >= need, f"memory limit {limit / MIB:.0f} MiB < {need / MIB:.0f} MiB needed"


def test_pods_get_time_for_a_clean_stop() -> None:
    spec = _pod_spec()
    container = _container()
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {})
    sleep = 0.0
    if pre_stop.get("command", [""])[0] == "sleep":
        sleep = float(pre_stop["command"][1])
    grace = spec["terminationGracePeriodSeconds"]
    assert grace >= sleep + HTTP_DRAIN_S + CLOSE_S, f"{grace}s is too short for a clean stop"


def test_pods_run_as_the_image_user() -> None:
    security = _pod_spec()["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == _dockerfile_uid() != 0
    assert security.get("fsGroup") is not None, "the data volume would not be writable"


def test_kubectl_builds_the_manifests_offline(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the manifests were checked by the schema only")
    shutil.copy(K8S, tmp_path / "dynamo.yaml")
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - dynamo.yaml\n")
    out = subprocess.run(
        [kubectl, "kustomize", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    built = [d for d in yaml.safe_load_all(out.stdout) if d is not None]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in _documents()
    )


def test_kubectl_validates_against_the_api_server_schema() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    if os.environ.get("DEPLOY_TEST_KUBE_VALIDATE") != "1":
        pytest.skip(
            "validating field names against the OpenAPI schema needs an API server; set "
            "DEPLOY_TEST_KUBE_VALIDATE=1 to use the current kubectl context (client-side "
            "dry run: reads the schema, creates nothing)"
        )
    out = subprocess.run(
        [kubectl, "create", "--dry-run=client", "--validate=strict", "-o", "name", "-f", str(K8S)],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert out.returncode == 0, out.stderr


# --- Dockerfile -------------------------------------------------------------------------------


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


def test_dockerfile_installs_the_project_on_python_311_slim() -> None:
    lines = _dockerfile_lines()
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert bases, "no FROM"
    assert all(b == "python:3.11-slim" for b in bases), bases
    assert any(re.search(r"\bpip install\b.*'\.(\[[\w,]+\])?'", line) for line in lines)
    copied = {
        src.rstrip("/")
        for line in lines
        if line.startswith("COPY ") and "--from" not in line
        for src in line.split()[1:-1]
    }
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {"dynamo", "ring", "gossip", "handoff", "http_api"}
    assert copied >= packages | {"pyproject.toml", pyproject["project"]["readme"]}
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert not copied & ignored, f"the .dockerignore drops {copied & ignored}"
    exposed = {int(p) for line in lines if line.startswith("EXPOSE ") for p in line.split()[1:]}
    assert exposed == {8098, 8099}
    assert _dockerfile_uid() == _pod_spec()["securityContext"]["runAsUser"]
    (entry,) = [line for line in lines if line.startswith("ENTRYPOINT ")]
    assert entry == 'ENTRYPOINT ["dynamo"]'
    # The same install path as the systemd unit's ExecStart.
    venv_bin = str(PurePosixPath(_exec_start()[0]).parent)
    assert any(line.startswith("ENV PATH=" + venv_bin) for line in lines)


def test_pip_install_ships_every_subpackage() -> None:
    """A non-editable install (the Dockerfile's, the systemd install's) must ship every
    subpackage ``dynamo.tools.cli`` imports, not only the top-level packages."""
    from setuptools import find_packages  # type: ignore[import-untyped]

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = set(find_packages(where=str(ROOT), include=include))
    expected = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("dynamo", "ring", "gossip", "handoff", "http_api")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert expected <= shipped, f"a pip install would not ship {sorted(expected - shipped)}"


# --- systemd ----------------------------------------------------------------------------------


class _UnitParser(configparser.ConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return optionstr  # systemd keys are case-sensitive


def _unit() -> configparser.ConfigParser:
    parser = _UnitParser(strict=False, interpolation=None, delimiters=("=",))
    parser.read_string(UNIT.read_text(), source=str(UNIT))
    return parser


def _unit_values(key: str) -> list[str]:
    """Every value of a key systemd accumulates (configparser keeps only the last)."""
    return [
        line.partition("=")[2].strip()
        for line in UNIT.read_text().splitlines()
        if line.partition("=")[0].strip() == key
    ]


def _exec_start() -> list[str]:
    return shlex.split(_unit()["Service"]["ExecStart"])


def _seconds(span: str) -> float:
    """A systemd time span: "90", "90s", "1min 30s"."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "ms": 1e-3}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span)
    assert parts, span
    assert "".join(n + u for n, u in parts) == span.replace(" ", ""), span
    for number, unit in parts:
        assert unit in units, f"unit {unit} in {span}"
        total += float(number) * units[unit]
    return total


def _env_example() -> tuple[dict[str, str], set[str]]:
    """(variables set, names of every variable shown, commented out or not)."""
    values: dict[str, str] = {}
    shown: set[str] = set()
    for n, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        m = re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", stripped)
        if m is not None:
            shown.add(m[1])
            continue
        if stripped.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", stripped)
        assert m is not None, f"{ENV_EXAMPLE.name}:{n}: not NAME=value: {line!r}"
        assert m[1] not in values, f"{ENV_EXAMPLE.name}:{n}: {m[1]} set twice"
        assert "#" not in m[2], f"{ENV_EXAMPLE.name}:{n}: systemd keeps a trailing comment"
        values[m[1]] = m[2]
        shown.add(m[1])
    return values, shown


def test_unit_sections_and_service_settings() -> None:
    unit = _unit()
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    assert "network-online.target" in unit["Unit"]["After"].split()
    assert "network-online.target" in unit["Unit"]["Wants"].split()
    service = unit["Service"]
    assert service["Type"] == "simple"
    assert service["User"] not in ("", "root")
    assert service.get("DynamicUser") is None
    assert service["EnvironmentFile"] == "/etc/dynamo/dynamo.env"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert _seconds(service["TimeoutStopSec"]) >= HTTP_DRAIN_S + CLOSE_S
    assert int(service["LimitNOFILE"]) >= 65536
    for key, want in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service.get(key) == want, f"{key}={service.get(key)}, want {want!r}"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    users = [line.split() for line in SYSUSERS.read_text().splitlines() if line.startswith("u ")]
    assert [u[1] for u in users] == [service["User"]], "dynamo.sysusers makes another user"


def test_unit_exec_start_runs_dynamo_start() -> None:
    argv = _exec_start()
    assert PurePosixPath(argv[0]).is_absolute(), "systemd wants an absolute path"
    assert argv[0] == "/opt/dynamo/.venv/bin/dynamo"
    _parse_start(argv)


def test_env_example_names_only_node_config_settings() -> None:
    values, shown = _env_example()
    for name in shown:
        assert name.startswith("DYNAMO_"), f"{name}: not a dynamo setting"
        field = name.removeprefix("DYNAMO_").lower()
        assert field in FIELDS, f"{name}: NodeConfig has no setting {field}"
    for field in (
        "node_id",
        "host",
        "http_port",
        "peer_port",
        "data_dir",
        "seeds",
        "cluster_name",
        "cluster_secret_file",
    ):
        assert f"DYNAMO_{field.upper()}" in values, f"the example does not set {field}"
    assert "DYNAMO_CLUSTER_SECRET" not in values, "the secret belongs in its file"
    assert values["DYNAMO_HOST"] not in ("0.0.0.0", "127.0.0.1", "localhost")


def test_env_example_loads_and_fits_the_unit(secret_file: Path) -> None:
    values, _ = _env_example()
    unit_secret = PurePosixPath(values["DYNAMO_CLUSTER_SECRET_FILE"])
    assert unit_secret.is_relative_to("/etc/dynamo")
    cfg = config_mod.load({}, env={**values, "DYNAMO_CLUSTER_SECRET_FILE": str(secret_file)})
    assert cfg.secret() is not None
    assert all(s.endswith(f":{cfg.peer_port}") for s in cfg.seeds)
    assert len(cfg.seeds) >= 2, "with one seed, that node has no seed but itself"
    # Same ports as the Kubernetes pods and the image.
    assert (cfg.http_port, cfg.peer_port) == (_container_port("http"), _container_port("peer"))
    # The node may write only under ReadWritePaths= (ProtectSystem=strict).
    writable = [p.lstrip("-") for v in _unit_values("ReadWritePaths") for p in v.split()]
    assert any(PurePosixPath(cfg.data_dir).is_relative_to(p) for p in writable), (
        f"{cfg.data_dir} is not under ReadWritePaths {writable}"
    )


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit was checked with configparser only")
    # verify also checks that ExecStart's program exists: point it at a stand-in.
    stub = tmp_path / "dynamo"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = UNIT.read_text().replace(f"ExecStart={_exec_start()[0]}", f"ExecStart={stub}", 1)
    assert str(stub) in text
    unit = tmp_path / "dynamo.service"
    unit.write_text(text)
    out = subprocess.run(
        [analyze, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
        cwd=tmp_path,
    )
    ours = [line for line in (out.stdout + out.stderr).splitlines() if "dynamo.service" in line]
    assert out.returncode == 0, out.stdout + out.stderr
    assert not ours, out.stdout + out.stderr


def test_systemd_analyze_security(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: hardening was checked key by key only")
    shutil.copy(UNIT, tmp_path / "dynamo.service")
    out = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", "dynamo.service"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
        cwd=tmp_path,
    )
    if "--offline" in out.stderr and out.returncode != 0:
        pytest.skip(f"this systemd-analyze cannot review a unit file offline: {out.stderr}")
    m = re.search(r"Overall exposure level for dynamo\.service: (\d+\.\d+)", out.stdout)
    assert m is not None, out.stdout + out.stderr
    assert float(m[1]) <= 2.0, f"exposure {m[1]} (0 best, 10 worst):\n{out.stdout}"
