"""Offline checks of the Kubernetes manifests: schema, names, ports, probes, volumes, flags."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from dynamo.node import config as config_mod
from tests.support.deploy import (
    CLOSE_S,
    FIELDS,
    HTTP_DRAIN_S,
    K8S,
    MEMTABLE_CAP,
    MIB,
    NAMESPACE,
    POD_NAME,
    PROCESS_BYTES,
    SUBPROCESS_TIMEOUT_S,
    _api_services,
    _argv,
    _container,
    _container_port,
    _dockerfile_uid,
    _documents,
    _env,
    _headless,
    _is_subset,
    _objects,
    _one,
    _parse_start,
    _pod_spec,
    _quantity,
    _statefulset,
    manifest_errors,
    yaml,
)

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
