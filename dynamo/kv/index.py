"""Secondary index entries as stored, and one node's answer to a query. Pure.

An entry lives in the ``index`` family, keyed so that one index of one bucket is one
contiguous run, ordered by term and then by key::

    u16 len(bucket) | bucket | u8 len(name) | name | term | key    ->  u64 ring position

The term's encoding preserves order and delimits itself, so the key follows it bare:

- ``_bin``: the UTF-8 bytes with each 0x00 written 0x00 0xFF, ended by 0x00 0x00;
- ``_int``: 0x02, u32 byte length, magnitude (big-endian) for n >= 0; for n < 0,
  0x01, u32 (2**32 - 1 - length), each magnitude byte inverted. Integers of any size.

The value, the key's ring position, lets a node answer only for the ranges a coverage
plan gave it. An object's entries are the union of its live siblings' fields; a
tombstone has none. ``entries`` and ``ops`` are what every store writes in the
object's own batch, so an entry never outlives its object.
"""

from __future__ import annotations

import base64
import heapq
import re
import struct
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import mmh3
import msgpack

from dynamo.kv import dvvset
from dynamo.kv.object import Obj
from http_api import indexes
from http_api.errors import BadRequest
from http_api.indexes import BIN, BUCKET_FIELD, INT, KEY_FIELD, IndexQuery
from ring.position import RING_SIZE, storage_key_bkey

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_MAX_LEN = 2**32 - 1

Entry = tuple[bytes, bytes]  # (encoded term, key): what a node answers, in this order


# --- Terms ------------------------------------------------------------------------------------


def encode_int(n: int) -> bytes:
    mag = abs(n).to_bytes((abs(n).bit_length() + 7) // 8, "big")
    if n >= 0:
        return b"\x02" + _U32.pack(len(mag)) + mag
    return b"\x01" + _U32.pack(_MAX_LEN - len(mag)) + bytes(255 - b for b in mag)


def encode_bin(term: bytes) -> bytes:
    return term.replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def encode_term(kind: str, term: str) -> bytes:
    return encode_int(int(term)) if kind == INT else encode_bin(term.encode())


def split_term(kind: str, data: bytes) -> tuple[str, bytes]:
    """``(term, rest)`` of bytes that start with an encoded term."""
    if kind == INT:
        length = _U32.unpack_from(data, 1)[0]
        if data[0] == 1:
            length = _MAX_LEN - length
            mag = bytes(255 - b for b in data[5 : 5 + length])
            return str(-int.from_bytes(mag, "big")), data[5 + length :]
        return str(int.from_bytes(data[5 : 5 + length], "big")), data[5 + length :]
    out = bytearray()
    i = 0
    while True:
        j = data.index(b"\x00", i)
        out += data[i:j]
        if data[j + 1] == 0:
            return out.decode(), data[j + 2 :]
        out += b"\x00"
        i = j + 2


def decode_term(name: str, encoded: bytes) -> str:
    """An encoded term as a client sees it (for ``$key``, the key itself)."""
    k = indexes.kind(name)
    if k in (BUCKET_FIELD, KEY_FIELD):
        return encoded.decode(errors="replace")
    return split_term(k, encoded)[0]


# --- Entries ----------------------------------------------------------------------------------


def prefix(bucket: bytes, name: str) -> bytes:
    n = name.encode()
    return len(bucket).to_bytes(2, "big") + bucket + bytes((len(n),)) + n


def entries(objkey: bytes, obj: Obj | None) -> dict[bytes, bytes]:
    """The index family's entries for ``obj`` stored at ``objkey`` (none for a tombstone)."""
    if obj is None:
        return {}
    fields = {f for c in dvvset.values(obj) if not c.deleted for f in c.indexes}
    if not fields:
        return {}
    bucket, key = storage_key_bkey(objkey)
    pos = objkey[:8]
    out: dict[bytes, bytes] = {}
    for name, term in fields:
        try:
            k = indexes.kind(name)
            if k not in (BIN, INT):
                continue
            out[prefix(bucket, name) + encode_term(k, term) + key] = pos
        except (BadRequest, ValueError):  # written before fields were checked: not indexed
            continue
    return out


def diff(objkey: bytes, old: Obj | None, new: Obj | None) -> list[tuple[bytes, bytes | None]]:
    """Index writes taking a key from ``old`` to ``new``: puts, and deletes (None)."""
    before = entries(objkey, old)
    after = entries(objkey, new)
    out: list[tuple[bytes, bytes | None]] = [(k, None) for k in before if k not in after]
    out.extend((k, v) for k, v in after.items() if k not in before)
    return out


def ref(found: dict[bytes, bytes]) -> bytes:
    """A key's entries, listed beside them: what removes them without the object."""
    out: bytes = msgpack.packb(sorted(found), use_bin_type=True)
    return out


def unref(data: bytes) -> list[bytes]:
    return [k for k in msgpack.unpackb(data, raw=False) if isinstance(k, bytes)]


def _successor(b: bytes) -> bytes | None:
    """The least bytes greater than every bytes starting with ``b`` (None: no bound)."""
    stripped = b.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


# --- A query on one node ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scan:
    """What a node scans for a query: the coordinator checked it and encoded its bounds."""

    bucket: bytes
    name: str
    lo: bytes  # encoded start term (the key itself for $key; empty for $bucket)
    hi: bytes | None  # encoded end term, inclusive (None: no end)
    regex: str | None = None


def scan_of(bucket: bytes, q: IndexQuery) -> Scan:
    k = q.kind
    if k == BUCKET_FIELD:
        return Scan(bucket, q.name, b"", None)
    if k == KEY_FIELD:
        return Scan(bucket, q.name, q.start.encode(), (q.end or q.start).encode(), q.term_regex)
    lo = encode_term(k, q.start)
    hi = encode_term(k, q.end) if q.end is not None else lo
    return Scan(bucket, q.name, lo, hi, q.term_regex)


Ranges = tuple[tuple[int, int], ...]  # (lo, hi] ring positions a node answers for


def covers(ranges: Ranges, pos: int) -> bool:
    """Whether ``pos`` is in one of the sorted, disjoint ``ranges``."""
    i = bisect_left(ranges, (pos, -2)) - 1
    return i >= 0 and pos <= ranges[i][1]


def term_page(
    rows: Iterable[tuple[bytes, bytes]],
    s: Scan,
    ranges: Ranges,
    after: Entry | None,
    limit: int,
) -> tuple[list[Entry], bool]:
    """Up to ``limit`` entries past ``after`` from ``rows``, the index family from
    ``index_bounds``'s start; True when more may follow."""
    pre = prefix(s.bucket, s.name)
    k = indexes.kind(s.name)
    rx = re.compile(s.regex) if s.regex else None
    out: list[Entry] = []
    for ikey, pos in rows:
        term_and_key = ikey[len(pre) :]
        _, key = split_term(k, term_and_key)
        term = term_and_key[: len(term_and_key) - len(key)]
        if s.hi is not None and term > s.hi:
            break
        if after is not None and (term, key) <= after:
            continue
        if not covers(ranges, _U64.unpack(pos)[0]):
            continue
        if rx is not None and not rx.search(split_term(k, term)[0]):
            continue
        if len(out) == limit:
            return out, True
        out.append((term, key))
    return out, False


def index_bounds(s: Scan, after: Entry | None) -> tuple[bytes, bytes | None]:
    """The index family's keys to scan: ``[start, end)``."""
    pre = prefix(s.bucket, s.name)
    start = pre + s.lo
    if after is not None and after[0] + after[1] > s.lo:
        start = pre + after[0] + after[1]
    return start, _successor(pre + s.hi) if s.hi is not None else _successor(pre)


def object_bounds(ranges: Ranges) -> Iterator[tuple[bytes, bytes | None]]:
    """The objects family's ``[start, end)`` per ring range (keys start with the position)."""
    for lo, hi in ranges:
        start = (lo + 1).to_bytes(8, "big")
        yield start, (hi + 1).to_bytes(8, "big") if hi + 1 < RING_SIZE else None


def key_page(
    rows: Iterable[tuple[bytes, bool]],
    s: Scan,
    after: Entry | None,
    limit: int,
) -> tuple[list[Entry], bool]:
    """``$bucket`` and ``$key``: the least ``limit`` live keys past ``after`` among
    ``rows`` (objects key, is tombstone), sorted; True when more may follow."""
    rx = re.compile(s.regex) if s.regex else None
    seen = 0

    def wanted() -> Iterator[bytes]:
        nonlocal seen
        for objkey, dead in rows:
            if dead:
                continue
            b, key = storage_key_bkey(objkey)
            if b != s.bucket or (s.hi is not None and not s.lo <= key <= s.hi):
                continue
            if after is not None and key <= after[1]:
                continue
            if rx is not None and not rx.search(key.decode(errors="replace")):
                continue
            seen += 1
            yield key

    keys = heapq.nsmallest(limit, wanted())
    return [(k, k) for k in keys], seen > limit


# --- Merging nodes' answers, continuations ----------------------------------------------------


def fingerprint(bucket: bytes, q: IndexQuery) -> bytes:
    """Names a query (not its page size): a continuation only resumes the query it came from."""
    parts = [bucket, q.name.encode(), q.start.encode(), (q.end or "").encode()]
    parts.append((q.term_regex or "").encode())
    return mmh3.hash_bytes(b"\x00".join(parts))[:8]


def encode_continuation(bucket: bytes, q: IndexQuery, last: Entry) -> str:
    raw = msgpack.packb([fingerprint(bucket, q), last[0], last[1]], use_bin_type=True)
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_continuation(bucket: bytes, q: IndexQuery) -> Entry | None:
    """Where the page resumes: strictly after this (term, key); ``BadRequest`` for a
    continuation that is not one of ours or belongs to another query."""
    if q.continuation is None:
        return None
    try:
        fp, term, key = msgpack.unpackb(
            base64.urlsafe_b64decode(q.continuation.encode("ascii")), raw=False
        )
        if not (isinstance(fp, bytes) and isinstance(term, bytes) and isinstance(key, bytes)):
            raise ValueError("malformed")
    except (ValueError, TypeError, UnicodeEncodeError, msgpack.UnpackException) as e:
        raise BadRequest(
            f"continuation {q.continuation[:40]!r} is not one this store gave: send back the"
            f" continuation of the previous page unchanged ({e})"
        )
    if fp != fingerprint(bucket, q):
        raise BadRequest(
            "continuation belongs to another query: a page resumes the same bucket, index,"
            " terms and term_regex it came from"
        )
    return term, key


def merged(pages: Iterable[list[Entry]]) -> list[Entry]:
    """Nodes' sorted answers as one sorted list, each entry once."""
    out: list[Entry] = []
    for e in heapq.merge(*pages):
        if not out or out[-1] != e:
            out.append(e)
    return out
