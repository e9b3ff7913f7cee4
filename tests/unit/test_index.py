"""Secondary index cores: the order-preserving term encodings, an object's entries, one
node's page, continuations, and the checks of index fields and queries."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo.kv import dvvset, index
from dynamo.kv import object as objects
from http_api import indexes
from http_api.errors import BadRequest
from http_api.types import Content
from ring.position import RING_SIZE, storage_key

EVERYTHING = ((-1, RING_SIZE - 1),)


@given(st.lists(st.integers(), min_size=2, max_size=30))
def test_int_terms_sort_as_numbers_and_decode(ns: list[int]) -> None:
    assert sorted(ns, key=index.encode_int) == sorted(ns)
    for n in ns:
        term, rest = index.split_term(indexes.INT, index.encode_int(n) + b"key")
        assert (term, rest) == (str(n), b"key")


def test_int_terms_of_any_size() -> None:
    big = [-(10**300), -(2**64), -1, 0, 1, 255, 256, 2**64, 10**300]
    assert sorted(big, key=index.encode_int) == big


@given(st.lists(st.text(), min_size=2, max_size=30))
def test_bin_terms_sort_as_utf8_bytes_and_decode(ts: list[str]) -> None:
    enc = [index.encode_bin(t.encode()) for t in ts]
    assert sorted(ts, key=lambda t: index.encode_bin(t.encode())) == sorted(
        ts, key=lambda t: t.encode()
    )
    for t, e in zip(ts, enc, strict=True):
        assert index.split_term(indexes.BIN, e + b"\x00k") == (t, b"\x00k")


@given(st.text(), st.binary(), st.text(), st.binary())
def test_bin_entries_order_by_term_then_key(t1: str, k1: bytes, t2: str, k2: bytes) -> None:
    a = index.encode_bin(t1.encode()) + k1
    b = index.encode_bin(t2.encode()) + k2
    assert (a < b) == ((t1.encode(), k1) < (t2.encode(), k2))


def _obj(*siblings: tuple[tuple[tuple[str, str], ...], bool]) -> objects.Obj:
    o: objects.Obj | None = None
    for i, (fields, deleted) in enumerate(siblings):
        c = Content(value=b"v", indexes=fields, deleted=deleted, last_modified_us=i)
        o = dvvset.update(dvvset.new(c), o, f"a/{i}")  # concurrent: no context
    assert o is not None
    return o


def test_entries_are_the_union_of_live_siblings_and_none_for_a_tombstone() -> None:
    _, objkey = storage_key(b"b", b"k")
    o = _obj(((("x_bin", "1"),), False), ((("x_bin", "2"), ("y_int", "5")), False))
    terms = sorted(index.entries(objkey, o))
    assert len(terms) == 3
    gone = _obj(((("x_bin", "1"),), True))
    assert index.entries(objkey, gone) == {}
    ops = index.diff(objkey, o, gone)
    assert sorted(k for k, v in ops if v is None) == terms


def _page(rows: dict[bytes, bytes], s: index.Scan, after: index.Entry | None, limit: int) -> Any:
    start, end = index.index_bounds(s, after)
    inside = sorted((k, v) for k, v in rows.items() if k >= start and (end is None or k < end))
    return index.term_page(inside, s, EVERYTHING, after, limit)


def test_a_term_page_resumes_strictly_after_its_last_entry() -> None:
    rows: dict[bytes, bytes] = {}
    for i in range(10):
        _, objkey = storage_key(b"b", f"k{i}".encode())
        o = _obj(((("n_int", str(i % 4)),), False))
        rows.update(index.entries(objkey, o))
    q = indexes.query("n_int", "1", "2")
    s = index.scan_of(b"b", q)
    got: list[index.Entry] = []
    after = None
    while True:
        page, more = _page(rows, s, after, 2)
        got += page
        if not more:
            break
        after = page[-1]
    keys = [k for _, k in got]
    assert keys == [b"k1", b"k5", b"k9", b"k2", b"k6"]
    assert [index.decode_term("n_int", t) for t, _ in got] == ["1"] * 3 + ["2"] * 2


def test_continuations_resume_their_own_query_only() -> None:
    q = indexes.query("x_bin", "a", "z", max_results=5)
    c = index.encode_continuation(b"b", q, (index.encode_bin(b"m"), b"key"))
    same = indexes.query("x_bin", "a", "z", max_results=9, continuation=c)
    assert index.decode_continuation(b"b", same) == (index.encode_bin(b"m"), b"key")
    other = indexes.query("x_bin", "a", "y", continuation=c)
    with pytest.raises(BadRequest, match="another query"):
        index.decode_continuation(b"b", other)
    with pytest.raises(BadRequest, match="not one this store gave"):
        index.decode_continuation(b"b", indexes.query("x_bin", "a", continuation="!!"))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([("age", "1")], "unknown index"),
        ([("age_int", "x1")], "not an integer"),
        ([("age_int", "1.5")], "not an integer"),
        ([("$bucket", "b")], "Riak's own"),
    ],
)
def test_bad_index_fields_are_refused_saying_what_to_change(
    fields: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        indexes.normalize(fields)


def test_fields_are_lowercased_and_integers_canonical() -> None:
    got = indexes.normalize([("Age_INT", "007"), ("age_int", "7"), ("Tag_bin", "X")])
    assert got == (("age_int", "7"), ("tag_bin", "X"))


@pytest.mark.parametrize(
    ("args", "kw", "message"),
    [
        (("x_foo", "1"), {}, "unknown index"),
        (("n_int", "a"), {}, "not an integer"),
        (("n_int", "1", "b"), {}, "not an integer"),
        (("n_int", "1", "2"), {"term_regex": "1"}, "integer queries"),
        (("x_bin", "a", "b"), {"term_regex": "("}, "not a regular expression"),
        (("x_bin", "a"), {"max_results": 0}, "positive integer"),
    ],
)
def test_bad_queries_are_refused(args: tuple[str, ...], kw: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        indexes.query(*args, **kw)


def test_key_pages_are_the_least_live_keys_of_the_bucket() -> None:
    rows = []
    for i in (5, 3, 9, 1, 7):
        _, objkey = storage_key(b"b", f"k{i}".encode())
        rows.append((objkey, i == 9))
    _, other = storage_key(b"c", b"k0")
    rows.append((other, False))
    s = index.scan_of(b"b", indexes.query("$bucket", "b"))
    page, more = index.key_page(rows, s, None, 2)
    assert (page, more) == ([(b"k1", b"k1"), (b"k3", b"k3")], True)
    page, more = index.key_page(rows, s, page[-1], 5)
    assert (page, more) == ([(b"k5", b"k5"), (b"k7", b"k7")], False)
    ranged = index.scan_of(b"b", indexes.query("$key", "k3", "k6"))
    assert index.key_page(rows, ranged, None, 9)[0] == [(b"k3", b"k3"), (b"k5", b"k5")]


def test_merged_pages_are_sorted_and_each_entry_once() -> None:
    assert index.merged([[(b"a", b"1"), (b"c", b"1")], [(b"a", b"1"), (b"b", b"2")]]) == [
        (b"a", b"1"),
        (b"b", b"2"),
        (b"c", b"1"),
    ]
