"""The client's sibling resolvers and its read-modify-write cycle (``update``), over a
scripted fake node (no sockets, no sleeping)."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from http_api.client import (
    ClientCore,
    KVObject,
    Response,
    SiblingsError,
)
from http_api.errors import (
    Unavailable,
)
from http_api.resolvers import Resolver, json_set_union, last_write_wins, resolve
from http_api.types import Content, Sibling
from tests.support.client_fakes import (
    CTX,
    FakeNode,
    multiple_300,
    ok_200,
    sib,
    text,
    vclock,
)

# --- Resolvers -------------------------------------------------------------------------------


def test_last_write_wins_takes_the_latest_then_the_larger_vtag() -> None:
    assert last_write_wins([sib("a", b"old", lm_s=1), sib("b", b"new", lm_s=2)]).value == b"new"
    assert last_write_wins([sib("b", b"b", lm_s=2), sib("a", b"a", lm_s=2)]).value == b"b"


json_items = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.booleans(), st.none())


@given(st.lists(st.lists(json_items, max_size=5), min_size=1, max_size=4), st.randoms())
def test_json_set_union_is_commutative_and_keeps_every_element(
    arrays: list[list[object]], rnd: random.Random
) -> None:
    siblings = [sib(f"v{i}", json.dumps(a).encode()) for i, a in enumerate(arrays)]
    merged = json_set_union(siblings)
    shuffled = list(siblings)
    rnd.shuffle(shuffled)
    assert json_set_union(shuffled) == merged
    assert merged.content_type == "application/json"
    union = json.loads(merged.value)
    canonical = [json.dumps(x) for x in union]
    assert len(set(canonical)) == len(canonical)
    assert {json.dumps(x) for a in arrays for x in a} == set(canonical)


def test_json_set_union_sorts_and_refuses_non_arrays() -> None:
    merged = json_set_union([sib("a", b'["b", 3]'), sib("b", b'["a", 1, 3]')])
    assert json.loads(merged.value) == [1, 3, "a", "b"]
    with pytest.raises(ValueError, match="not an array"):
        json_set_union([sib("a", b'{"x": 1}'), sib("b", b"[]")])
    with pytest.raises(ValueError, match="not JSON"):
        json_set_union([sib("a", b"nope"), sib("b", b"[]")])


def test_resolve_keeps_the_context_and_drops_tombstones() -> None:
    obj = KVObject(
        "b", "k", [sib("a", b"1", lm_s=1), sib("b", b"2", lm_s=2), sib("t", b"", deleted=True)], CTX
    )
    resolved = resolve(obj, last_write_wins)
    assert resolved == KVObject("b", "k", [sib("b", b"2", lm_s=2)], CTX)
    merged = resolve(obj, lambda s: Content(value=b"12"))
    assert merged.siblings == [Sibling(vtag="", content=Content(value=b"12"))]
    assert resolve(KVObject("b", "k", [], CTX), last_write_wins) == KVObject("b", "k", [], CTX)


def named(value: bytes, calls: list[bytes]) -> Resolver:
    def resolver(siblings: list[Sibling]) -> Content:
        calls.append(value)
        return Content(value=value)

    return resolver


def test_resolver_precedence_call_then_bucket_then_client() -> None:
    calls: list[bytes] = []
    core = ClientCore("http://n:8098", resolver=named(b"client", calls))
    core.set_resolver("special", named(b"bucket", calls))
    two = [sib("a", b"1"), sib("b", b"2")]

    def get(bucket: str, resolver: Resolver | None = None) -> bytes | None:
        return (
            FakeNode(multiple_300(bucket, two))
            .run(core.get_op(bucket, "k", resolver=resolver))
            .value
        )

    assert get("other") == b"client"
    assert get("special") == b"bucket"
    assert get("special", named(b"call", calls)) == b"call"
    core.set_resolver("special", None)
    assert get("special") == b"client"
    assert calls == [b"client", b"bucket", b"call", b"client"]
    assert FakeNode(ok_200("b", two[0])).run(core.get_op("b", "k")).value == b"1"
    assert len(calls) == 4, "one live sibling needs no resolver"


def test_without_any_resolver_siblings_are_returned() -> None:
    obj = FakeNode(multiple_300("b", [sib("a", b"1"), sib("b", b"2")])).run(
        ClientCore("http://n:8098").get_op("b", "k")
    )
    assert len(obj.siblings) == 2


# --- Update ----------------------------------------------------------------------------------


def test_update_merges_siblings_and_writes_back_with_their_context() -> None:
    core = ClientCore("http://n:8098")
    siblings = [
        sib("a", b"[1]", content_type="application/json"),
        sib("b", b"[2]", content_type="application/json"),
    ]
    node = FakeNode(multiple_300("b", siblings), Response(status=204))
    seen: list[bytes | None] = []

    def add_three(value: bytes | None) -> bytes:
        seen.append(value)
        return json.dumps([*json.loads(value or b"[]"), 3]).encode()

    assert node.run(core.update_op("b", "k", add_three, resolver=json_set_union, w=2)) is None
    assert seen == [b"[1,2]"]
    assert node.requests[1].body == b"[1, 2, 3]"
    assert node.requests[1].path == "/buckets/b/keys/k?w=2"
    assert node.header(1, "X-Riak-Vclock") == vclock(CTX)[1]
    assert node.header(1, "Content-Type") == "application/json"


def test_update_retries_the_whole_cycle_on_503_with_backoff() -> None:
    node = FakeNode(
        text(503, "R-value unsatisfied: 1/2"),
        text(404, "not found"),
        text(503, "W-value unsatisfied: 1/2"),
        text(503, "overloaded", ("Retry-After", "3")),
        text(404, "not found", vclock(CTX)),
        Response(status=204),
    )
    seen: list[bytes | None] = []

    def fn(value: bytes | None) -> bytes:
        seen.append(value)
        return b"first"

    assert node.run(ClientCore("http://n:8098").update_op("b", "k", fn, r=1)) is None
    assert seen == [None, None]
    assert node.sleeps == [0.05, 0.1, 3]
    assert node.header(5, "X-Riak-Vclock") == vclock(CTX)[1]
    assert node.requests[4].path == "/buckets/b/keys/k?r=1"


def test_update_gives_up_after_retries() -> None:
    node = FakeNode(*[text(503, "R-value unsatisfied: 1/2")] * 3)
    with pytest.raises(Unavailable, match="R-value"):
        node.run(ClientCore("http://n:8098").update_op("b", "k", lambda v: b"", retries=2))
    assert len(node.sleeps) == 2


def test_update_without_resolver_refuses_siblings() -> None:
    node = FakeNode(multiple_300("b", [sib("a", b"1"), sib("b", b"2")]))
    with pytest.raises(SiblingsError):
        node.run(ClientCore("http://n:8098").update_op("b", "k", lambda v: b""))
