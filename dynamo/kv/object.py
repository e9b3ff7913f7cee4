"""A stored object: a DVVSet of siblings with their metadata, and its encodings.

Wire and disk format (msgpack, append-only, version 1)::

    object  = [1, entries, seq]            seq: 8 bytes (bin), the local log seq of the last write
    entries = [[actor, counter, [sibling, ...]], ...]     sorted by actor
    sibling = [value, content_type, charset, encoding, meta, links, indexes, lm_us, deleted]

Because ``seq`` has a fixed width and comes last, ``raw[2:-10]`` is the encoding of
the entries alone (``history_bytes``): two replicas that converged hold the same
bytes there, so a coordinator can compare copies without decoding them.

The context a client carries (``X-Riak-Vclock``) is the canonical msgpack of the
version vector ``[[actor, counter], ...]`` with actors sorted, so two replicas
that converged hand out byte-identical contexts.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

import mmh3
import msgpack

from dynamo.kv import datatypes, dvvset
from dynamo.kv.dvvset import Clock, VersionVector
from http_api.types import Content, FetchResult, Sibling

Obj = Clock[Content]
FORMAT_VERSION = 1
MAX_CONTEXT_ENTRIES = 4096

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class ObjectFormatError(ValueError):
    """Bytes that are not an object or a context of ours."""


# --- Siblings -----------------------------------------------------------------------------------


def content_to_wire(c: Content) -> list[Any]:
    return [
        c.value,
        c.content_type,
        c.charset,
        c.content_encoding,
        [list(p) for p in c.user_meta],
        [list(p) for p in c.links],
        [list(p) for p in c.indexes],
        c.last_modified_us,
        c.deleted,
    ]


def stamped(c: Content, last_modified_us: int) -> Content:
    """``c`` with its last-modified time set: on every write, at about half the cost of
    ``dataclasses.replace`` (a test holds the two equal, every field included)."""
    return Content(
        value=c.value,
        content_type=c.content_type,
        charset=c.charset,
        content_encoding=c.content_encoding,
        user_meta=c.user_meta,
        links=c.links,
        indexes=c.indexes,
        last_modified_us=last_modified_us,
        deleted=c.deleted,
    )


def _pairs(x: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(a), str(b)) for a, b in x)


def content_from_wire(x: Any) -> Content:
    value, ct, charset, enc, meta, links, indexes, lm_us, deleted = x
    if not isinstance(value, bytes) or not isinstance(ct, str) or not isinstance(lm_us, int):
        raise ObjectFormatError("malformed sibling")
    return Content(
        value=value,
        content_type=ct,
        charset=charset,
        content_encoding=enc,
        user_meta=_pairs(meta) if meta else (),
        links=tuple((str(b), str(k), str(t)) for b, k, t in links) if links else (),
        indexes=_pairs(indexes) if indexes else (),
        last_modified_us=lm_us,
        deleted=bool(deleted),
    )


# --- Objects ------------------------------------------------------------------------------------


def encode(obj: Obj, seq: int = 0) -> bytes:
    """The msgpack form of an object (anonymous values are never stored)."""
    if obj.anonymous:
        raise ValueError("an object with undotted values cannot be stored; stamp it with update")
    entries = [[a, n, [content_to_wire(c) for c in vals]] for a, n, vals in obj.entries]
    out: bytes = msgpack.packb([FORMAT_VERSION, entries, seq.to_bytes(8, "big")], use_bin_type=True)
    return out


def decode(data: bytes) -> tuple[Obj, int]:
    """An object and the local seq stored with it."""
    try:
        version, entries, seq = msgpack.unpackb(data, raw=False, use_list=True)
        if version != FORMAT_VERSION:
            raise ObjectFormatError(f"object format {version} is not {FORMAT_VERSION}")
        out = []
        for actor, counter, vals in entries:
            if not isinstance(actor, str) or not isinstance(counter, int) or counter < len(vals):
                raise ObjectFormatError("malformed clock entry")
            out.append((actor, counter, tuple(content_from_wire(v) for v in vals)))
        if not isinstance(seq, bytes) or len(seq) != 8:
            raise ObjectFormatError("malformed seq")
    except ObjectFormatError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise ObjectFormatError(f"not an object: {e}") from e
    if any(out[i][0] >= out[i + 1][0] for i in range(len(out) - 1)):
        raise ObjectFormatError("clock entries are not sorted by actor")
    return Clock(tuple(out), ()), int.from_bytes(seq, "big")


def stored_seq(data: bytes) -> int:
    """The seq field of stored bytes, without decoding them (for a hint: when it was
    first stored, in milliseconds)."""
    return int.from_bytes(data[-8:], "big")


def history_bytes(data: bytes) -> bytes:
    """The encoded entries of a stored object (its seq left out): equal for equal copies."""
    return data[2:-10]


def digest(data: bytes) -> bytes:
    """16 bytes naming a stored object's history and values (its seq left out)."""
    out: bytes = mmh3.hash_bytes(history_bytes(data))
    return out


def merge(a: Obj, b: Obj, allow_mult: bool) -> Obj:
    """Two replicas' copies merged; with ``allow_mult`` off, the newest value wins. Data
    types' concurrent states stay, each at its own dot, whatever ``allow_mult`` says (see
    ``dynamo.kv.datatypes``): reads and the next update merge them."""
    out = dvvset.sync(a, b)
    if not allow_mult and dvvset.size(out) > 1 and not datatypes.holds_states(out):
        out = newest_only(out)
    return out


def newest_only(obj: Obj) -> Obj:
    """Last writer wins by timestamp, ties broken by the value's bytes; history kept."""
    return dvvset.lww(obj, lambda c: (c.last_modified_us, c.deleted, c.value))


SIBLING_OVERHEAD_BYTES = 48  # a sibling's fixed fields, encoded
ENTRY_OVERHEAD_BYTES = 16  # a clock entry's counter and framing


def stored_size(obj: Obj) -> int:
    """About how many bytes ``obj`` takes encoded (every sibling, its metadata and the
    clock), without encoding it: what the stored-object limit is checked against."""
    size = 16
    for actor, _, vals in obj.entries:
        size += len(actor) + ENTRY_OVERHEAD_BYTES
        for c in vals:
            size += _content_size(c)
    return size + sum(_content_size(c) for c in obj.anonymous)


def _content_size(c: Content) -> int:
    size = SIBLING_OVERHEAD_BYTES + len(c.value) + len(c.content_type)
    size += len(c.charset or "") + len(c.content_encoding or "")
    size += sum(len(a) + len(b) + 2 for a, b in (*c.user_meta, *c.indexes))
    return size + sum(len(b) + len(k) + len(t) + 3 for b, k, t in c.links)


def is_tombstone(obj: Obj) -> bool:
    """Every sibling deleted (and there is at least one)."""
    vals = dvvset.values(obj)
    return bool(vals) and all(c.deleted for c in vals)


# --- Reaped markers ----------------------------------------------------------------------------


def encode_marker(obj: Obj, reaped_at_s: float) -> bytes:
    """What stays of a reaped tombstone: its causal history and when it was reaped."""
    out: bytes = msgpack.packb(
        [[[a, n] for a, n in dvvset.join(obj)], reaped_at_s], use_bin_type=True
    )
    return out


def decode_marker(data: bytes) -> tuple[VersionVector, float]:
    vv, at = msgpack.unpackb(data, raw=False, use_list=True)
    return tuple((str(a), int(n)) for a, n in vv), float(at)


def marker_history(data: bytes) -> Obj:
    """A marker as a clock with the history and no values."""
    vv, _ = decode_marker(data)
    return Clock(tuple((a, n, ()) for a, n in vv), ())


# --- Contexts and vtags -------------------------------------------------------------------------


def encode_context(vv: VersionVector) -> bytes:
    """Canonical bytes of a version vector (actors sorted)."""
    out: bytes = msgpack.packb([[a, n] for a, n in sorted(vv)], use_bin_type=True)
    return out


def decode_context(data: bytes) -> VersionVector:
    """A version vector from a client's context bytes; ``ValueError`` if it is not one."""
    if not data:
        return ()
    try:
        raw = msgpack.unpackb(data, raw=False, use_list=True, max_array_len=MAX_CONTEXT_ENTRIES)
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise ObjectFormatError(f"not a context: {e}") from e
    if not isinstance(raw, list):
        raise ObjectFormatError("not a context: expected a list of [actor, counter]")
    out: list[tuple[str, int]] = []
    for item in raw:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], int)
            or isinstance(item[1], bool)
            or item[1] < 1
        ):
            raise ObjectFormatError("not a context: expected a list of [actor, counter]")
        out.append((item[0], item[1]))
    out.sort()
    if any(out[i][0] == out[i + 1][0] for i in range(len(out) - 1)):
        raise ObjectFormatError("not a context: an actor appears twice")
    return tuple(out)


def context_b64(vv: VersionVector) -> str:
    return base64.b64encode(encode_context(vv)).decode("ascii")


@functools.lru_cache(maxsize=8192)
def vtag(dot: dvvset.Dot | None) -> str:
    """A sibling's short name, derived from its dot, so every replica names it the same."""
    if dot is None:
        return "0"
    h = mmh3.hash128(f"{dot[0]}/{dot[1]}".encode(), signed=False)
    chars = []
    for _ in range(22):
        h, r = divmod(h, 62)
        chars.append(_B62[r])
    return "".join(chars)


def to_fetch_result(obj: Obj | None) -> FetchResult:
    """The client's view of an object: siblings with vtags, and the context."""
    if obj is None:
        return FetchResult()
    siblings = tuple(Sibling(vtag=vtag(d), content=c) for d, c in dvvset.values_with_dots(obj))
    return FetchResult(siblings=siblings, context=encode_context(dvvset.join(obj)))
