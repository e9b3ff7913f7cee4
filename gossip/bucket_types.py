"""Bucket types as a pure view of scuttlebutt state, as Riak's ``riak admin bucket-type``.

A bucket type is a namespace of buckets with shared props; its ``datatype`` (if any)
fixes the kind of every key in its buckets. Each node publishes, in its own state:

=================== ============================================= =========================
key                 value                                         meaning
=================== ============================================= =========================
``type:<name>``     ``{"created": [stamp, node], "props": {...},  what this node set or
                    "stamp": t, "active": bool}``                 last copied of the type
``types_held``      ``{name: [created stamp, node]}``              the types this node holds
=================== ============================================= =========================

Merging the records of every origin: the type's identity is its earliest creation
(``created``: stamp, then node id); of the records of that identity the props with the
greatest ``stamp`` (then origin) win, and it is active once any of them says so. A type
may be activated only when every ring member holds it (``types_held``), so no node
ever serves a typed bucket it does not know; ``status`` says which do not yet.
``datatype`` is fixed at creation: an update may not change it. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from gossip.scuttlebutt import Scuttlebutt

TYPE_PREFIX: Final = "type:"
KEY_HELD: Final = "types_held"
DEFAULT: Final = "default"
DATATYPES: Final = ("counter", "set", "gset", "map", "hll")
MAX_NAME_BYTES: Final = 255


class BucketTypeError(ValueError):
    """A bucket type operation that cannot be done; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class BucketType:
    name: str
    created: tuple[float, str]  # (stamp, node): the type's identity
    props: dict[str, Any]
    stamp: float  # of the props
    active: bool

    @property
    def datatype(self) -> str | None:
        d = self.props.get("datatype")
        return d if isinstance(d, str) else None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "active": self.active, "props": dict(self.props)}


def check_name(name: str) -> None:
    if not name or len(name.encode()) > MAX_NAME_BYTES or "\x00" in name or "/" in name:
        raise BucketTypeError(
            f"bucket type name {name!r}: use 1 to {MAX_NAME_BYTES} bytes, without '/' or NUL"
        )
    if name == DEFAULT:
        raise BucketTypeError("the default bucket type exists always and cannot be changed")


#: HyperLogLog precisions Riak accepts (``hll_precision``): 2**4 to 2**16 registers.
HLL_PRECISIONS = range(4, 17)


def check_datatype(props: Mapping[str, Any]) -> None:
    d = props.get("datatype")
    if d is not None and d not in DATATYPES:
        raise BucketTypeError(f"datatype {d!r}: use one of {', '.join(DATATYPES)}")
    p = props.get("hll_precision")
    if p is not None and (type(p) is not int or p not in HLL_PRECISIONS):
        raise BucketTypeError(
            f"hll_precision {p!r}: use an integer from {HLL_PRECISIONS[0]} to"
            f" {HLL_PRECISIONS[-1]} (14, the default, is 0.81% standard error)"
        )


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _record(value: object) -> tuple[tuple[float, str], dict[str, Any], float, bool] | None:
    if not isinstance(value, dict):
        return None
    created, props, stamp, active = (
        value.get("created"),
        value.get("props"),
        value.get("stamp"),
        value.get("active"),
    )
    if not (isinstance(created, list | tuple) and len(created) == 2):
        return None
    c_stamp, c_node = created
    if not (_finite(c_stamp) and isinstance(c_node, str) and _finite(stamp)):
        return None
    if not (isinstance(props, dict) and all(isinstance(k, str) for k in props)):
        return None
    if not isinstance(active, bool):
        return None
    assert isinstance(c_stamp, int | float)
    assert isinstance(stamp, int | float)
    return (float(c_stamp), c_node), dict(props), float(stamp), active


def types_of(sb: Scuttlebutt, origin: str) -> dict[str, BucketType]:
    """The bucket types one node's own state records."""
    return types(sb, [origin])


def types(sb: Scuttlebutt, origins: Iterable[str] | None = None) -> dict[str, BucketType]:
    """Every bucket type the gossip state knows, merged over their origins."""
    best: dict[str, tuple[tuple[float, str], dict[str, Any], tuple[float, str], bool]] = {}
    for origin in sb.nodes() if origins is None else origins:
        for key, value in sb.items(origin).items():
            if not key.startswith(TYPE_PREFIX):
                continue
            rec = _record(value)
            if rec is None:
                continue
            name = key[len(TYPE_PREFIX) :]
            created, props, stamp, active = rec
            cur = best.get(name)
            if cur is None or created < cur[0]:
                best[name] = (created, props, (stamp, origin), active)
            elif created == cur[0]:
                newer = (stamp, origin) > cur[2]
                best[name] = (
                    created,
                    props if newer else cur[1],
                    max((stamp, origin), cur[2]),
                    cur[3] or active,
                )
    return {
        name: BucketType(name, created, props, stamp[0], active)
        for name, (created, props, stamp, active) in sorted(best.items())
    }


def held(sb: Scuttlebutt, node: str) -> dict[str, tuple[float, str]]:
    """The types ``node`` says it holds, by name: their identity (creation)."""
    value = sb.get(node, KEY_HELD)
    out: dict[str, tuple[float, str]] = {}
    if isinstance(value, dict):
        for name, created in value.items():
            if isinstance(name, str) and isinstance(created, list | tuple) and len(created) == 2:
                stamp, origin = created
                if isinstance(stamp, int | float) and isinstance(origin, str):
                    out[name] = (float(stamp), origin)
    return out


def publish(sb: Scuttlebutt, bt: BucketType) -> None:
    """Set (or copy) ``bt`` in our own state."""
    sb.set_local(
        TYPE_PREFIX + bt.name,
        {
            "created": [bt.created[0], bt.created[1]],
            "props": dict(bt.props),
            "stamp": bt.stamp,
            "active": bt.active,
        },
    )


def publish_held(sb: Scuttlebutt, known: Mapping[str, BucketType]) -> bool:
    """Say which types we hold; True when that changed."""
    record = {name: [bt.created[0], bt.created[1]] for name, bt in sorted(known.items())}
    current = sb.get(sb.node_id, KEY_HELD)
    if current == record:
        return False
    sb.set_local(KEY_HELD, record)
    return True


def missing(sb: Scuttlebutt, bt: BucketType, members: Iterable[str]) -> list[str]:
    """The ``members`` that do not hold ``bt`` (its identity) yet."""
    return sorted(m for m in members if held(sb, m).get(bt.name) != bt.created)
