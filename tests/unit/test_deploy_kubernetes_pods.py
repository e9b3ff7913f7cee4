"""Offline checks of one zone's pods in the Kubernetes manifests: flags, identity, config,
volumes, probes, ports, resources, stop time and user. Each test runs once per zone's
StatefulSet (see ``tests/unit/conftest.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from dynamo.node import config as config_mod
from tests.support.deploy import (
    CLOSE_S,
    FIELDS,
    HTTP_DRAIN_S,
    MEMTABLE_CAP,
    MIB,
    NAMESPACE,
    PROCESS_BYTES,
    _api_services,
    _argv,
    _container,
    _container_port,
    _dockerfile_uid,
    _env,
    _headless,
    _is_subset,
    _labels,
    _objects,
    _parse_start,
    _pod_names,
    _pod_spec,
    _quantity,
    _statefulsets,
)


def _admitted_from(rules: list[Any], port: int, sts: Mapping[str, Any]) -> list[Any]:
    """The ``from`` of each NetworkPolicy ingress rule that admits ``port`` (None: any)."""
    return [
        r.get("from")
        for r in rules
        if any(_container_port(p["port"], sts) == port for p in r.get("ports", []))
    ]


# --- One zone's pods -----------------------------------------------------------------------


def test_container_runs_dynamo_start_with_existing_flags(statefulset: dict[str, Any]) -> None:
    container = _container(statefulset)
    argv = _argv(container)
    assert argv[:2] == ["dynamo", "start"]
    ns = _parse_start(argv)
    # --processes would put several nodes behind the probes' one port: one node per pod.
    assert ns.processes is None, "the pod runs several node processes"
    for name in _env(container):
        if name.startswith("DYNAMO_"):
            field = name.removeprefix("DYNAMO_").lower()
            assert field in FIELDS, f"env {name}: NodeConfig has no setting {field}"


def test_pod_identity_comes_from_the_downward_api(statefulset: dict[str, Any]) -> None:
    container = _container(statefulset)
    env = _env(container)
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    ns = _parse_start(_argv(container))
    assert ns.node_id == "$(POD_NAME)"
    peers = _headless()["metadata"]["name"]
    assert ns.host == f"$(POD_NAME).{peers}.$(NAMESPACE).svc.cluster.local"
    assert ns.http_host == "0.0.0.0"


def test_pod_config_loads_and_agrees_with_the_manifest(
    statefulset: dict[str, Any], pod_config: config_mod.NodeConfig
) -> None:
    cfg = pod_config
    pod = _pod_names(statefulset)[-1]
    peers = _headless()["metadata"]["name"]
    assert cfg.node_id == pod
    assert cfg.host == f"{pod}.{peers}.{NAMESPACE}.svc.cluster.local"
    assert cfg.http_bind == "0.0.0.0"
    assert cfg.http_port == _container_port("http", statefulset) == 8098
    assert cfg.pb_port == _container_port("pb", statefulset) == 8087
    assert cfg.peer_port == _container_port("peer", statefulset)
    assert cfg.secret() is not None
    pods = sum(s["spec"]["replicas"] for s in _statefulsets())
    assert 1 <= cfg.n_val <= pods


def test_volume_mounts_reference_defined_volumes(
    statefulset: dict[str, Any], pod_config: config_mod.NodeConfig
) -> None:
    spec = _pod_spec(statefulset)
    container = _container(statefulset)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    claims = {c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]}
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
    for claim in statefulset["spec"]["volumeClaimTemplates"]:
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


def test_probes_ping_the_http_port(
    statefulset: dict[str, Any], pod_config: config_mod.NodeConfig
) -> None:
    container = _container(statefulset)
    scheme = "HTTP" if pod_config.http_tls_cert_file is None else "HTTPS"
    probes = [k for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in container]
    assert {"readinessProbe", "livenessProbe"} <= set(probes)
    for kind in probes:
        get = container[kind]["httpGet"]
        assert get["path"] == "/ping", f"{kind} asks {get['path']}"
        assert _container_port(get["port"], statefulset) == pod_config.http_port, kind
        assert get.get("scheme", "HTTP") == scheme, kind


def test_ports_agree_between_services_container_and_policy(
    statefulset: dict[str, Any], pod_config: config_mod.NodeConfig
) -> None:
    ports = _container(statefulset)["ports"]
    assert len({p["name"] for p in ports}) == len(ports)
    assert {p["name"]: p["containerPort"] for p in ports} == {
        "http": pod_config.http_port,
        "pb": pod_config.pb_port,
        "peer": pod_config.peer_port,
    }
    for svc in _objects("Service"):
        for p in svc["spec"]["ports"]:
            target = _container_port(p["targetPort"], statefulset)
            assert p["port"] == target, f"{svc['metadata']['name']}: {p['port']} -> {target}"
    labels = _labels(statefulset)
    for policy in _objects("NetworkPolicy"):
        rules = policy["spec"].get("ingress", [])
        for rule in rules:
            for p in rule.get("ports", []):
                _container_port(p["port"], statefulset)
        peer_rules = [
            r
            for r in rules
            if any(
                _container_port(p["port"], statefulset) == pod_config.peer_port
                for p in r.get("ports", [])
            )
        ]
        assert peer_rules, "the NetworkPolicy shuts the peer port"
        for rule in peer_rules:
            sources = rule.get("from", [])
            assert sources, "the NetworkPolicy opens the peer port to everyone"
            for source in sources:
                assert _is_subset(source["podSelector"]["matchLabels"], labels)
    annotations = statefulset["spec"]["template"]["metadata"].get("annotations", {})
    if "prometheus.io/port" in annotations:
        assert int(annotations["prometheus.io/port"]) == pod_config.http_port


def test_pb_port_agrees_between_container_service_and_policy(
    statefulset: dict[str, Any], pod_config: config_mod.NodeConfig
) -> None:
    assert pod_config.pb_port == _container_port("pb", statefulset) == 8087
    (api,) = _api_services()
    served = [
        p
        for p in api["spec"]["ports"]
        if _container_port(p["targetPort"], statefulset) == pod_config.pb_port
    ]
    assert [p["port"] for p in served] == [pod_config.pb_port], "the client Service has no PB"
    for policy in _objects("NetworkPolicy"):
        rules = policy["spec"].get("ingress", [])
        pb_from = _admitted_from(rules, pod_config.pb_port, statefulset)
        assert pb_from, "the NetworkPolicy shuts the PB port"
        assert pb_from == _admitted_from(rules, pod_config.http_port, statefulset), (
            "PB clients are admitted from elsewhere than HTTP clients"
        )


def test_resources_fit_the_rocksdb_settings(
    statefulset: dict[str, Any], pod_config: config_mod.NodeConfig
) -> None:
    resources = _container(statefulset)["resources"]
    for what in ("cpu", "memory"):
        assert what in resources["requests"], what
        assert what in resources["limits"], what
        assert _quantity(resources["requests"][what]) <= _quantity(resources["limits"][what])
    need = pod_config.block_cache_bytes + MEMTABLE_CAP + PROCESS_BYTES
    limit = _quantity(resources["limits"]["memory"])
    assert limit >= need, f"memory limit {limit / MIB:.0f} MiB < {need / MIB:.0f} MiB needed"


def test_pods_get_time_for_a_clean_stop(statefulset: dict[str, Any]) -> None:
    container = _container(statefulset)
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {})
    sleep = 0.0
    if pre_stop.get("command", [""])[0] == "sleep":
        sleep = float(pre_stop["command"][1])
    grace = _pod_spec(statefulset)["terminationGracePeriodSeconds"]
    assert grace >= sleep + HTTP_DRAIN_S + CLOSE_S, f"{grace}s is too short for a clean stop"


def test_pods_run_as_the_image_user(statefulset: dict[str, Any]) -> None:
    security = _pod_spec(statefulset)["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == _dockerfile_uid() != 0
    assert security.get("fsGroup") is not None, "the data volume would not be writable"
