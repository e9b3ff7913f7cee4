"""Our Python client's PB transport, sans-I/O: the same operations as the HTTP client
(``http_api.client.ClientCore``), each a generator of :class:`Call` steps (and
``Backoff``), answered by the shells in ``pb_api.client``. Objects come back as the
HTTP client's ``KVObject``; resolvers and the read-modify-write ``update`` are shared.

Riak's PB errors carry only a message (``RpbErrorResp.errcode`` is always 1); the
exception is chosen from it as our HTTP front would have (``error_for``): an unmet
quorum or a timeout is ``Unavailable`` (``update`` retries it), overload
``Overloaded``, a refused precondition ``PreconditionFailed``, and so on; anything
else a ``PbError`` (a ``BadRequest``) with the text.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar, Unpack

from google.protobuf.message import Message

from http_api.client_index import IndexOptions, IndexResult, Term
from http_api.client_ops import Backoff, update_cycle
from http_api.client_wire import (
    DeleteParams,
    KVObject,
    ReadParams,
    UpdateParams,
    WriteParams,
)
from http_api.errors import (
    BadRequest,
    Conflict,
    NotFound,
    Overloaded,
    PreconditionFailed,
    RequestTooLarge,
    ServiceError,
    Unavailable,
)
from http_api.resolvers import Resolver, Resolvers
from http_api.types import Content, Datatype, QuorumValue, Sibling
from pb_api import client_datatypes, convert
from pb_api.client_index import index_req, index_result
from pb_api.messages import Code
from pb_api.proto import riak_dt_pb2 as dt
from pb_api.proto import riak_kv_pb2 as kv
from pb_api.proto import riak_pb2 as core

T = TypeVar("T")
DEFAULT_BINARY_TYPE = "application/octet-stream"
DEFAULT_TEXT_TYPE = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Call:
    """One request: its code and body, the response code it expects, and whether the
    answer streams (frames until one says ``done``)."""

    code: int
    body: Message | None
    expect: int
    streamed: bool = False


Step: TypeAlias = Call | Backoff
#: A call is answered with its decoded responses (one, or every frame of a stream).
Answer: TypeAlias = list[Message | None]
Op: TypeAlias = Generator[Step, Answer | None, T]


class PbError(BadRequest):
    """A PB error the message does not classify further (a refused request, mostly)."""


_UNAVAILABLE = re.compile(r"^(?:P?[RW]|DW|RW)-value unsatisfied|timed out|unreachable", re.I)
_CLASSES: tuple[tuple[re.Pattern[str], type[ServiceError]], ...] = (
    (re.compile(r"^overloaded"), Overloaded),
    (_UNAVAILABLE, Unavailable),
    (re.compile(r"If-None-Match|if_none_match|if_not_modified|changed since"), PreconditionFailed),
    (re.compile(r"siblings, above the limit"), Conflict),
    (re.compile(r"above the limit|max_stored_object_bytes"), RequestTooLarge),
    (re.compile(r"does not exist|not found"), NotFound),
)


def error_for(message: str) -> ServiceError:
    """The exception an ``RpbErrorResp`` stands for (see the module docstring)."""
    for pattern, cls in _CLASSES:
        if pattern.search(message):
            return Overloaded(message, 1) if cls is Overloaded else cls(message)
    return PbError(message)


def _call(step: Call) -> Generator[Step, Answer | None, Answer]:
    answer = yield step
    assert answer is not None, "a shell answers every call"
    return answer


def _one(answer: Answer) -> Any:
    return answer[0] if answer else None


def _quorums(msg: Message, params: Mapping[str, Any]) -> None:
    for name in ("r", "pr", "w", "dw", "pw", "rw"):
        value: QuorumValue | None = params.get(name)
        if value is not None:
            setattr(msg, name, convert.quorum_to_pb(value))
    for name in ("basic_quorum", "notfound_ok"):
        if params.get(name) is not None:
            setattr(msg, name, bool(params[name]))
    if params.get("timeout_ms") is not None:
        msg.timeout = int(params["timeout_ms"])  # type: ignore[attr-defined]


def _sibling(c: kv.RpbContent) -> Sibling:
    content = Content(
        value=c.value,
        content_type=c.content_type.decode() or DEFAULT_BINARY_TYPE,
        charset=c.charset.decode() or None,
        content_encoding=c.content_encoding.decode() or None,
        user_meta=tuple((p.key.decode(), p.value.decode()) for p in c.usermeta),
        links=tuple((x.bucket.decode(), x.key.decode(), x.tag.decode()) for x in c.links),
        indexes=tuple((p.key.decode(), p.value.decode()) for p in c.indexes),
        last_modified_us=c.last_mod * 1_000_000 + c.last_mod_usecs,
        deleted=c.deleted,
    )
    return Sibling(vtag=c.vtag.decode(), content=content)


def to_object(bucket: str, key: str, resp: kv.RpbGetResp | kv.RpbPutResp) -> KVObject:
    context = resp.vclock if resp.HasField("vclock") else None
    return KVObject(bucket, key, [_sibling(c) for c in resp.content], context)


def _content(
    value: bytes | str,
    content_type: str | None,
    meta: Mapping[str, str] | None,
    indexes: Iterable[tuple[str, str | int]] | None = None,
) -> Any:
    if isinstance(value, str):
        body, ctype = value.encode(), content_type or DEFAULT_TEXT_TYPE
    else:
        body, ctype = bytes(value), content_type or DEFAULT_BINARY_TYPE
    main, _, rest = ctype.partition(";")
    c = kv.RpbContent(value=body, content_type=main.strip().encode())
    for param in rest.split(";"):
        name, _, v = param.strip().partition("=")
        if name.lower() == "charset" and v:
            c.charset = v.strip('"').encode()
    for name, v in (meta or {}).items():
        c.usermeta.add(key=name.encode(), value=v.encode())
    for name, term in indexes or ():
        c.indexes.add(key=name.encode(), value=str(term).encode())
    return c


_PROP_QUORUMS = ("r", "w", "dw", "rw", "pr", "pw")
_PROP_BOOLS = ("allow_mult", "last_write_wins", "basic_quorum", "notfound_ok")


def props_from_pb(p: core.RpbBucketProps) -> dict[str, Any]:
    """Bucket props as the HTTP API's JSON names them."""
    out: dict[str, Any] = {}
    if p.HasField("n_val"):
        out["n_val"] = p.n_val
    for name in _PROP_BOOLS:
        if p.HasField(name):
            out[name] = getattr(p, name)
    for name in _PROP_QUORUMS:
        if p.HasField(name):
            out[name] = convert.SYMBOLIC.get(getattr(p, name), getattr(p, name))
    return out


def props_to_pb(props: Mapping[str, object]) -> core.RpbBucketProps:
    p = core.RpbBucketProps()
    for name, value in props.items():
        if name == "n_val" and isinstance(value, int):
            p.n_val = value
        elif name in _PROP_BOOLS and isinstance(value, bool):
            setattr(p, name, value)
        elif name in _PROP_QUORUMS and isinstance(value, int | str):
            setattr(p, name, convert.quorum_to_pb(value))  # type: ignore[arg-type]
        else:
            raise ValueError(f"bucket prop {name!r}={value!r} cannot be set over PB")
    return p


class PbClientCore(Resolvers):
    """Every operation of our client as a generator of PB calls (no I/O)."""

    def __init__(self, resolver: Resolver | None = None) -> None:
        super().__init__(resolver)
        self._kinds: dict[str, str] = {}  # bucket type -> its data type, as the node said

    def get_op(
        self,
        bucket: str,
        key: str,
        *,
        resolver: Resolver | None = None,
        **params: Unpack[ReadParams],
    ) -> Op[KVObject]:
        req = kv.RpbGetReq(bucket=bucket.encode(), key=key.encode(), deletedvclock=True)
        _quorums(req, params)
        resp = _one((yield from _call(Call(Code.GET_REQ, req, Code.GET_RESP))))
        return self.resolved(to_object(bucket, key, resp), resolver)

    def put_op(
        self,
        bucket: str,
        key: str,
        value: bytes | str,
        *,
        content_type: str | None = None,
        context: bytes | None = None,
        meta: Mapping[str, str] | None = None,
        return_body: bool = False,
        if_none_match: bool = False,
        indexes: Iterable[tuple[str, str | int]] | None = None,
        **params: Unpack[WriteParams],
    ) -> Op[KVObject | None]:
        """As the HTTP client's ``put`` (``indexes``: ``[("age_int", 42), ...]``)."""
        req = kv.RpbPutReq(
            bucket=bucket.encode(),
            key=key.encode(),
            content=_content(value, content_type, meta, indexes),
            return_body=return_body,
            if_none_match=if_none_match,
        )
        if context:
            req.vclock = context
        _quorums(req, params)
        resp = _one((yield from _call(Call(Code.PUT_REQ, req, Code.PUT_RESP))))
        return to_object(bucket, key, resp) if return_body else None

    def store_op(
        self,
        obj: KVObject,
        value: bytes | str,
        *,
        content_type: str | None = None,
        meta: Mapping[str, str] | None = None,
        return_body: bool = False,
        indexes: Iterable[tuple[str, str | int]] | None = None,
        **params: Unpack[WriteParams],
    ) -> Op[KVObject | None]:
        """``put`` to ``obj``'s key with its context: supersedes what ``obj`` was read with."""
        return (
            yield from self.put_op(
                obj.bucket, obj.key, value, content_type=content_type, context=obj.context,
                meta=meta, return_body=return_body, indexes=indexes, **params,
            )
        )  # fmt: skip

    def post_op(
        self,
        bucket: str,
        value: bytes | str,
        *,
        content_type: str | None = None,
        meta: Mapping[str, str] | None = None,
        indexes: Iterable[tuple[str, str | int]] | None = None,
        **params: Unpack[WriteParams],
    ) -> Op[str]:
        """Store under a key the node chooses; returns that key."""
        content = _content(value, content_type, meta, indexes)
        req = kv.RpbPutReq(bucket=bucket.encode(), content=content)
        _quorums(req, params)
        resp = _one((yield from _call(Call(Code.PUT_REQ, req, Code.PUT_RESP))))
        return str(resp.key.decode())

    def delete_op(
        self, bucket: str, key: str, *, context: bytes | None = None, **params: Unpack[DeleteParams]
    ) -> Op[bool]:
        """Write a tombstone. Riak's PB answers the same whether or not the key was there:
        True, always (the HTTP client's ``delete`` tells)."""
        req = kv.RpbDelReq(bucket=bucket.encode(), key=key.encode())
        if context:
            req.vclock = context
        _quorums(req, params)
        yield from _call(Call(Code.DEL_REQ, req, Code.DEL_RESP))
        return True

    def list_keys_op(self, bucket: str, stream: bool = True) -> Op[list[str]]:
        """The bucket's live keys (always streamed over PB, as Riak)."""
        req = kv.RpbListKeysReq(bucket=bucket.encode())
        answer = yield from _call(Call(Code.LIST_KEYS_REQ, req, Code.LIST_KEYS_RESP, True))
        return [k.decode() for resp in answer for k in resp.keys]  # type: ignore[union-attr]

    def list_buckets_op(self, stream: bool = False) -> Op[list[str]]:
        req = kv.RpbListBucketsReq(stream=stream)
        call = Call(Code.LIST_BUCKETS_REQ, req, Code.LIST_BUCKETS_RESP, stream)
        answer = yield from _call(call)
        return [b.decode() for resp in answer for b in resp.buckets]  # type: ignore[union-attr]

    def index_op(
        self,
        bucket: str,
        name: str,
        start: Term,
        end: Term | None = None,
        **opts: Unpack[IndexOptions],
    ) -> Op[IndexResult]:
        """As the HTTP client's ``index``: keys whose index ``name`` holds ``start`` (or a
        term from ``start`` to ``end``), one page of ``max_results`` with the next page's
        continuation, or every result; ``stream`` asks the node to send them as found."""
        req = index_req(bucket, name, start, end, **opts)
        stream = bool(opts.get("stream"))
        answer = yield from _call(Call(Code.INDEX_REQ, req, Code.INDEX_RESP, stream))
        return index_result(name, answer)

    def get_bucket_props_op(self, bucket: str) -> Op[dict[str, Any]]:
        req = core.RpbGetBucketReq(bucket=bucket.encode())
        resp = _one((yield from _call(Call(Code.GET_BUCKET_REQ, req, Code.GET_BUCKET_RESP))))
        return props_from_pb(resp.props)

    def set_bucket_props_op(self, bucket: str, props: Mapping[str, object]) -> Op[None]:
        req = core.RpbSetBucketReq(bucket=bucket.encode(), props=props_to_pb(props))
        yield from _call(Call(Code.SET_BUCKET_REQ, req, Code.SET_BUCKET_RESP))

    def reset_bucket_props_op(self, bucket: str) -> Op[None]:
        req = core.RpbResetBucketReq(bucket=bucket.encode())
        yield from _call(Call(Code.RESET_BUCKET_REQ, req, Code.RESET_BUCKET_RESP))

    def update_op(
        self,
        bucket: str,
        key: str,
        fn: Any,
        *,
        resolver: Resolver | None = None,
        retries: int = 5,
        content_type: str | None = None,
        return_body: bool = False,
        **params: Unpack[UpdateParams],
    ) -> Op[KVObject | None]:
        """Read-modify-write with the read's context, retrying ``Unavailable``."""
        return (
            yield from update_cycle(
                self, bucket, key, fn, resolver=resolver, retries=retries,
                content_type=content_type, return_body=return_body, **params,
            )
        )  # fmt: skip

    def preflist_op(self, bucket: str, key: str) -> Op[list[dict[str, Any]]]:
        req = kv.RpbGetBucketKeyPreflistReq(bucket=bucket.encode(), key=key.encode())
        call = Call(Code.GET_BUCKET_KEY_PREFLIST_REQ, req, Code.GET_BUCKET_KEY_PREFLIST_RESP)
        resp = _one((yield from _call(call)))
        return [
            {"partition": i.partition, "node": i.node.decode(), "primary": i.primary}
            for i in resp.preflist
        ]

    def fetch_datatype_op(
        self, btype: str, bucket: str, key: str, **params: Unpack[ReadParams]
    ) -> Op[Datatype]:
        """A data type's value and context (``found`` False if the key holds none)."""
        req = dt.DtFetchReq(type=btype.encode(), bucket=bucket.encode(), key=key.encode())
        _quorums(req, params)
        resp = _one((yield from _call(Call(Code.DT_FETCH_REQ, req, Code.DT_FETCH_RESP))))
        kind = self._kinds[btype] = client_datatypes.KIND[resp.type]
        if not resp.HasField("value"):
            return Datatype(kind=kind, value=None, found=False)
        value = client_datatypes.value_from_pb(kind, resp.value)
        return Datatype(kind=kind, value=value, context=resp.context)

    def update_datatype_op(
        self,
        btype: str,
        bucket: str,
        key: str | None,
        op: dict[str, Any],
        *,
        context: bytes | None = None,
        return_body: bool = False,
        **params: Unpack[WriteParams],
    ) -> Op[tuple[str, Datatype | None]]:
        """As the HTTP client's. A PB update names the kind of its operation, which follows
        from the bucket type: learnt from the fetches made, or with one fetch first."""
        kind = self._kinds.get(btype)
        if kind is None:
            kind = (yield from self.fetch_datatype_op(btype, bucket, key or "-")).kind
        req = dt.DtUpdateReq(
            type=btype.encode(), bucket=bucket.encode(),
            op=client_datatypes.op_to_pb(kind, op), return_body=return_body,
        )  # fmt: skip
        if key is not None:
            req.key = key.encode()
        if context:
            req.context = context
        _quorums(req, params)
        resp = _one((yield from _call(Call(Code.DT_UPDATE_REQ, req, Code.DT_UPDATE_RESP))))
        key = key if key is not None else resp.key.decode()
        if not return_body:
            return key, None
        value = client_datatypes.value_from_pb(kind, resp)
        return key, Datatype(kind=kind, value=value, context=resp.context)

    def server_info_op(self) -> Op[dict[str, str]]:
        call = Call(Code.GET_SERVER_INFO_REQ, None, Code.GET_SERVER_INFO_RESP)
        resp = _one((yield from _call(call)))
        return {"node": resp.node.decode(), "server_version": resp.server_version.decode()}


__all__ = ["Call", "Op", "PbClientCore", "PbError", "error_for", "to_object"]
