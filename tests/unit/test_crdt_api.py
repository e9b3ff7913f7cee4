"""The package's public face: its names, dispatch, contexts, and decoding of garbage."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo.kv import crdt
from dynamo.kv.crdt import CrdtError, CrdtFormatError, LimitError, PreconditionError, codec
from dynamo.kv.crdt.limits import MAX_DEPTH, MAX_STATE_BYTES

ALL_KINDS = (*crdt.KINDS, "flag", "register")


def test_the_public_api_is_pinned() -> None:
    assert crdt.__all__ == [
        "KINDS",
        "CrdtError",
        "CrdtFormatError",
        "LimitError",
        "Limits",
        "PreconditionError",
        "apply",
        "context",
        "decode",
        "decode_context",
        "encode",
        "is_crdt",
        "merge",
        "new",
        "size_of",
        "value",
    ]
    assert crdt.KINDS == ("counter", "set", "gset", "map", "hll")


def test_the_error_tree() -> None:
    assert issubclass(PreconditionError, CrdtError)
    assert issubclass(LimitError, CrdtError)
    assert issubclass(CrdtError, ValueError)
    assert issubclass(CrdtFormatError, ValueError)
    assert not issubclass(CrdtFormatError, CrdtError)


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("max_elements", 0),
        ("max_elements", True),
        ("max_depth", 0),
        ("max_depth", MAX_DEPTH + 1),
        ("hll_precision", 3),
        ("hll_precision", 17),
    ],
)
def test_bad_limits_fail_at_construction_naming_the_field(field: str, bad: Any) -> None:
    with pytest.raises(ValueError, match=f"^{field} must be"):
        crdt.Limits(**{field: bad})


@pytest.mark.parametrize(
    ("kind", "empty"),
    [
        ("counter", 0),
        ("set", []),
        ("gset", []),
        ("map", {}),
        ("hll", 0),
        ("flag", False),
        ("register", None),
    ],
)
def test_a_new_state_is_empty(kind: str, empty: Any) -> None:
    assert crdt.value(kind, crdt.new(kind)) == empty


def test_an_unknown_kind_is_the_clients_error_and_a_wrong_state_ours() -> None:
    with pytest.raises(CrdtError, match="unknown datatype 'list': one of counter, set"):
        crdt.new("list")
    with pytest.raises(TypeError, match="a set state is a ORSwot, got Counter"):
        crdt.merge("set", crdt.new("set"), crdt.new("counter"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"actor": ""}, "actor must be a str"),
        ({"actor": "x" * 256}, "actor must be a str"),
        ({"now_us": -1}, "now_us must be"),
        ({"now_us": 1.5}, "now_us must be"),
    ],
)
def test_bad_request_inputs_are_refused(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"actor": "a", "now_us": 0, **kwargs}
    with pytest.raises(CrdtError, match=message):
        crdt.apply("counter", crdt.new("counter"), 1, args["actor"], now_us=args["now_us"])


def test_states_are_immutable_values() -> None:
    s = crdt.apply("set", crdt.new("set"), {"add": "x"}, "a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.clock = ()
    with pytest.raises(TypeError):
        s.entries["y"] = frozenset()


def test_a_context_may_be_passed_as_bytes_or_as_its_decoded_clock() -> None:
    s = crdt.apply("set", crdt.new("set"), {"add_all": ["x", "y"]}, "a")
    raw = crdt.context("set", s)
    clock = crdt.decode_context(raw)
    by_bytes = crdt.apply("set", s, {"remove": "x"}, "b", context=raw)
    by_clock = crdt.apply("set", s, {"remove": "x"}, "b", context=clock)
    by_list = crdt.apply("set", s, {"remove": "x"}, "b", context=[["a", 1]])
    assert by_bytes == by_clock == by_list


@pytest.mark.parametrize("kind", ["counter", "gset", "hll", "register"])
def test_kinds_without_removes_hand_out_an_empty_context(kind: str) -> None:
    assert crdt.context(kind, crdt.new(kind)) == b""
    assert crdt.decode_context(b"") is None


@pytest.mark.parametrize(
    "raw",
    [
        b"\x90\x90",
        b"\xc1",
        msgpack.packb({"a": 1}),
        msgpack.packb([["a", 0]]),
        msgpack.packb([["a", 1], ["a", 2]]),
        msgpack.packb([["", 1]]),
        msgpack.packb([["a", True]]),
        msgpack.packb([["a", 2**63]]),
        msgpack.packb([["a", 1]] * 5000),
    ],
)
def test_a_bad_context_is_refused(raw: bytes) -> None:
    with pytest.raises(CrdtFormatError):
        crdt.decode_context(raw)
    with pytest.raises(CrdtFormatError):
        crdt.apply("set", crdt.new("set"), {"remove": "x"}, "a", context=raw)


def test_a_context_of_another_type_is_refused() -> None:
    with pytest.raises(CrdtFormatError, match="context must be bytes or a clock"):
        crdt.apply("set", crdt.new("set"), {"remove": "x"}, "a", context=7)


def test_is_crdt_tells_states_from_stored_objects() -> None:
    for kind in ALL_KINDS:
        assert crdt.is_crdt(crdt.encode(kind, crdt.new(kind)))
    assert not crdt.is_crdt(msgpack.packb([1, [], bytes(8)], use_bin_type=True))
    assert not crdt.is_crdt(b"")


# --- Garbage --------------------------------------------------------------------------------


def _decode_or_reject(raw: bytes) -> None:
    """Garbage either decodes to a well-formed state or raises CrdtFormatError: nothing else."""
    try:
        kind, state = crdt.decode(raw)
    except CrdtFormatError:
        return
    assert crdt.decode(crdt.encode(kind, state)) == (kind, state)
    assert crdt.merge(kind, state, state) == state
    crdt.value(kind, state)
    crdt.context(kind, state)


def _samples() -> list[bytes]:
    m = crdt.new("map")
    m = crdt.apply(
        "map",
        m,
        {
            "update": {
                "n_counter": 3,
                "s_set": {"add_all": ["x", "y"]},
                "r_register": "v",
                "f_flag": "enable",
                "m_map": {"update": {"i_counter": 1, "j_set": {"add": "q"}}},
            }
        },
        "a",
        now_us=7,
    )
    ahead = crdt.apply("set", crdt.new("set"), {"add": "x"}, "z")
    lagging = crdt.apply("set", crdt.new("set"), {"add": "w"}, "a")
    lagging = crdt.apply("set", lagging, {"remove": "x"}, "a", context=crdt.context("set", ahead))
    counter = crdt.apply("counter", crdt.new("counter"), -4, "a")
    out = [crdt.encode("map", m), crdt.encode("set", lagging), crdt.encode("counter", counter)]
    out.append(crdt.encode("hll", crdt.apply("hll", crdt.new("hll"), {"add": "x"}, "a")))
    out.append(crdt.encode("register", crdt.apply("register", crdt.new("register"), "v", "a")))
    out.append(crdt.encode("gset", crdt.apply("gset", crdt.new("gset"), {"add": "x"}, "a")))
    return out


SAMPLES = _samples()


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=200), tagged=st.booleans())
def test_random_bytes_are_refused(raw: bytes, tagged: bool) -> None:
    _decode_or_reject(codec.PREFIX + raw if tagged else raw)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | st.binary(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(tag=st.sampled_from(sorted(codec.TAGS.values())), body=msgpack_values)
def test_well_tagged_bodies_of_any_shape_are_refused_or_well_formed(tag: int, body: object) -> None:
    _decode_or_reject(msgpack.packb(["dt", 1, tag, body], use_bin_type=True))


@settings(max_examples=300, deadline=None)
@given(
    sample=st.sampled_from(SAMPLES),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=3),
    cut=st.integers(0, 10_000),
)
def test_corrupted_states_are_refused_or_well_formed(
    sample: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    raw = bytearray(sample)
    for at, byte in edits:
        raw[at % len(raw)] = byte
    _decode_or_reject(bytes(raw))
    _decode_or_reject(sample[: cut % len(sample)])


def test_other_envelopes_are_refused() -> None:
    body = crdt.encode("counter", crdt.new("counter"))
    with pytest.raises(CrdtFormatError, match="version 2 is not 1"):
        crdt.decode(msgpack.packb(["dt", 2, 71, []]))
    with pytest.raises(CrdtFormatError, match="unknown data type tag 99"):
        crdt.decode(msgpack.packb(["dt", 1, 99, []]))
    with pytest.raises(CrdtFormatError, match="no 'dt' tag"):
        crdt.decode(body[1:])
    with pytest.raises(CrdtFormatError, match="not msgpack"):
        crdt.decode(body + b"\x00")  # trailing bytes
    with pytest.raises(CrdtFormatError, match="must be bytes"):
        codec.unpack(bytearray(body))


def _nested_maps(depth: int) -> bytes:
    body: list[Any] = [[], [], []]
    for level in range(depth - 1):
        body = [[[f"a{level}", 1]], [["m_map", [[[0, 1], body]]]], []]
    out: bytes = msgpack.packb(["dt", 1, 77, body])
    return out


def test_maps_nested_deeper_than_the_format_allows_are_refused() -> None:
    kind, _ = crdt.decode(_nested_maps(MAX_DEPTH))
    assert kind == "map"
    with pytest.raises(CrdtFormatError, match="nest deeper"):
        crdt.decode(_nested_maps(MAX_DEPTH + 1))


def test_a_msgpack_nesting_bomb_is_refused() -> None:
    with pytest.raises(CrdtFormatError):
        crdt.decode(codec.PREFIX + b"\x01\x4d" + b"\x91" * 100_000 + b"\xc0")


def test_a_state_above_the_byte_limit_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(CrdtFormatError, match="above the limit"):
        crdt.decode(codec.PREFIX + bytes(MAX_STATE_BYTES))


def test_states_whose_invariants_fail_are_refused() -> None:
    unseen_dot = ["dt", 1, 75, [[["a", 1]], [["x", [[0, 2]]]], []]]
    unknown_actor = ["dt", 1, 75, [[["a", 1]], [["x", [[1, 1]]]], []]]
    no_dots = ["dt", 1, 75, [[["a", 1]], [["x", []]], []]]
    idle_actor = ["dt", 1, 71, [["a", 0, 0]]]
    stale_deferred = ["dt", 1, 75, [[["a", 1]], [], [[[["a", 1]], ["x"]]]]]
    hll_rank = ["dt", 1, 90, [4, 0, bytes([62] * 16)]]
    for body in (unseen_dot, unknown_actor, no_dots, idle_actor, stale_deferred, hll_rank):
        with pytest.raises(CrdtFormatError):
            crdt.decode(msgpack.packb(body, use_bin_type=True))
