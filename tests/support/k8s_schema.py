"""A small structural schema language for the Kubernetes manifests of ``deploy/``, and
their schema: unknown keys are errors, so a typo such as ``readinessprobe`` does not pass
silently. Used by ``tests/support/deploy.py`` and ``tests/unit/test_deploy_kubernetes.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
NODE_SELECTOR_REQUIREMENT = {
    "key": str,
    "operator": _literal("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"),
    "values": Opt([str]),
}
NODE_SELECTOR_TERM = {
    "matchExpressions": Opt([NODE_SELECTOR_REQUIREMENT]),
    "matchFields": Opt([NODE_SELECTOR_REQUIREMENT]),
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
            "nodeAffinity": Opt(
                {
                    "requiredDuringSchedulingIgnoredDuringExecution": Opt(
                        {"nodeSelectorTerms": [NODE_SELECTOR_TERM]}
                    ),
                    "preferredDuringSchedulingIgnoredDuringExecution": Opt(
                        [{"weight": int, "preference": NODE_SELECTOR_TERM}]
                    ),
                }
            ),
            "podAntiAffinity": Opt(
                {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": int,
                            "podAffinityTerm": {"topologyKey": str, "labelSelector": SELECTOR},
                        }
                    ]
                }
            ),
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
        "updateStrategy": Opt(
            {
                "type": _literal("RollingUpdate", "OnDelete"),
                "rollingUpdate": Opt({"partition": Opt(int), "maxUnavailable": Opt((int, str))}),
            }
        ),
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
