"""Secondary indexes (Riak's 2i) as clients see them: index fields on a write, and queries.

Shared by the HTTP and PB front ends, so both validate alike. Pure: no I/O.

An object carries index entries ``(name, value)``: names end in ``_bin`` (the value is
a string, ordered by its UTF-8 bytes) or ``_int`` (an integer of any size, ordered as
a number); Riak lowercases names, and so do we. Two special indexes are answered from
the objects themselves: ``$bucket`` (every key of the bucket) and ``$key`` (a range
of keys).

A query asks one index for a term (``start`` alone) or a range (``start`` to ``end``,
both inclusive), optionally filtered by a regular expression on the term, in pages of
``max_results`` resumed by an opaque ``continuation``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from http_api.errors import BadRequest

BIN = "_bin"
INT = "_int"
BUCKET_FIELD = "$bucket"
KEY_FIELD = "$key"
MAX_NAME_BYTES = 255
MAX_TERM_BYTES = 1024  # as a key: a term is part of the index entry's key
MAX_INT_DIGITS = 400
MAX_REGEX_CHARS = 1024
MAX_ENTRIES_PER_OBJECT = 1024
DEFAULT_MAX_RESULTS_CAP = 100_000  # results of one unpaged query (NodeConfig.max_index_results)


def kind(name: str) -> str:
    """``_bin``, ``_int``, ``$bucket`` or ``$key`` for a valid (lowercased) index name."""
    if name in (BUCKET_FIELD, KEY_FIELD):
        return name
    if len(name) > len(BIN) and name.endswith((BIN, INT)):
        return name[-4:]
    raise BadRequest(
        f"unknown index {name!r}: an index name ends in _bin (strings) or _int (integers),"
        f" or is $bucket or $key"
    )


def parse_int(name: str, value: str) -> int:
    text = value.strip()
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit() or len(body) > MAX_INT_DIGITS:
        raise BadRequest(
            f"index {name}: {value!r} is not an integer (an _int index takes whole numbers,"
            f" up to {MAX_INT_DIGITS} digits)"
        )
    return int(text)


def normalize(fields: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """An object's index fields as stored: names lowercased and checked, ``_int`` values
    in canonical form (``"007"`` is ``"7"``), sorted, each pair once. ``BadRequest``
    names the first bad field."""
    out: set[tuple[str, str]] = set()
    for raw_name, value in fields:
        name = raw_name.lower()
        if name.startswith("$"):
            raise BadRequest(f"index {raw_name!r}: $bucket and $key are Riak's own, not writable")
        if len(name.encode()) > MAX_NAME_BYTES:
            raise BadRequest(f"index name {raw_name[:40]!r}...: at most {MAX_NAME_BYTES} bytes")
        if kind(name) == INT:
            value = str(parse_int(raw_name, value))
        elif len(value.encode()) > MAX_TERM_BYTES:
            raise BadRequest(f"index {raw_name}: a term of at most {MAX_TERM_BYTES} bytes")
        out.add((name, value))
    if len(out) > MAX_ENTRIES_PER_OBJECT:
        raise BadRequest(
            f"{len(out)} index entries on one object: at most {MAX_ENTRIES_PER_OBJECT}"
        )
    return tuple(sorted(out))


def header_values(value: str) -> list[str]:
    """The values of one ``X-Riak-Index-*`` header: comma-separated, trimmed, as Riak."""
    return [v.strip() for v in value.split(",") if v.strip()]


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexQuery:
    """One query of one index of a bucket. ``end`` None: the terms equal to ``start``."""

    name: str
    start: str
    end: str | None = None
    return_terms: bool = False
    max_results: int | None = None
    continuation: str | None = None
    term_regex: str | None = None
    timeout_ms: int | None = None

    @property
    def kind(self) -> str:
        return kind(self.name)

    @property
    def is_range(self) -> bool:
        return self.end is not None

    @property
    def with_terms(self) -> bool:
        """Riak returns terms only for range queries of a term index or of ``$key``."""
        return self.return_terms and self.is_range and self.name != BUCKET_FIELD


def query(
    name: str,
    start: str,
    end: str | None = None,
    *,
    return_terms: bool = False,
    max_results: int | None = None,
    continuation: str | None = None,
    term_regex: str | None = None,
    timeout_ms: int | None = None,
) -> IndexQuery:
    """A checked query; ``BadRequest`` saying what to change."""
    name = name.lower()
    if len(name.encode()) > MAX_NAME_BYTES:
        raise BadRequest(f"index name {name[:40]!r}...: at most {MAX_NAME_BYTES} bytes")
    k = kind(name)
    if k == INT:
        lo = parse_int(name, start)
        start = str(lo)
        if end is not None:
            hi = parse_int(name, end)
            end = str(hi)
    if k == BUCKET_FIELD:
        end = None
    if max_results is not None and max_results < 1:
        raise BadRequest(f"max_results={max_results}: use a positive integer")
    if term_regex is not None:
        if k == INT:
            raise BadRequest("term_regex: can not use term regular expressions on integer queries")
        if k == BUCKET_FIELD:
            raise BadRequest("term_regex: $bucket queries have no terms to match")
        if len(term_regex) > MAX_REGEX_CHARS:
            raise BadRequest(f"term_regex: at most {MAX_REGEX_CHARS} characters")
        try:
            re.compile(term_regex)
        except re.error as e:
            raise BadRequest(f"term_regex {term_regex!r} is not a regular expression: {e}")
    return IndexQuery(
        name=name,
        start=start,
        end=end,
        return_terms=return_terms,
        max_results=max_results,
        continuation=continuation or None,
        term_regex=term_regex,
        timeout_ms=timeout_ms,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexPage:
    """A query's answer: ``(term, key)`` pairs in Riak's order (by term, then key), and a
    continuation when more may follow (``max_results`` was reached)."""

    results: tuple[tuple[str, bytes], ...] = ()
    continuation: str | None = None

    def unique_keys(self) -> list[bytes]:
        """The keys, each once, in result order."""
        return list(dict.fromkeys(k for _, k in self.results))
