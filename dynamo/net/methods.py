"""Every method of the node-to-node protocol, in one registry, with typed requests and
replies and their v1 and v2 codecs (see ``dynamo.net.schema`` for the versions).

==============  ============================  =======================  ==============
method          request                       reply                    served by
==============  ============================  =======================  ==============
get             ReplicaRead                   raw object or None       kv.peer_handlers
put             ReplicaWrite                  synced (bool)            kv.peer_handlers
coord_put       ForwardedPut                  raw object or None       kv.peer_handlers
keys            KeyPageRequest                KeyPage                  kv.listing
buckets         ranges or None                [bucket, ...]            kv.listing
handoff         [(objkey, raw), ...]          objects changed (int)    node.ownership
gossip_syn      gossip's SYN body             gossip's ACK body        gossip.service
gossip_ack2     gossip's ACK2 body            None                     gossip.service
aae_pull        anti-entropy pull body        its reply body           gossip.aae_service
aae_fetch       anti-entropy fetch body       its reply body           gossip.aae_service
index           IndexPageRequest              IndexPageReply           kv.index_query
tictac          tictac exchange step          hashes or keys           node.tictac
==============  ============================  =======================  ==============

The gossip and anti-entropy bodies are those packages' own wire formats, checked by
their own codecs (``gossip.wire``, ``gossip.antientropy``), the same in both versions.
A new field goes into the v2 map (old peers ignore it); a new method is appended here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from dynamo.kv import object as objects
from dynamo.net.schema import (
    CARRIED,
    HTTP_STATUS,
    Codec,
    ErrorCode,
    Method,
    Registry,
    RemoteError,
    check,
    code_for_status,
    field,
    items,
)
from gossip import tictac
from gossip.antientropy import METHOD_FETCH, METHOD_PULL
from gossip.wire import METHOD_ACK2, METHOD_SYN
from http_api import errors
from http_api.types import Content, PutOptions

_OPT_STR = (str, type(None))
_OPT_BYTES = (bytes, type(None))
_QUORUM = (int, str)


# --- get: read one replica -------------------------------------------------------------------


class ReplicaRead(NamedTuple):  # a tuple: the hottest message, cheapest to make
    objkey: bytes
    hint_for: str | None  # read the hint held for this node, not the primary copy


def _read_v1(b: Any) -> ReplicaRead:
    objkey, hint_for = items(b, 2, "get")
    return ReplicaRead(check(objkey, bytes, "get.objkey"), check(hint_for, _OPT_STR, "get.hint"))


def _read_v2(b: Any) -> ReplicaRead:
    if type(b) is dict:  # the fast path: a well-formed body
        k, h = b.get("k"), b.get("h")
        if type(k) is bytes and (h is None or type(h) is str):
            return ReplicaRead(k, h)
    return ReplicaRead(field(b, "k", bytes, "get"), field(b, "h", _OPT_STR, "get"))


def _raw_v2(b: Any) -> bytes | None:
    if type(b) is dict:
        raw = b.get("o")
        if raw is None or type(raw) is bytes:
            return raw
    checked: bytes | None = field(b, "o", _OPT_BYTES, "reply")
    return checked


GET: Method[ReplicaRead, bytes | None] = Method(
    "get",
    v1=Codec(
        lambda r: [r.objkey, r.hint_for],
        _read_v1,
        lambda raw: raw,
        lambda b: check(b, _OPT_BYTES, "get reply"),
    ),
    v2=Codec(
        lambda r: {"k": r.objkey, "h": r.hint_for},
        _read_v2,
        lambda raw: {"o": raw},
        _raw_v2,
    ),
)


# --- put: write one replica ------------------------------------------------------------------


class ReplicaWrite(NamedTuple):
    objkey: bytes
    raw: bytes  # the encoded object, merged into the replica's copy
    hint_for: str | None  # store it as a hint for this node
    allow_mult: bool
    durable: bool  # sync the write-ahead log before answering


def _write_v1(b: Any) -> ReplicaWrite:
    objkey, raw, hint_for, allow_mult, durable = items(b, 5, "put")
    return ReplicaWrite(
        check(objkey, bytes, "put.objkey"),
        check(raw, bytes, "put.raw"),
        check(hint_for, _OPT_STR, "put.hint"),
        bool(allow_mult),
        bool(durable),
    )


def _write_v2(b: Any) -> ReplicaWrite:
    if type(b) is dict:  # the fast path: a well-formed body
        k, o, h, m, d = b.get("k"), b.get("o"), b.get("h"), b.get("m"), b.get("d")
        if (
            type(k) is bytes
            and type(o) is bytes
            and (h is None or type(h) is str)
            and type(m) is bool
            and type(d) is bool
        ):
            return ReplicaWrite(k, o, h, m, d)
    return ReplicaWrite(
        field(b, "k", bytes, "put"),
        field(b, "o", bytes, "put"),
        field(b, "h", _OPT_STR, "put"),
        field(b, "m", bool, "put"),
        field(b, "d", bool, "put"),
    )


def _synced_v1(b: Any) -> bool:
    (durable,) = items(b, 1, "put reply")
    return bool(durable)


def _synced_v2(b: Any) -> bool:
    if type(b) is dict and type(b.get("s")) is bool:
        return bool(b["s"])
    return bool(field(b, "s", bool, "put reply"))


PUT: Method[ReplicaWrite, bool] = Method(
    "put",
    v1=Codec(
        lambda w: [w.objkey, w.raw, w.hint_for, w.allow_mult, w.durable],
        _write_v1,
        lambda synced: [synced],
        _synced_v1,
    ),
    v2=Codec(
        lambda w: {"k": w.objkey, "o": w.raw, "h": w.hint_for, "m": w.allow_mult, "d": w.durable},
        _write_v2,
        lambda synced: {"s": synced},
        _synced_v2,
    ),
)


# --- coord_put: coordinate a write another node forwarded ---------------------------------------


@dataclass(frozen=True, slots=True)
class ForwardedPut:
    bucket: bytes
    key: bytes
    content: Content
    context: bytes | None
    opts: PutOptions
    forward_id: str  # the forwarder coordinates each id at most once


def _opts_to_v1(o: PutOptions) -> list[Any]:
    return [o.w, o.dw, o.pw, o.timeout_ms, o.return_body, o.if_none_match]


def _opts_from_v1(o: Any) -> PutOptions:
    w, dw, pw, timeout_ms, return_body, if_none_match = items(o, 6, "coord_put.opts")
    return PutOptions(
        w=check(w, _QUORUM, "coord_put.w"),
        dw=check(dw, _QUORUM, "coord_put.dw"),
        pw=check(pw, _QUORUM, "coord_put.pw"),
        timeout_ms=check(timeout_ms, (int, type(None)), "coord_put.timeout_ms"),
        return_body=bool(return_body),
        if_none_match=bool(if_none_match),
    )


def _forward_v1(b: Any) -> ForwardedPut:
    bucket, key, content, context, opts, forward_id = items(b, 6, "coord_put")
    return ForwardedPut(
        check(bucket, bytes, "coord_put.bucket"),
        check(key, bytes, "coord_put.key"),
        objects.content_from_wire(content),
        check(context, _OPT_BYTES, "coord_put.context"),
        _opts_from_v1(opts),
        check(forward_id, str, "coord_put.forward_id"),
    )


def _forward_to_v1(f: ForwardedPut) -> list[Any]:
    content = objects.content_to_wire(f.content)
    return [f.bucket, f.key, content, f.context, _opts_to_v1(f.opts), f.forward_id]


def _forward_to_v2(f: ForwardedPut) -> dict[str, Any]:
    o = f.opts
    return {
        "b": f.bucket,
        "k": f.key,
        "c": objects.content_to_wire(f.content),
        "x": f.context,
        "w": o.w,
        "dw": o.dw,
        "pw": o.pw,
        "t": o.timeout_ms,
        "rb": o.return_body,
        "inm": o.if_none_match,
        "sq": o.sloppy_quorum,
        "n": o.n_val,
        "id": f.forward_id,
    }


def _forward_v2(b: Any) -> ForwardedPut:
    what = "coord_put"
    opts = PutOptions(
        w=field(b, "w", _QUORUM, what),
        dw=field(b, "dw", _QUORUM, what),
        pw=field(b, "pw", _QUORUM, what),
        timeout_ms=field(b, "t", (int, type(None)), what),
        return_body=field(b, "rb", bool, what),
        if_none_match=field(b, "inm", bool, what),
        sloppy_quorum=field(b, "sq", (bool, type(None)), what),
        n_val=field(b, "n", (int, type(None)), what),
    )
    return ForwardedPut(
        field(b, "b", bytes, what),
        field(b, "k", bytes, what),
        objects.content_from_wire(field(b, "c", list, what)),
        field(b, "x", _OPT_BYTES, what),
        opts,
        field(b, "id", str, what),
    )


def _coordinated_v1(b: Any) -> bytes | None:
    """v1's reply ``[0, object or None]``, or ``[http_status, message]`` on failure."""
    status, payload = items(b, 2, "coord_put reply")
    check(status, int, "coord_put reply status")
    if status != 0:
        raise RemoteError(str(payload), code_for_status(status))
    return check(payload, _OPT_BYTES, "coord_put reply object")  # type: ignore[no-any-return]


def _failed_v1(err: RemoteError) -> list[Any]:
    return [HTTP_STATUS.get(err.code, 503), err.message]


_SERVICE_ERRORS: dict[ErrorCode, type[errors.ServiceError]] = {
    ErrorCode.BAD_REQUEST: errors.BadRequest,
    ErrorCode.NOT_FOUND: errors.NotFound,
    ErrorCode.CONFLICT: errors.Conflict,
    ErrorCode.PRECONDITION_FAILED: errors.PreconditionFailed,
    ErrorCode.TOO_LARGE: errors.RequestTooLarge,
    ErrorCode.UNAVAILABLE: errors.Unavailable,
}


def refusal(e: errors.ServiceError) -> RemoteError:
    """What a forwarded write's refusal answers: its kind, its text, its retry hint."""
    if isinstance(e, errors.Overloaded):
        return RemoteError(e.message, ErrorCode.OVERLOADED, float(e.retry_after_s))
    return RemoteError(e.message, code_for_status(e.status))


def service_error(e: RemoteError) -> errors.ServiceError | None:
    """The refusal a forwarder relays to its client; None if the peer failed instead."""
    if e.code == ErrorCode.OVERLOADED:
        retry = max(1, round(e.retry_after_s)) if e.retry_after_s is not None else 1
        return errors.Overloaded(e.message, retry)
    cls = _SERVICE_ERRORS.get(e.code)
    if cls is None:
        return None
    return cls(e.message)


COORD_PUT: Method[ForwardedPut, bytes | None] = Method(
    "coord_put",
    v1=Codec(_forward_to_v1, _forward_v1, lambda raw: [0, raw], _coordinated_v1),
    v2=Codec(_forward_to_v2, _forward_v2, lambda raw: {"o": raw}, _raw_v2),
    v1_error_reply=_failed_v1,
)


# --- keys, buckets: listing ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyPageRequest:
    bucket: bytes
    after: bytes  # resume after this storage key; empty: from the start
    down: tuple[str, ...]  # nodes the asker believes down (their ranges go to the next)


@dataclass(frozen=True, slots=True)
class KeyPage:
    keys: list[bytes]
    after: bytes  # empty at the end


def _bytes_list(x: Any, what: str) -> list[bytes]:
    check(x, (list, tuple), what)
    return [check(k, bytes, what) for k in x]


def _str_tuple(x: Any, what: str) -> tuple[str, ...]:
    check(x, (list, tuple), what)
    return tuple(check(n, str, what) for n in x)


def _keys_v1(b: Any) -> KeyPageRequest:
    bucket, after, down = items(b, 3, "keys")
    return KeyPageRequest(
        check(bucket, bytes, "keys.bucket"),
        check(after, bytes, "keys.after"),
        _str_tuple(down, "keys.down"),
    )


def _page_v1(b: Any) -> KeyPage:
    keys, after = items(b, 2, "keys reply")
    return KeyPage(_bytes_list(keys, "keys reply"), check(after, bytes, "keys reply cursor"))


KEYS: Method[KeyPageRequest, KeyPage] = Method(
    "keys",
    v1=Codec(
        lambda r: [r.bucket, r.after, list(r.down)], _keys_v1, lambda p: [p.keys, p.after], _page_v1
    ),
    v2=Codec(
        lambda r: {"b": r.bucket, "a": r.after, "d": list(r.down)},
        lambda b: KeyPageRequest(
            field(b, "b", bytes, "keys"),
            field(b, "a", bytes, "keys"),
            _str_tuple(field(b, "d", list, "keys"), "keys.d"),
        ),
        lambda p: {"k": p.keys, "a": p.after},
        lambda b: KeyPage(
            _bytes_list(field(b, "k", list, "keys reply"), "keys reply"),
            field(b, "a", bytes, "keys reply"),
        ),
    ),
)

Ranges = tuple[tuple[int, int], ...]  # (lo, hi] ring positions: a node's part of a plan


def _ranges(x: Any, what: str) -> Ranges:
    check(x, (list, tuple), what)
    out = []
    for r in x:
        lo, hi = items(r, 2, what)
        out.append((check(lo, int, what), check(hi, int, what)))
    return tuple(out)


def _buckets_v2(b: Any) -> Ranges | None:
    r = b.get("r") if isinstance(b, dict) else None
    return None if r is None else _ranges(r, "buckets.r")


BUCKETS: Method[Ranges | None, list[bytes]] = Method(
    "buckets",
    v1=Codec(
        lambda _: None, lambda _: None, lambda names: names, lambda b: _bytes_list(b, "buckets")
    ),
    v2=Codec(
        lambda r: {} if r is None else {"r": [list(x) for x in r]},
        _buckets_v2,
        lambda names: {"b": names},
        lambda b: _bytes_list(field(b, "b", list, "buckets reply"), "buckets reply"),
    ),
)


# --- index: one node's page of a coverage query (secondary index, $bucket, $key) ------------


@dataclass(frozen=True, slots=True)
class IndexPageRequest:
    bucket: bytes
    name: str  # the index (lowercased), $bucket or $key
    lo: bytes  # the encoded start term (kv.index.Scan)
    hi: bytes | None  # the encoded end term, inclusive; None: no end
    regex: str | None
    ranges: Ranges  # answer only for keys in these ring ranges
    after: tuple[bytes, bytes] | None  # resume strictly after this (term, key)
    limit: int


@dataclass(frozen=True, slots=True)
class IndexPageReply:
    entries: list[tuple[bytes, bytes]]  # (encoded term, key), sorted
    more: bool  # the node holds more past the last entry


def _pair(x: Any, what: str) -> tuple[bytes, bytes]:
    a, b = items(x, 2, what)
    return check(a, bytes, what), check(b, bytes, what)


def _index_request(b: Any) -> IndexPageRequest:
    after = field(b, "a", (list, type(None)), "index")
    return IndexPageRequest(
        field(b, "b", bytes, "index"),
        field(b, "n", str, "index"),
        field(b, "l", bytes, "index"),
        field(b, "h", _OPT_BYTES, "index"),
        field(b, "x", _OPT_STR, "index"),
        _ranges(field(b, "r", list, "index"), "index.r"),
        None if after is None else _pair(after, "index.a"),
        field(b, "m", int, "index"),
    )


def _index_reply(b: Any) -> IndexPageReply:
    entries = field(b, "e", list, "index reply")
    return IndexPageReply(
        [_pair(e, "index reply") for e in entries], bool(field(b, "more", bool, "index reply"))
    )


_INDEX_CODEC: Codec[IndexPageRequest, IndexPageReply] = Codec(
    lambda r: {
        "b": r.bucket,
        "n": r.name,
        "l": r.lo,
        "h": r.hi,
        "x": r.regex,
        "r": [list(x) for x in r.ranges],
        "a": None if r.after is None else list(r.after),
        "m": r.limit,
    },
    _index_request,
    lambda p: {"e": [list(e) for e in p.entries], "more": p.more},
    _index_reply,
)
INDEX: Method[IndexPageRequest, IndexPageReply] = Method("index", v1=_INDEX_CODEC, v2=_INDEX_CODEC)


# --- handoff: objects handed over (hints, leave transfer) ---------------------------------------

Batch = Sequence[tuple[bytes, bytes]]


def _batch(x: Any, what: str) -> Batch:
    check(x, (list, tuple), what)
    out = []
    for pair in x:
        k, v = items(pair, 2, what)
        out.append((check(k, bytes, what), check(v, bytes, what)))
    return tuple(out)


def _changed(x: Any) -> int:
    n: int = check(x, int, "handoff reply")
    return n


HANDOFF: Method[Batch, int] = Method(
    "handoff",
    v1=Codec(lambda b: [list(p) for p in b], lambda b: _batch(b, "handoff"), lambda n: n, _changed),
    v2=Codec(
        lambda b: {"i": [list(p) for p in b]},
        lambda b: _batch(field(b, "i", list, "handoff"), "handoff.i"),
        lambda n: {"n": n},
        lambda b: _changed(field(b, "n", int, "handoff reply")),
    ),
)


# --- gossip and anti-entropy: their packages' own bodies ---------------------------------------

GOSSIP_SYN: Method[Any, Any] = Method(METHOD_SYN, v1=CARRIED, v2=CARRIED)
GOSSIP_ACK2: Method[Any, Any] = Method(METHOD_ACK2, v1=CARRIED, v2=CARRIED)
AAE_PULL: Method[Any, Any] = Method(METHOD_PULL, v1=CARRIED, v2=CARRIED)
AAE_FETCH: Method[Any, Any] = Method(METHOD_FETCH, v1=CARRIED, v2=CARRIED)
TICTAC: Method[Any, Any] = Method(tictac.METHOD, v1=CARRIED, v2=CARRIED)

METHODS = Registry(
    GET,
    PUT,
    COORD_PUT,
    KEYS,
    BUCKETS,
    HANDOFF,
    GOSSIP_SYN,
    GOSSIP_ACK2,
    AAE_PULL,
    AAE_FETCH,
    INDEX,
    TICTAC,
)

__all__ = [
    "AAE_FETCH",
    "AAE_PULL",
    "BUCKETS",
    "COORD_PUT",
    "GET",
    "GOSSIP_ACK2",
    "GOSSIP_SYN",
    "HANDOFF",
    "INDEX",
    "KEYS",
    "METHODS",
    "PUT",
    "TICTAC",
    "Batch",
    "ErrorCode",
    "ForwardedPut",
    "IndexPageReply",
    "IndexPageRequest",
    "KeyPage",
    "KeyPageRequest",
    "Ranges",
    "ReplicaRead",
    "ReplicaWrite",
]
