"""Data types in our client's PB transport: the JSON operations our data type objects
gather (``http_api.client_datatypes``) as ``DtOp`` messages, and ``DtFetchResp`` /
``DtUpdateResp`` values back in the JSON shape the HTTP API gives. Pure conversions;
the operations are ``PbClientCore``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pb_api.proto import riak_dt_pb2 as dt

KIND = {
    dt.DtFetchResp.COUNTER: "counter",
    dt.DtFetchResp.SET: "set",
    dt.DtFetchResp.MAP: "map",
    dt.DtFetchResp.HLL: "hll",
    dt.DtFetchResp.GSET: "gset",
}
_FIELD_ENUM = {
    "counter": dt.MapField.COUNTER,
    "set": dt.MapField.SET,
    "register": dt.MapField.REGISTER,
    "flag": dt.MapField.FLAG,
    "map": dt.MapField.MAP,
}
_FIELD_NAME = {enum: name for name, enum in _FIELD_ENUM.items()}


def _elements(op: Mapping[str, Any], add: str, one: str) -> list[bytes]:
    items = list(op.get(f"{add}_all", ()))
    if one in op:
        items.append(op[one])
    return [str(x).encode() for x in items]


def _field(name: str) -> dt.MapField:
    base, _, kind = name.rpartition("_")
    if kind not in _FIELD_ENUM or not base:
        raise ValueError(f"map field {name!r}: name it <name>_<type> (counter, set, ...)")
    return dt.MapField(name=base.encode(), type=_FIELD_ENUM[kind])


def _counter_op(op: Any) -> dt.CounterOp:
    if isinstance(op, int):
        return dt.CounterOp(increment=op)
    return dt.CounterOp(increment=int(op.get("increment", 0)) - int(op.get("decrement", 0)))


def _set_op(op: Mapping[str, Any]) -> dt.SetOp:
    return dt.SetOp(adds=_elements(op, "add", "add"), removes=_elements(op, "remove", "remove"))


def map_op(op: Mapping[str, Any]) -> dt.MapOp:
    removes = op.get("remove", [])
    names = [removes] if isinstance(removes, str) else removes
    out = dt.MapOp(removes=[_field(n) for n in names])
    for name, sub in op.get("update", {}).items():
        u = out.updates.add(field=_field(name))
        kind = name.rpartition("_")[2]
        if kind == "counter":
            u.counter_op.CopyFrom(_counter_op(sub))
        elif kind == "set":
            u.set_op.CopyFrom(_set_op(sub))
        elif kind == "register":
            u.register_op = str(sub["assign"] if isinstance(sub, Mapping) else sub).encode()
        elif kind == "flag":
            u.flag_op = dt.MapUpdate.ENABLE if sub == "enable" else dt.MapUpdate.DISABLE
        else:
            u.map_op.CopyFrom(map_op(sub))
    return out


def op_to_pb(kind: str, op: Mapping[str, Any]) -> dt.DtOp:
    """The JSON operation for a data type of ``kind`` as a ``DtOp``."""
    if kind == "counter":
        return dt.DtOp(counter_op=_counter_op(op))
    if kind == "set":
        return dt.DtOp(set_op=_set_op(op))
    if kind == "gset":
        return dt.DtOp(gset_op=dt.GSetOp(adds=_elements(op, "add", "add")))
    if kind == "hll":
        return dt.DtOp(hll_op=dt.HllOp(adds=_elements(op, "add", "add")))
    if kind == "map":
        return dt.DtOp(map_op=map_op(op))
    raise ValueError(f"unknown data type {kind!r}: counter, set, gset, hll or map")


def _entries(entries: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in entries:
        kind = _FIELD_NAME[e.field.type]
        name = f"{e.field.name.decode()}_{kind}"
        if kind == "counter":
            out[name] = e.counter_value
        elif kind == "set":
            out[name] = [x.decode() for x in e.set_value]
        elif kind == "register":
            out[name] = e.register_value.decode()
        elif kind == "flag":
            out[name] = e.flag_value
        else:
            out[name] = _entries(e.map_value)
    return out


def value_from_pb(kind: str, msg: Any) -> Any:
    """The value of a ``DtValue`` or ``DtUpdateResp`` as the HTTP API gives it."""
    if kind == "counter":
        return msg.counter_value
    if kind == "set":
        return [x.decode() for x in msg.set_value]
    if kind == "gset":
        return [x.decode() for x in msg.gset_value]
    if kind == "hll":
        return msg.hll_value
    return _entries(msg.map_value)
