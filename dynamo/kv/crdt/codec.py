"""The tagged encoding of states, and the context bytes clients carry.

A state is stored and sent as canonical msgpack (version 1)::

    state   = ["dt", 1, tag, body]       tag: the type's number below; body: the type's own
    context = [[actor, n], ...]          the state's clock, sorted by actor ("" when none)

The bytes of a state always begin ``94 a2 64 74`` (an array of four, then
"dt"), which a stored object (``[1, entries, seq]``, ``93 01``) never does: that
prefix is the cheap check :func:`is_crdt` makes. Bodies are built sorted with
integers and strings only, so two equal states encode to equal bytes. The
context has the shape of a key-value object's context (``X-Riak-Vclock``).

Tags are numbered once and never reused (riak_dt's tags where it has one).
"""

from __future__ import annotations

from typing import Final

import msgpack

from dynamo.kv.crdt import vclock, wire
from dynamo.kv.crdt.errors import CrdtFormatError
from dynamo.kv.crdt.limits import MAX_STATE_BYTES
from dynamo.kv.crdt.vclock import VClock

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "PREFIX",
    "TAGS",
    "decode_context",
    "encode_context",
    "is_crdt",
    "pack",
    "unpack",
]

MAGIC: Final = "dt"
FORMAT_VERSION: Final = 1
#: Append-only: a kind's number never changes and is never reused.
TAGS: Final[dict[str, int]] = {
    "counter": 71,  # riak_dt_pncounter
    "register": 72,  # riak_dt_lwwreg
    "flag": 73,  # riak_dt_od_flag
    "set": 75,  # riak_dt_orswot
    "map": 77,  # riak_dt_map
    "gset": 82,  # riak_dt_gset
    "hll": 90,  # riak_kv_hll (no riak_dt tag)
}
_KINDS_BY_TAG: Final = {tag: kind for kind, tag in TAGS.items()}
PREFIX: Final = b"\x94\xa2dt"


def pack(kind: str, body: object) -> bytes:
    """The bytes of a state of ``kind`` whose type encoded it as ``body``."""
    out: bytes = msgpack.packb([MAGIC, FORMAT_VERSION, TAGS[kind], body], use_bin_type=True)
    return out


def _unpackb(data: object, what: str, max_bytes: int) -> object:
    if type(data) is not bytes:
        raise CrdtFormatError(f"{what} must be bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise CrdtFormatError(f"{what} is {len(data)} bytes, above the limit of {max_bytes}")
    try:
        return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack's errors are many kinds; all mean "not ours"
        raise CrdtFormatError(f"{what} is not msgpack: {exc}") from None


def unpack(data: object) -> tuple[str, object]:
    """The kind and body of a state's bytes; CrdtFormatError for anything else."""
    if type(data) is not bytes:
        raise CrdtFormatError(f"a state must be bytes, got {type(data).__name__}")
    if not data.startswith(PREFIX):
        raise CrdtFormatError("not a data type state (no 'dt' tag)")
    envelope = wire.array(_unpackb(data, "state", MAX_STATE_BYTES), "state", 4)
    _, version, tag, body = envelope
    if version != FORMAT_VERSION or type(version) is not int:
        raise CrdtFormatError(f"state format version {version!r:.20} is not {FORMAT_VERSION}")
    kind = _KINDS_BY_TAG.get(tag) if type(tag) is int else None
    if kind is None:
        raise CrdtFormatError(f"unknown data type tag {tag!r:.20}")
    return kind, body


def is_crdt(data: bytes) -> bool:
    """Whether stored bytes are a data type state (by their tag only; decode validates)."""
    return data.startswith(PREFIX)


def encode_context(clock: VClock | None) -> bytes:
    """The opaque context of a state's clock; ``b""`` for a type without one."""
    if clock is None:
        return b""
    out: bytes = msgpack.packb(vclock.to_wire(clock), use_bin_type=True)
    return out


def decode_context(data: object) -> VClock | None:
    """The clock a context carries; ``None`` for ``b""`` (no context)."""
    if data == b"":
        return None
    # A context of MAX_CLOCK_ENTRIES actors fits in far less than a MiB.
    return vclock.from_wire(_unpackb(data, "context", 1 << 20), "context")
