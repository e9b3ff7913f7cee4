"""Riak PB messages to and from the service's types. Pure.

The PB front end serves the same ``http_api.service`` Protocol as HTTP, so both
paths meet here: quorums (an integer, or Riak's symbolic values at the top of the
uint32 range), options, contents and bucket props. A value the service cannot take
is a ``BadRequest`` naming the field and what to send instead, as on HTTP. Text
fields must be UTF-8 without control characters, because the same object is served
over HTTP, where they become headers.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf.message import Message

from http_api.errors import BadRequest, URITooLong
from http_api.types import (
    MAX_BUCKET_BYTES,
    MAX_KEY_BYTES,
    QUORUM_WORDS,
    BucketProps,
    Content,
    DeleteOptions,
    FetchResult,
    GetOptions,
    PutOptions,
    QuorumValue,
    Sibling,
)
from pb_api.proto import riak_kv_pb2 as kv
from pb_api.proto import riak_pb2 as core

UINT32_MAX = 2**32 - 1
#: Riak's symbolic quorums (riak_pb_kv_codec.hrl): one, quorum, all, default.
SYMBOLIC: dict[int, QuorumValue] = {
    UINT32_MAX - 1: "one",
    UINT32_MAX - 2: "quorum",
    UINT32_MAX - 3: "all",
    UINT32_MAX - 4: "default",
}
_PB_OF_WORD = {word: code for code, word in SYMBOLIC.items()}
MAX_QUORUM = 64  # n_val is at most 64: a larger integer is no quorum
MAX_TIMEOUT_MS = 3_600_000
DEFAULT_TYPE = b"default"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has(msg: Message, name: str) -> bool:
    return msg.HasField(name)


# --- Scalars ------------------------------------------------------------------------------


def quorum(msg: Message, name: str) -> QuorumValue:
    """A quorum field: absent is ``default``; Riak's symbolic values are the words."""
    if not msg.HasField(name):
        return "default"
    value: int = getattr(msg, name)
    if value in SYMBOLIC:
        return SYMBOLIC[value]
    if value > MAX_QUORUM:
        raise BadRequest(
            f"{name}={value} is not a quorum: use an integer up to n_val, or Riak's symbolic"
            f" one ({UINT32_MAX - 1}), quorum ({UINT32_MAX - 2}), all ({UINT32_MAX - 3}) or"
            f" default ({UINT32_MAX - 4})"
        )
    return value


def quorum_to_pb(value: QuorumValue) -> int:
    return _PB_OF_WORD[value] if isinstance(value, str) else value


def flag(msg: Message, name: str) -> bool | None:
    return bool(getattr(msg, name)) if msg.HasField(name) else None


def timeout_ms(msg: Message) -> int | None:
    if not msg.HasField("timeout"):
        return None
    value: int = msg.timeout  # type: ignore[attr-defined]
    if not 0 < value <= MAX_TIMEOUT_MS:
        raise BadRequest(
            f"timeout={value} is not a timeout: use milliseconds, from 1 to {MAX_TIMEOUT_MS}"
        )
    return value


def n_val(msg: Message) -> int | None:
    if not msg.HasField("n_val"):
        return None
    value: int = msg.n_val  # type: ignore[attr-defined]
    if not 1 <= value <= MAX_QUORUM:
        raise BadRequest(f"n_val={value}: use 1 up to the bucket's n_val")
    return value


def text(raw: bytes, what: str) -> str:
    """UTF-8 text, or a ``BadRequest`` naming ``what``."""
    return _text(raw, what)


def bucket(raw: bytes) -> bytes:
    _text(raw, "bucket")
    if not raw:
        raise BadRequest("the bucket is empty")
    if b"\x00" in raw:
        raise BadRequest("the bucket holds a NUL byte: use a name without one")
    if len(raw) > MAX_BUCKET_BYTES:
        raise BadRequest(f"the bucket is {len(raw)} bytes: at most {MAX_BUCKET_BYTES}")
    return raw


def key(raw: bytes) -> bytes:
    _text(raw, "key")
    if not raw:
        raise BadRequest("the key is empty: leave it out for the server to choose one")
    if len(raw) > MAX_KEY_BYTES:
        raise URITooLong(f"the key is {len(raw)} bytes: at most {MAX_KEY_BYTES}")
    return raw


def _text(raw: bytes, what: str) -> str:
    """UTF-8 text: buckets, keys and metadata are served over HTTP too."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise BadRequest(f"the {what} is not UTF-8: this store keeps text names and metadata")


def _header_text(raw: bytes, what: str) -> str:
    text = _text(raw, what)
    if _CONTROL.search(text):
        raise BadRequest(f"the {what} holds a control character: HTTP could not serve it")
    return text


def _name(raw: bytes, what: str) -> str:
    text = _text(raw, what)
    if not _TOKEN.fullmatch(text):
        raise BadRequest(f"the {what} {text!r} is not a header token: use letters, digits, -_.")
    return text


# --- Options ------------------------------------------------------------------------------


def get_options(req: kv.RpbGetReq) -> GetOptions:
    return GetOptions(
        r=quorum(req, "r"),
        pr=quorum(req, "pr"),
        basic_quorum=flag(req, "basic_quorum"),
        notfound_ok=flag(req, "notfound_ok"),
        timeout_ms=timeout_ms(req),
        sloppy_quorum=flag(req, "sloppy_quorum"),
        n_val=n_val(req),
    )


def put_options(req: kv.RpbPutReq) -> PutOptions:
    return PutOptions(
        w=quorum(req, "w"),
        dw=quorum(req, "dw"),
        pw=quorum(req, "pw"),
        timeout_ms=timeout_ms(req),
        return_body=req.return_body or req.return_head,
        if_none_match=req.if_none_match,
        sloppy_quorum=flag(req, "sloppy_quorum"),
        n_val=n_val(req),
    )


def delete_options(req: kv.RpbDelReq) -> DeleteOptions:
    return DeleteOptions(
        rw=quorum(req, "rw"),
        r=quorum(req, "r"),
        w=quorum(req, "w"),
        dw=quorum(req, "dw"),
        pr=quorum(req, "pr"),
        pw=quorum(req, "pw"),
        timeout_ms=timeout_ms(req),
        sloppy_quorum=flag(req, "sloppy_quorum"),
        n_val=n_val(req),
    )


# --- Contents -----------------------------------------------------------------------------


def content_from_pb(c: kv.RpbContent, max_value_bytes: int) -> Content:
    """A new sibling from a put (its time is the coordinator's to stamp)."""
    from http_api.errors import RequestTooLarge

    if len(c.value) > max_value_bytes:
        raise RequestTooLarge(
            f"value is {len(c.value)} bytes, above the limit of {max_value_bytes}: store less"
        )
    ctype = _header_text(c.content_type, "content_type") if c.content_type else ""
    return Content(
        value=c.value,
        content_type=ctype or DEFAULT_CONTENT_TYPE,
        charset=_header_text(c.charset, "charset") or None if c.HasField("charset") else None,
        content_encoding=(
            _header_text(c.content_encoding, "content_encoding") or None
            if c.HasField("content_encoding")
            else None
        ),
        user_meta=tuple(
            (_name(p.key, "usermeta name"), _header_text(p.value, "usermeta value"))
            for p in c.usermeta
        ),
        links=tuple(
            (
                _header_text(link.bucket, "link bucket"),
                _header_text(link.key, "link key"),
                _header_text(link.tag, "link tag"),
            )
            for link in c.links
        ),
        indexes=tuple(
            (_name(p.key, "index name"), _header_text(p.value, "index value")) for p in c.indexes
        ),
    )


def content_to_pb(s: Sibling, head: bool = False) -> kv.RpbContent:
    c = s.content
    out = kv.RpbContent(
        value=b"" if head else c.value,
        content_type=c.content_type.encode(),
        vtag=s.vtag.encode(),
        last_mod=c.last_modified_us // 1_000_000,
        last_mod_usecs=c.last_modified_us % 1_000_000,
    )
    if c.charset:
        out.charset = c.charset.encode()
    if c.content_encoding:
        out.content_encoding = c.content_encoding.encode()
    for name, value in c.user_meta:
        out.usermeta.add(key=name.encode(), value=value.encode())
    for b, k, tag in c.links:
        out.links.add(bucket=b.encode(), key=k.encode(), tag=tag.encode())
    for name, value in c.indexes:
        out.indexes.add(key=name.encode(), value=value.encode())
    if c.deleted:
        out.deleted = True
    return out


def get_resp(result: FetchResult, *, head: bool, deleted_vclock: bool) -> kv.RpbGetResp:
    """A read's answer: every sibling (tombstones flagged) when one is live; nothing but,
    on request, the tombstones' context when none is (Riak's not found)."""
    if not result.found:
        resp = kv.RpbGetResp()
        if deleted_vclock and result.tombstone and result.context:
            resp.vclock = result.context
        return resp
    return kv.RpbGetResp(
        content=[content_to_pb(s, head) for s in result.siblings], vclock=result.context
    )


def put_resp(result: FetchResult | None, *, head: bool, key: bytes | None) -> kv.RpbPutResp:
    resp = kv.RpbPutResp()
    if result is not None and result.siblings:
        resp.content.extend(content_to_pb(s, head) for s in result.siblings)
        resp.vclock = result.context
    if key is not None:
        resp.key = key
    return resp


# --- Bucket props -------------------------------------------------------------------------

_QUORUM_PROPS = ("r", "w", "dw", "rw", "pr", "pw")
_BOOL_PROPS = ("allow_mult", "last_write_wins", "basic_quorum", "notfound_ok")
_INT_PROPS = ("old_vclock", "young_vclock", "big_vclock", "small_vclock")
_UNSUPPORTED = {
    "consistent": "strongly consistent buckets are not supported",
    "write_once": "write_once buckets are not supported",
    "search": "Riak Search is not supported",
    "search_index": "Riak Search is not supported",
    "repl": "multi-datacenter replication is not supported",
}


def _modfun(value: object) -> core.RpbModFun | None:
    if isinstance(value, dict):
        mod, fun = value.get("mod"), value.get("fun")
        if isinstance(mod, str) and isinstance(fun, str):
            return core.RpbModFun(module=mod.encode(), function=fun.encode())
    return None


def props_to_pb(props: BucketProps) -> core.RpbBucketProps:
    data: dict[str, Any] = props.to_json("")
    out = core.RpbBucketProps(
        n_val=props.n_val,
        allow_mult=props.allow_mult,
        last_write_wins=props.last_write_wins,
        basic_quorum=props.basic_quorum,
        notfound_ok=props.notfound_ok,
        has_precommit=False,
        has_postcommit=False,
    )
    for name in _QUORUM_PROPS:
        setattr(out, name, quorum_to_pb(getattr(props, name)))
    for name in _INT_PROPS:
        value = data.get(name)
        if isinstance(value, int) and 0 <= value <= UINT32_MAX:
            setattr(out, name, value)
    for name in ("chash_keyfun", "linkfun"):
        mf = _modfun(data.get(name))
        if mf is not None:
            getattr(out, name).CopyFrom(mf)
    backend = data.get("backend")
    if isinstance(backend, str):
        out.backend = backend.encode()
    datatype = data.get("datatype")
    if isinstance(datatype, str):
        out.datatype = datatype.encode()
    precision = data.get("hll_precision")
    if isinstance(precision, int) and 0 <= precision <= UINT32_MAX:
        out.hll_precision = precision
    return out


def props_from_pb(p: core.RpbBucketProps, type_props: bool = False) -> dict[str, object]:
    """The overrides a set-bucket request asks for (only the fields it carries)."""
    if p.precommit or p.postcommit or p.has_precommit or p.has_postcommit:
        raise BadRequest("commit hooks are not supported: leave precommit and postcommit out")
    overrides: dict[str, object] = {}
    for name, why in _UNSUPPORTED.items():
        if p.HasField(name) and getattr(p, name):
            raise BadRequest(f"bucket prop {name!r}: {why}")
    if p.HasField("datatype") and not type_props:
        raise BadRequest(
            "bucket prop 'datatype' is fixed by a bucket type: set it when creating the type"
        )
    if p.HasField("datatype"):
        overrides["datatype"] = _text(p.datatype, "datatype")
    if p.HasField("hll_precision"):
        overrides["hll_precision"] = p.hll_precision
    if p.HasField("n_val"):
        overrides["n_val"] = p.n_val
    for name in _QUORUM_PROPS:
        if p.HasField(name):
            q = quorum(p, name)
            if q == "default":
                raise BadRequest(f"bucket prop {name!r} cannot be 'default': it is the default")
            overrides[name] = q
    for name in _BOOL_PROPS:
        if p.HasField(name):
            overrides[name] = getattr(p, name)
    for name in _INT_PROPS:
        if p.HasField(name):
            overrides[name] = getattr(p, name)
    if p.HasField("backend"):
        overrides["backend"] = _text(p.backend, "backend")
    return overrides


__all__ = [
    "DEFAULT_TYPE",
    "QUORUM_WORDS",
    "SYMBOLIC",
    "UINT32_MAX",
    "bucket",
    "content_from_pb",
    "content_to_pb",
    "delete_options",
    "get_options",
    "get_resp",
    "key",
    "props_from_pb",
    "props_to_pb",
    "put_options",
    "put_resp",
    "quorum",
    "quorum_to_pb",
    "text",
]
