"""Data type operations and values through PB both ways: our client's conversions
(``pb_api.client_datatypes``) and the node's (``pb_api.datatypes``) must agree, or an
operation sent over PB would not be the one HTTP would have sent."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from http_api.errors import BadRequest
from pb_api import client_datatypes as client
from pb_api import datatypes as node
from pb_api.proto import riak_dt_pb2 as dt

text = st.text(min_size=1, max_size=8)
elements = st.lists(text, min_size=1, max_size=4, unique=True)


def set_ops() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda a: {"add_all": a}, elements),
        st.builds(lambda r: {"remove_all": r}, elements),
        st.builds(lambda a, r: {"add_all": a, "remove_all": r}, elements, elements),
    )


field_names = st.builds(
    lambda n, t: f"{n}_{t}",
    st.from_regex(r"[a-z]{1,6}", fullmatch=True),
    st.sampled_from(["counter", "set", "register", "flag", "map"]),
)


def field_op(name: str, depth: int) -> st.SearchStrategy[Any]:
    kind = name.rpartition("_")[2]
    if kind == "counter":
        return st.builds(lambda n: {"increment": n}, st.integers(-100, 100))
    if kind == "set":
        return set_ops()
    if kind == "register":
        return st.builds(lambda v: {"assign": v}, st.text(max_size=8))
    if kind == "flag":
        return st.sampled_from(["enable", "disable"])
    return map_ops(depth + 1) if depth < 2 else st.just({"remove": ["x_flag"]})


def map_ops(depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    updates = st.lists(field_names, min_size=1, max_size=3, unique=True).flatmap(
        lambda names: st.fixed_dictionaries({n: field_op(n, depth) for n in names})
    )
    return st.one_of(
        st.builds(lambda u: {"update": u}, updates),
        st.builds(
            lambda r: {"remove": r}, st.lists(field_names, min_size=1, max_size=3, unique=True)
        ),
    )


@given(st.integers(-(2**40), 2**40))
def test_counter_ops(n: int) -> None:
    assert node.op_from_pb("counter", client.op_to_pb("counter", {"increment": n})) == {
        "increment": n
    }


@pytest.mark.parametrize("kind", ["set", "gset", "hll"])
@given(op=set_ops())
def test_set_ops(kind: str, op: dict[str, Any]) -> None:
    want = op if kind == "set" else {k: v for k, v in op.items() if k == "add_all"}
    if not want:
        return
    assert node.op_from_pb(kind, client.op_to_pb(kind, op)) == want


@given(map_ops())
def test_map_ops(op: dict[str, Any]) -> None:
    assert node.op_from_pb("map", client.op_to_pb("map", op)) == op


def test_riak_shorthand_ops_become_the_same_pb() -> None:
    short = {
        "update": {"n_counter": 2, "r_register": "v", "s_set": {"add": "x"}},
        "remove": "o_flag",
    }
    long = {
        "update": {"n_counter": {"increment": 2}, "r_register": {"assign": "v"},
                   "s_set": {"add_all": ["x"]}},
        "remove": ["o_flag"],
    }  # fmt: skip
    assert client.op_to_pb("map", short) == client.op_to_pb("map", long)


values = {
    "counter": st.integers(-(2**40), 2**40),
    "set": st.lists(text, unique=True).map(sorted),
    "gset": st.lists(text, unique=True).map(sorted),
    "hll": st.integers(0, 2**40),
}


@pytest.mark.parametrize("kind", sorted(values))
@given(data=st.data())
def test_values(kind: str, data: st.DataObject) -> None:
    value = data.draw(values[kind])
    msg = dt.DtValue()
    node.value_to_pb(kind, value, msg)
    assert client.value_from_pb(kind, msg) == value
    resp = dt.DtUpdateResp()
    node.value_to_pb(kind, value, resp)
    assert client.value_from_pb(kind, resp) == value


def test_map_values_nest() -> None:
    value = {
        "visits_counter": 3, "roles_set": ["a", "b"], "name_register": "Ann",
        "admin_flag": True, "address_map": {"city_register": "Oslo", "zip_counter": 0},
    }  # fmt: skip
    msg = dt.DtValue()
    node.value_to_pb("map", value, msg)
    assert client.value_from_pb("map", msg) == value


def test_an_operation_of_another_kind_is_refused_by_the_node() -> None:
    with pytest.raises(BadRequest, match="counter operation"):
        node.op_from_pb("counter", client.op_to_pb("set", {"add_all": ["x"]}))
