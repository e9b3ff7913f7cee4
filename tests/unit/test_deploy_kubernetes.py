"""Offline checks of the Kubernetes manifests: schema, names, zones, ports, probes, volumes,
flags. A test that takes ``statefulset`` (or ``pod_config``) runs once per zone's
StatefulSet; the others look at all of them together."""

from __future__ import annotations

import copy
import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from dynamo.node import config as config_mod
from tests.support.deploy import (
    K8S_DIR,
    NAMESPACE,
    SUBPROCESS_TIMEOUT_S,
    ZONE_KEY,
    _api_services,
    _argv,
    _container,
    _container_port,
    _documents,
    _documents_by_file,
    _headless,
    _is_subset,
    _labels,
    _manifest_files,
    _objects,
    _one,
    _parse_start,
    _pod_config,
    _pod_names,
    _pod_spec,
    _statefulsets,
    yaml,
)
from tests.support.k8s_schema import manifest_errors

# Each StatefulSet's own label: its zone. With the shared app.kubernetes.io/name it selects
# that StatefulSet's pods and no other's.
ZONE_LABEL = "dynamo/zone"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _zone(sts: Mapping[str, Any]) -> str:
    """The one zone a StatefulSet's node affinity lets its pods run in."""
    name = sts["metadata"]["name"]
    affinity = _pod_spec(sts).get("affinity", {}).get("nodeAffinity", {})
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    assert required is not None, f"{name}: no required node affinity: pods run in any zone"
    zones: set[str] = set()
    # Terms are ORed: every one of them must pin the zone.
    for term in required["nodeSelectorTerms"]:
        pins = [e for e in term.get("matchExpressions", []) if e["key"] == ZONE_KEY]
        assert pins, f"{name}: a nodeSelectorTerm without {ZONE_KEY} allows any zone"
        for e in pins:
            assert e["operator"] == "In", f"{name}: {ZONE_KEY} {e['operator']} pins no zone"
            assert len(e.get("values", [])) == 1, f"{name}: {ZONE_KEY} in {e.get('values')}"
            zones.add(e["values"][0])
    assert len(zones) == 1, f"{name}: node affinity allows zones {sorted(zones)}"
    return zones.pop()


def _zone_neutral(value: Any, subs: Mapping[str, str]) -> Any:
    """``value`` with every string equal to a key of ``subs`` replaced by its value."""
    if isinstance(value, dict):
        return {k: _zone_neutral(v, subs) for k, v in value.items()}
    if isinstance(value, list):
        return [_zone_neutral(v, subs) for v in value]
    if isinstance(value, str):
        return subs.get(value, value)
    return value


def _differences(a: Any, b: Any, where: str = "") -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys(), key=str):
            yield from _differences(a.get(key), b.get(key), f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _differences(x, y, f"{where}[{i}]")
    elif a != b:
        yield f"{where}: {a!r} != {b!r}"


# --- The objects ---------------------------------------------------------------------------


def test_every_manifest_matches_its_schema() -> None:
    files = _manifest_files()
    assert files, f"{K8S_DIR} holds no manifests"
    for path in files:
        assert any(p == path for p, _ in _documents_by_file()), f"{path.name} holds no objects"
    errors = [f"{p.name}: {e}" for p, d in _documents_by_file() for e in manifest_errors(d)]
    assert not errors, "\n".join(errors)
    names = [(d["kind"], d["metadata"]["name"]) for d in _documents()]
    assert len(names) == len(set(names)), f"duplicate objects: {names}"
    assert {k for k, _ in names} >= {
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }


def test_the_schema_check_finds_mistakes() -> None:
    sts = copy.deepcopy(_statefulsets()[0])
    pod = sts["spec"]["template"]["spec"]
    del sts["spec"]["serviceName"]
    pod["containers"][0]["readinessprobe"] = {}
    pod["containers"][0]["env"][0] = {"name": "X", "value": 8098}
    sts["spec"]["replicas"] = True
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    terms["nodeSelectorTerms"][0]["matchExpressions"][0]["operator"] = "in"
    errors = "\n".join(manifest_errors(sts))
    assert "spec.serviceName: required" in errors
    assert "readinessprobe: unknown field" in errors
    assert "env[0].value: expected str, got int" in errors
    assert "spec.replicas: expected int, got bool" in errors
    assert "matchExpressions[0].operator: 'in' is not one of" in errors
    assert manifest_errors({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    assert manifest_errors({"kind": "Service", "metadata": {"name": "x"}})
    assert manifest_errors({"apiVersion": "v1", "kind": "Service", "metadata": {}})


def test_headless_service_publishes_the_pods_of_every_zone() -> None:
    peers = _headless()
    assert peers["spec"]["publishNotReadyAddresses"] is True
    (port,) = peers["spec"]["ports"]
    for sts in _statefulsets():
        name = sts["metadata"]["name"]
        assert sts["spec"]["serviceName"] == peers["metadata"]["name"], name
        assert _is_subset(peers["spec"]["selector"], _labels(sts)), name
        assert _container_port(port["targetPort"], sts) == port["port"], name


def test_api_service_exposes_http_on_8098_and_pb_on_8087() -> None:
    (api,) = _api_services()
    ports = {p["name"]: p for p in api["spec"]["ports"]}
    assert {name: p["port"] for name, p in ports.items()} == {"http": 8098, "pb": 8087}
    for sts in _statefulsets():
        for p in ports.values():
            assert _container_port(p["targetPort"], sts) == p["port"], sts["metadata"]["name"]


def test_services_pdb_and_policy_select_every_statefulset() -> None:
    selectors = {
        f"Service/{s['metadata']['name']}": s["spec"]["selector"] for s in _objects("Service")
    }
    pdb = _one("PodDisruptionBudget")
    selectors["PodDisruptionBudget"] = pdb["spec"]["selector"]["matchLabels"]
    for policy in _objects("NetworkPolicy"):
        name = f"NetworkPolicy/{policy['metadata']['name']}"
        selectors[name] = policy["spec"]["podSelector"]["matchLabels"]
        for i, rule in enumerate(policy["spec"].get("ingress", [])):
            sources = [src for src in rule.get("from", []) if "podSelector" in src]
            for j, src in enumerate(sources):
                selectors[f"{name} ingress[{i}] source {j}"] = src["podSelector"]["matchLabels"]
    for sts in _statefulsets():
        labels = _labels(sts)
        name = sts["metadata"]["name"]
        assert _is_subset(sts["spec"]["selector"]["matchLabels"], labels), name
        for what, selector in selectors.items():
            assert _is_subset(selector, labels), f"{what} does not select the pods of {name}"
        anti = _pod_spec(sts)["affinity"]["podAntiAffinity"]
        for term in anti["preferredDuringSchedulingIgnoredDuringExecution"]:
            assert _is_subset(term["podAffinityTerm"]["labelSelector"]["matchLabels"], labels)


def test_each_statefulset_selects_only_its_own_pods() -> None:
    for a, b in itertools.permutations(_statefulsets(), 2):
        assert not _is_subset(a["spec"]["selector"]["matchLabels"], _labels(b)), (
            f"{a['metadata']['name']}'s selector matches the pods of {b['metadata']['name']}"
        )


def test_statefulsets_do_not_share_a_pod_name_prefix() -> None:
    """Pod dynamo-a-1-0 would be ambiguous between StatefulSets dynamo-a and dynamo-a-1, and
    with ``--processes`` node dynamo-a-1's first process is node dynamo-a-1-1 too."""
    names = [s["metadata"]["name"] for s in _statefulsets()]
    for a, b in itertools.permutations(names, 2):
        assert not b.startswith(f"{a}-"), f"pods of {b} look like pods of {a}"
    for sts in _statefulsets():
        for pod in _pod_names(sts):  # the pod's host name, the first label of its DNS name
            assert DNS_LABEL.fullmatch(pod), f"pod name {pod} is not a DNS label"


def test_statefulset_shape(statefulset: dict[str, Any]) -> None:
    spec = statefulset["spec"]
    assert spec["replicas"] >= 1
    assert spec["podManagementPolicy"] == "Parallel"
    # One StatefulSet per zone rolls on its own: RollingUpdate would restart a pod of
    # each zone at once when every zone's file changes together.
    assert spec.get("updateStrategy", {}).get("type") == "OnDelete"
    assert spec.get("minReadySeconds", 0) >= 5, "the PDB would count a pod back too early"
    image = _container(statefulset)["image"]
    assert re.fullmatch(r"[\w./-]+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?", image), image
    assert ":" in image.rpartition("/")[2], f"image {image} has no tag"


def test_zone_statefulsets_differ_only_in_name_and_zone() -> None:
    """Every zone runs the same pods (image, flags, resources, probes, replicas): only the
    StatefulSet's name and its zone (label, node affinity, --location) may differ."""

    def neutral(sts: Mapping[str, Any]) -> Any:
        zone = _zone(sts)
        subs = {sts["metadata"]["name"]: "<name>", zone: "<zone>"}
        subs[f"--location={zone}"] = "--location=<zone>"
        return _zone_neutral(sts, subs)

    first, *others = _statefulsets()
    assert others, "one StatefulSet: the cluster runs in one zone"
    for sts in others:
        diff = list(_differences(neutral(first), neutral(sts)))
        names = f"{first['metadata']['name']} and {sts['metadata']['name']}"
        assert not diff, f"{names} differ beyond name and zone:\n" + "\n".join(diff)


def test_pdb_allows_one_pod_down_and_every_key_keeps_a_quorum(
    pod_config: config_mod.NodeConfig,
) -> None:
    pdb = _one("PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1
    assert "minAvailable" not in pdb
    # A pod down costs a key at most one replica (a key's replicas are on distinct pods).
    quorum = pod_config.n_val // 2 + 1
    assert pod_config.n_val - pdb["maxUnavailable"] >= quorum


# --- Zones ---------------------------------------------------------------------------------


def test_location_is_the_zone_the_pods_are_pinned_to(
    statefulset: dict[str, Any], pod_config: config_mod.NodeConfig
) -> None:
    zone = _zone(statefulset)
    ns = _parse_start(_argv(_container(statefulset)))
    assert ns.location == zone, f"--location={ns.location}, node affinity requires {zone}"
    assert pod_config.location == pod_config.effective_location == zone
    assert _labels(statefulset)[ZONE_LABEL] == zone
    assert statefulset["spec"]["selector"]["matchLabels"][ZONE_LABEL] == zone


def test_zones_are_distinct_and_each_holds_one_replica_of_a_key(
    monkeypatch: pytest.MonkeyPatch, secret_file: Path
) -> None:
    statefulsets = _statefulsets()
    zones = [_zone(s) for s in statefulsets]
    assert len(zones) == len(set(zones)), f"two StatefulSets in one zone: {zones}"
    for sts in statefulsets:
        cfg = _pod_config(sts, _pod_names(sts)[0], secret_file, monkeypatch)
        # More replicas than zones would put two replicas of some keys in one zone, and
        # losing that zone would cost those keys their quorum.
        assert cfg.n_val <= len(zones), f"n_val {cfg.n_val} with {len(zones)} zones"


def test_seeds_are_pods_of_the_statefulsets_on_the_peer_port_in_several_zones(
    monkeypatch: pytest.MonkeyPatch, secret_file: Path
) -> None:
    statefulsets = _statefulsets()
    owner = {pod: sts for sts in statefulsets for pod in _pod_names(sts)}
    peers = re.escape(_headless()["metadata"]["name"])
    pattern = rf"([a-z0-9-]+)\.{peers}\.{NAMESPACE}\.svc\.cluster\.local:(\d+)"
    for sts in statefulsets:
        name = sts["metadata"]["name"]
        cfg = _pod_config(sts, _pod_names(sts)[-1], secret_file, monkeypatch)
        assert len(cfg.seeds) >= 2, f"{name}: with one seed, that pod has no seed but itself"
        zones = set()
        for seed in cfg.seeds:
            m = re.fullmatch(pattern, seed)
            assert m is not None, f"{name}: seed {seed} is no pod's name in the headless Service"
            assert m[1] in owner, f"{name}: seed {seed}: no StatefulSet makes pod {m[1]}"
            assert int(m[2]) == _container_port("peer", owner[m[1]]), f"{seed}: not its peer port"
            zones.add(_zone(owner[m[1]]))
        assert len(zones) >= min(2, len(statefulsets)), (
            f"{name}: every seed is in zone {zones}: losing it leaves no seed"
        )


# --- kubectl, when installed ---------------------------------------------------------------


def test_kubectl_builds_the_manifests_offline(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the manifests were checked by the schema only")
    files = _manifest_files()
    for path in files:
        shutil.copy(path, tmp_path / path.name)
    resources = "".join(f"  - {path.name}\n" for path in files)
    (tmp_path / "kustomization.yaml").write_text(f"resources:\n{resources}")
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
    files = [arg for path in _manifest_files() for arg in ("-f", str(path))]
    out = subprocess.run(
        [kubectl, "create", "--dry-run=client", "--validate=strict", "-o", "name", *files],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert out.returncode == 0, out.stderr
