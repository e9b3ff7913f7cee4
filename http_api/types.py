"""The small value types the HTTP layer encodes, shared with the node that serves it.

``http_api`` imports nothing of ours; the node (``dynamo``) imports these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

QuorumWord = Literal["one", "quorum", "all", "default"]
QuorumValue = int | QuorumWord
QUORUM_WORDS: tuple[QuorumWord, ...] = ("one", "quorum", "all", "default")

MAX_BUCKET_BYTES = 255
MAX_KEY_BYTES = 1024
DEFAULT_TYPE = b"default"
TYPED_PREFIX = b"\x00"  # bucket names may not hold NUL, so no plain bucket starts so


def typed_bucket(btype: bytes, bucket: bytes) -> bytes:
    """The bucket as the store and the ring know it: a bucket of a type other than
    ``default`` is its own namespace (``NUL type NUL bucket``), placed by that name on the
    ring, as Riak hashes ``{Type, Bucket}``; a ``default`` bucket is its plain name."""
    if btype == DEFAULT_TYPE:
        return bucket
    return TYPED_PREFIX + btype + b"\x00" + bucket


def bucket_url(stored: bytes) -> str:
    """The HTTP path of a stored bucket: ``/buckets/B`` or ``/types/T/buckets/B``."""
    from urllib.parse import quote_plus

    btype, bucket = split_bucket(stored)
    path = f"/buckets/{quote_plus(bucket.decode())}"
    return path if btype == DEFAULT_TYPE else f"/types/{quote_plus(btype.decode())}{path}"


def split_bucket(stored: bytes) -> tuple[bytes, bytes]:
    """``(type, bucket)`` of a stored bucket name (``typed_bucket`` undone)."""
    if not stored.startswith(TYPED_PREFIX):
        return DEFAULT_TYPE, stored
    btype, _, bucket = stored[1:].partition(b"\x00")
    return btype, bucket


@dataclass(frozen=True, slots=True, kw_only=True)
class Content:
    """One sibling: a value and its metadata, as stored and as served."""

    value: bytes
    content_type: str = "application/octet-stream"
    charset: str | None = None
    content_encoding: str | None = None
    user_meta: tuple[tuple[str, str], ...] = ()
    links: tuple[tuple[str, str, str], ...] = ()  # (bucket, key, tag)
    indexes: tuple[tuple[str, str], ...] = ()  # (field, value), stored and echoed only
    last_modified_us: int = 0
    deleted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Sibling:
    """A sibling as a client sees it: its vtag (derived from its dot) and content."""

    vtag: str
    content: Content


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchResult:
    """What a read found.

    ``siblings`` includes tombstones; ``found`` is False when there is nothing
    or only tombstones. ``context`` is the opaque causal context (empty when
    nothing was ever stored).
    """

    siblings: tuple[Sibling, ...] = ()
    context: bytes = b""

    @property
    def live(self) -> tuple[Sibling, ...]:
        return tuple(s for s in self.siblings if not s.content.deleted)

    @property
    def found(self) -> bool:
        return any(not s.content.deleted for s in self.siblings)

    @property
    def tombstone(self) -> bool:
        return bool(self.siblings) and not self.found


@dataclass(frozen=True, slots=True, kw_only=True)
class Datatype:
    """A data type's value as a fetch or an update returns it (Riak's shape)."""

    kind: str  # counter, set, gset, map, hll
    value: Any  # JSON-ready: an int, a sorted list of str, a dict of fields
    context: bytes = b""  # opaque causal context, sent back with removes (sets, maps)
    found: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class GetOptions:
    r: QuorumValue = "default"
    pr: QuorumValue = "default"
    basic_quorum: bool | None = None
    notfound_ok: bool | None = None
    timeout_ms: int | None = None
    sloppy_quorum: bool | None = None  # False: primaries only, no fallbacks (Riak's PB option)
    n_val: int | None = None  # fewer replicas than the bucket's, for this request only


@dataclass(frozen=True, slots=True, kw_only=True)
class PutOptions:
    w: QuorumValue = "default"
    dw: QuorumValue = "default"
    pw: QuorumValue = "default"
    timeout_ms: int | None = None
    return_body: bool = False
    if_none_match: bool = False  # If-None-Match: * (refuse when a live value exists)
    sloppy_quorum: bool | None = None
    n_val: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteOptions:
    rw: QuorumValue = "default"
    r: QuorumValue = "default"
    w: QuorumValue = "default"
    dw: QuorumValue = "default"
    pr: QuorumValue = "default"
    pw: QuorumValue = "default"
    timeout_ms: int | None = None
    sloppy_quorum: bool | None = None
    n_val: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketProps:
    """A bucket's effective properties (the defaults overlaid with what was set)."""

    n_val: int = 3
    allow_mult: bool = True
    last_write_wins: bool = False
    r: QuorumValue = "quorum"
    w: QuorumValue = "quorum"
    dw: QuorumValue = 0  # 0: acknowledged once written; "synced to disk" is asked per request
    rw: QuorumValue = "quorum"
    pr: QuorumValue = 0
    pw: QuorumValue = 0
    basic_quorum: bool = False
    notfound_ok: bool = True
    extra: dict[str, object] = field(default_factory=dict)

    def to_json(self, name: str) -> dict[str, object]:
        out: dict[str, object] = dict(self.extra)
        out.update(
            name=name,
            n_val=self.n_val,
            allow_mult=self.allow_mult,
            last_write_wins=self.last_write_wins,
            r=self.r,
            w=self.w,
            dw=self.dw,
            rw=self.rw,
            pr=self.pr,
            pw=self.pw,
            basic_quorum=self.basic_quorum,
            notfound_ok=self.notfound_ok,
            dvv_enabled=True,
            young_vclock=20,
            old_vclock=86400,
            small_vclock=50,
            big_vclock=50,
            chash_keyfun={"mod": "riak_core_util", "fun": "chash_std_keyfun"},
            linkfun={"mod": "riak_kv_wm_link_walker", "fun": "mapreduce_linkfun"},
            precommit=[],
            postcommit=[],
        )
        return out


_QUORUM_PROPS = ("r", "w", "dw", "rw", "pr", "pw")
_BOOL_PROPS = ("allow_mult", "last_write_wins", "basic_quorum", "notfound_ok")
_FIXED_PROPS = ("name", "dvv_enabled")


def _quorum_prop(name: str, value: object) -> QuorumValue:
    if isinstance(value, bool):
        raise ValueError(f"bucket prop {name!r} must be an integer or one of {QUORUM_WORDS}")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str):
        if value in QUORUM_WORDS:
            return value
        if value.isascii() and value.isdigit() and len(value) < 6:
            return int(value)
    raise ValueError(
        f"bucket prop {name!r} is {value!r}: use a non-negative integer or one of {QUORUM_WORDS}"
    )


def _check_plain(name: str, value: object, depth: int = 0) -> None:
    """Props travel by gossip (msgpack): integers must fit 64 bits, floats be finite."""
    if depth > 32:
        raise ValueError(f"bucket prop {name!r} is nested too deeply")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise ValueError(f"bucket prop {name!r} holds an integer outside 64 bits")
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"bucket prop {name!r} holds a number that is not finite")
    elif isinstance(value, list):
        for v in value:
            _check_plain(name, v, depth + 1)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_plain(name, k, depth + 1)
            _check_plain(name, v, depth + 1)
    else:
        raise ValueError(f"bucket prop {name!r} holds a {type(value).__name__}")


def props_from_overrides(
    overrides: dict[str, object], base: BucketProps | None = None
) -> BucketProps:
    """Overlay ``overrides`` (a bucket's stored props JSON) on ``base``.

    Raises ``ValueError`` naming the bad prop and what to use instead.
    """
    base = base or BucketProps()
    fields: dict[str, object] = {
        "n_val": base.n_val,
        "allow_mult": base.allow_mult,
        "last_write_wins": base.last_write_wins,
        "r": base.r,
        "w": base.w,
        "dw": base.dw,
        "rw": base.rw,
        "pr": base.pr,
        "pw": base.pw,
        "basic_quorum": base.basic_quorum,
        "notfound_ok": base.notfound_ok,
    }
    extra = dict(base.extra)
    for name, value in overrides.items():
        if name == "n_val":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"bucket prop 'n_val' is {value!r}: use an integer of 1 or more")
            if value > 64:
                raise ValueError(f"bucket prop 'n_val' is {value}: at most 64 replicas")
            fields["n_val"] = value
        elif name in _QUORUM_PROPS:
            fields[name] = _quorum_prop(name, value)
        elif name in _BOOL_PROPS:
            if isinstance(value, str) and value in ("true", "false"):
                value = value == "true"
            if not isinstance(value, bool):
                raise ValueError(f"bucket prop {name!r} is {value!r}: use true or false")
            fields[name] = value
        elif name in _FIXED_PROPS:
            continue
        else:
            _check_plain(name, value)
            extra[name] = value
    if fields["allow_mult"] and fields["last_write_wins"]:
        raise ValueError(
            "bucket props 'allow_mult' and 'last_write_wins' cannot both be true: set one to false"
        )
    n_val = fields["n_val"]
    assert isinstance(n_val, int)
    for name in _QUORUM_PROPS:
        q = fields[name]
        if isinstance(q, int) and q > n_val:
            raise ValueError(f"bucket prop {name!r} is {q}, above n_val {n_val}: lower it")
    return BucketProps(extra=extra, **fields)  # type: ignore[arg-type]
