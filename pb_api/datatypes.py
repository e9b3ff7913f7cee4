"""Riak's data types over PB: ``DtFetchReq``/``DtUpdateReq`` to and from the service's
JSON-shaped operations and values (the same ones HTTP takes and gives, so the two
front ends cannot drift). Pure conversions, and the two handlers over the service.
"""

from __future__ import annotations

import secrets
from typing import Any

from http_api.errors import BadRequest
from http_api.service import NodeService
from http_api.types import Datatype, GetOptions, PutOptions, typed_bucket
from pb_api import convert
from pb_api.messages import Code, frame
from pb_api.proto import riak_dt_pb2 as dt

_FETCH_TYPE = {
    "counter": dt.DtFetchResp.COUNTER,
    "set": dt.DtFetchResp.SET,
    "map": dt.DtFetchResp.MAP,
    "hll": dt.DtFetchResp.HLL,
    "gset": dt.DtFetchResp.GSET,
}
_FIELD_TYPE = {
    dt.MapField.COUNTER: "counter",
    dt.MapField.SET: "set",
    dt.MapField.REGISTER: "register",
    dt.MapField.FLAG: "flag",
    dt.MapField.MAP: "map",
}
_FIELD_ENUM = {name: enum for enum, name in _FIELD_TYPE.items()}


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise BadRequest(f"a {what} is not UTF-8: this store keeps text elements")


def _field_name(f: dt.MapField) -> str:
    return f"{_text(f.name, 'map field name')}_{_FIELD_TYPE[f.type]}"


# --- Operations: PB -> the service's JSON shape ---------------------------------------------


def _set_op(op: dt.SetOp | dt.GSetOp | dt.HllOp) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if op.adds:
        out["add_all"] = [_text(e, "set element") for e in op.adds]
    removes = getattr(op, "removes", ())
    if removes:
        out["remove_all"] = [_text(e, "set element") for e in removes]
    return out


def _map_op(op: dt.MapOp) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if op.removes:
        out["remove"] = [_field_name(f) for f in op.removes]
    updates: dict[str, Any] = {}
    for u in op.updates:
        kind = _FIELD_TYPE[u.field.type]
        name = _field_name(u.field)
        if kind == "counter":
            c = u.counter_op
            has = u.HasField("counter_op") and c.HasField("increment")
            updates[name] = {"increment": c.increment if has else 1}
        elif kind == "set":
            updates[name] = _set_op(u.set_op)
        elif kind == "register":
            if not u.HasField("register_op"):
                raise BadRequest(f"map field {name}: a register update needs register_op")
            updates[name] = {"assign": _text(u.register_op, "register value")}
        elif kind == "flag":
            if not u.HasField("flag_op"):
                raise BadRequest(f"map field {name}: a flag update needs flag_op")
            updates[name] = "enable" if u.flag_op == dt.MapUpdate.ENABLE else "disable"
        else:
            updates[name] = _map_op(u.map_op)
    if updates:
        out["update"] = updates
    return out


def op_from_pb(kind: str, op: dt.DtOp) -> dict[str, Any]:
    """A ``DtOp`` as the JSON operation for a data type of ``kind``."""
    if kind == "counter" and op.HasField("counter_op"):
        c = op.counter_op
        return {"increment": c.increment if c.HasField("increment") else 1}
    if kind == "set" and op.HasField("set_op"):
        return _set_op(op.set_op)
    if kind == "gset" and op.HasField("gset_op"):
        return _set_op(op.gset_op)
    if kind == "hll" and op.HasField("hll_op"):
        return _set_op(op.hll_op)
    if kind == "map" and op.HasField("map_op"):
        return _map_op(op.map_op)
    raise BadRequest(f"the bucket holds {kind} data types: send a {kind} operation")


# --- Values: the service's JSON shape -> PB -------------------------------------------------


def _entries(value: dict[str, Any]) -> list[dt.MapEntry]:
    out = []
    for name in sorted(value):
        fname, _, ftype = name.rpartition("_")
        v = value[name]
        e = dt.MapEntry(field=dt.MapField(name=fname.encode(), type=_FIELD_ENUM[ftype]))
        if ftype == "counter":
            e.counter_value = int(v)
        elif ftype == "set":
            e.set_value.extend(x.encode() for x in v)
        elif ftype == "register":
            e.register_value = str(v).encode()
        elif ftype == "flag":
            e.flag_value = bool(v)
        else:
            e.map_value.extend(_entries(v))
        out.append(e)
    return out


def value_to_pb(kind: str, value: Any, into: Any, prefix: str = "") -> None:
    """Set ``value`` on a ``DtValue`` (``prefix`` "") or a ``DtUpdateResp``."""
    if kind == "counter":
        into.counter_value = int(value)
    elif kind == "set":
        into.set_value.extend(x.encode() for x in value)
    elif kind == "gset":
        into.gset_value.extend(x.encode() for x in value)
    elif kind == "hll":
        into.hll_value = int(value)
    else:
        into.map_value.extend(_entries(value))


# --- Handlers ------------------------------------------------------------------------------


def _bucket(req: dt.DtFetchReq | dt.DtUpdateReq, svc: NodeService) -> bytes:
    btype = req.type
    svc.check_type(btype)
    return typed_bucket(btype, convert.bucket(req.bucket))


async def fetch(svc: NodeService, req: dt.DtFetchReq) -> bytes:
    bucket = _bucket(req, svc)
    opts = GetOptions(
        r=convert.quorum(req, "r"),
        pr=convert.quorum(req, "pr"),
        basic_quorum=convert.flag(req, "basic_quorum"),
        notfound_ok=convert.flag(req, "notfound_ok"),
        timeout_ms=convert.timeout_ms(req),
        sloppy_quorum=convert.flag(req, "sloppy_quorum"),
        n_val=convert.n_val(req),
    )
    got: Datatype = await svc.fetch_datatype(bucket, convert.key(req.key), opts)
    resp = dt.DtFetchResp(type=_FETCH_TYPE[got.kind])
    if got.found:
        value = dt.DtValue()
        value_to_pb(got.kind, got.value, value)
        resp.value.CopyFrom(value)
        if req.include_context and got.context:
            resp.context = got.context
    return frame(Code.DT_FETCH_RESP, resp)


async def update(svc: NodeService, req: dt.DtUpdateReq) -> bytes:
    bucket = _bucket(req, svc)
    kind = svc.bucket_props(bucket).extra.get("datatype")
    if not isinstance(kind, str):
        raise BadRequest("the bucket holds plain objects, not data types: use RpbPutReq")
    chosen = None if req.HasField("key") else secrets.token_urlsafe(18).encode()
    key = convert.key(req.key) if chosen is None else chosen
    opts = PutOptions(
        w=convert.quorum(req, "w"),
        dw=convert.quorum(req, "dw"),
        pw=convert.quorum(req, "pw"),
        timeout_ms=convert.timeout_ms(req),
        return_body=req.return_body,
        sloppy_quorum=convert.flag(req, "sloppy_quorum"),
        n_val=convert.n_val(req),
    )
    context = req.context if req.HasField("context") and req.context else None
    got = await svc.update_datatype(bucket, key, op_from_pb(kind, req.op), context, opts)
    resp = dt.DtUpdateResp()
    if chosen is not None:
        resp.key = chosen
    if got is not None and req.return_body:
        value_to_pb(got.kind, got.value, resp)
        if req.include_context and got.context:
            resp.context = got.context
    return frame(Code.DT_UPDATE_RESP, resp)
