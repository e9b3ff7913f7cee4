"""The map: fields held per dot, observed-remove per field, nested maps, limits."""

from __future__ import annotations

from typing import Any

import pytest

from dynamo.kv import crdt
from dynamo.kv.crdt import CrdtError, CrdtFormatError, LimitError, PreconditionError


def _apply(state: Any, op: dict[str, Any], actor: str, **kw: Any) -> Any:
    return crdt.apply("map", state, op, actor, **kw)


def _value(state: Any) -> dict[str, Any]:
    out: dict[str, Any] = crdt.value("map", state)
    return out


def _ctx(state: Any) -> bytes:
    return crdt.context("map", state)


def _merge(*states: Any) -> Any:
    out = states[0]
    for s in states[1:]:
        out = crdt.merge("map", out, s)
    return out


def test_every_field_type_in_the_shape_riaks_http_api_takes_and_shows() -> None:
    m = _apply(
        crdt.new("map"),
        {
            "update": {
                "name_register": "v",
                "other_register": {"assign": "w"},
                "visits_counter": 1,
                "hits_counter": {"increment": 5},
                "tags_set": {"add": "x"},
                "on_flag": "enable",
                "sub_map": {"update": {"deep_map": {"update": {"n_counter": -2}}}},
            }
        },
        "a",
        now_us=10,
    )
    assert _value(m) == {
        "hits_counter": 5,
        "name_register": "v",
        "on_flag": True,
        "other_register": "w",
        "sub_map": {"deep_map": {"n_counter": -2}},
        "tags_set": ["x"],
        "visits_counter": 1,
    }


def test_an_update_concurrent_with_a_remove_of_the_field_survives() -> None:
    base = _apply(crdt.new("map"), {"update": {"name_register": "v1", "n_counter": 1}}, "a")
    removed = _apply(base, {"remove": ["name_register", "n_counter"]}, "a", context=_ctx(base))
    updated = _apply(base, {"update": {"name_register": "v2", "n_counter": 1}}, "b", now_us=5)
    assert _value(removed) == {}
    merged = _merge(removed, updated)
    assert merged == _merge(updated, removed)
    # The update survives with the value its updater made (what it saw plus its op).
    assert _value(merged) == {"name_register": "v2", "n_counter": 2}


def test_a_field_removed_then_updated_starts_afresh() -> None:
    m = _apply(crdt.new("map"), {"update": {"n_counter": 5, "tags_set": {"add": "x"}}}, "a")
    m = _apply(m, {"remove": ["n_counter", "tags_set"]}, "a", context=_ctx(m))
    m = _apply(m, {"update": {"n_counter": 1, "tags_set": {"add": "y"}}}, "a")
    assert _value(m) == {"n_counter": 1, "tags_set": ["y"]}


def test_a_re_added_field_resets_what_its_remover_saw_of_a_concurrent_update() -> None:
    base = _apply(crdt.new("map"), {"update": {"tags_set": {"add": "x"}, "n_counter": 5}}, "a")
    a = _apply(base, {"remove": ["tags_set", "n_counter"]}, "a", context=_ctx(base))
    a = _apply(a, {"update": {"tags_set": {"add": "y"}, "n_counter": 1}}, "a")
    b = _apply(base, {"update": {"tags_set": {"add": "z"}, "n_counter": 1}}, "b")
    # x and a's 5 were observed by the remove; y, z and both new increments were not.
    assert _value(_merge(a, b)) == {"n_counter": 2, "tags_set": ["y", "z"]}


def test_a_remove_without_context_needs_the_field_present() -> None:
    m = _apply(crdt.new("map"), {"update": {"name_register": "v"}}, "a")
    with pytest.raises(PreconditionError, match="map field 'gone_set' not present"):
        _apply(m, {"remove": ["gone_set"]}, "a")
    assert _value(_apply(m, {"remove": ["name_register"]}, "a")) == {}


def test_a_remove_of_updates_not_yet_seen_waits_for_them() -> None:
    ahead = _apply(crdt.new("map"), {"update": {"old_register": "v", "keep_flag": "enable"}}, "a")
    lagging = _apply(crdt.new("map"), {"update": {"n_counter": 1}}, "b")
    lagging = _apply(lagging, {"remove": ["old_register"]}, "b", context=_ctx(ahead))
    assert lagging.deferred
    caught_up = _merge(lagging, ahead)
    assert _value(caught_up) == {"keep_flag": True, "n_counter": 1}
    assert not caught_up.deferred


def test_nested_maps_update_and_remove_with_the_top_context() -> None:
    m = _apply(
        crdt.new("map"),
        {"update": {"sub_map": {"update": {"a_set": {"add_all": ["x", "y"]}}}}},
        "a",
    )
    seen = _ctx(m)
    m = _apply(m, {"update": {"sub_map": {"update": {"a_set": {"add": "z"}}}}}, "b")
    m = _apply(
        m,
        {"update": {"sub_map": {"update": {"a_set": {"remove_all": ["x", "z"]}}}}},
        "c",
        context=seen,
    )
    assert _value(m) == {"sub_map": {"a_set": ["y", "z"]}}  # z was not seen by the context
    m = _apply(m, {"update": {"sub_map": {"remove": ["a_set"]}}}, "c", context=_ctx(m))
    assert _value(m) == {"sub_map": {}}


def test_a_nested_precondition_names_the_field_path() -> None:
    m = _apply(crdt.new("map"), {"update": {"sub_map": {"update": {"a_set": {"add": "x"}}}}}, "a")
    with pytest.raises(PreconditionError, match=r"^sub_map: a_set: set element 'q' not present"):
        _apply(m, {"update": {"sub_map": {"update": {"a_set": {"remove": "q"}}}}}, "a")


def test_concurrent_register_assignments_keep_the_greatest_timestamp() -> None:
    base = crdt.new("map")
    a = _apply(base, {"update": {"name_register": "from a"}}, "a", now_us=200)
    b = _apply(base, {"update": {"name_register": "from b"}}, "b", now_us=100)
    assert _value(_merge(a, b)) == _value(_merge(b, a)) == {"name_register": "from a"}


def test_a_flag_enabled_concurrently_with_a_disable_stays_on() -> None:
    base = _apply(crdt.new("map"), {"update": {"on_flag": "enable"}}, "a")
    off = _apply(base, {"update": {"on_flag": "disable"}}, "a", context=_ctx(base))
    on = _apply(base, {"update": {"on_flag": "enable"}}, "b")
    assert _value(off) == {"on_flag": False}
    assert _value(_merge(off, on)) == {"on_flag": True}


def test_max_depth_bounds_nesting_and_names_the_limit() -> None:
    limits = crdt.Limits(max_depth=2)
    ok = {"update": {"a_map": {"update": {"n_counter": 1}}}}
    m = crdt.apply("map", crdt.new("map"), ok, "a", limits=limits)
    deep = {"update": {"a_map": {"update": {"b_map": {"update": {"n_counter": 1}}}}}}
    with pytest.raises(LimitError, match=r"^a_map: b_map: max_depth: maps nest at most 2 deep"):
        crdt.apply("map", m, deep, "a", limits=limits)


def test_max_elements_bounds_a_maps_fields_and_its_sets() -> None:
    limits = crdt.Limits(max_elements=2)
    m = crdt.apply(
        "map", crdt.new("map"), {"update": {"a_counter": 1, "b_counter": 1}}, "a", limits=limits
    )
    with pytest.raises(LimitError, match="max_elements: the map would hold 3 fields"):
        crdt.apply("map", m, {"update": {"c_counter": 1}}, "a", limits=limits)
    big_set = {"update": {"a_counter": 1, "s_set": {"add_all": ["x", "y", "z"]}}}
    with pytest.raises(LimitError, match="max_elements"):
        crdt.apply("map", crdt.new("map"), big_set, "a", limits=limits)


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ({}, "bad map op"),
        ({"update": {}}, "empty map op"),
        ({"update": []}, "'update' takes an object"),
        ({"update": {"name": "v"}}, "name it <name>_<type>"),
        ({"update": {"_register": "v"}}, "name it <name>_<type>"),
        ({"update": {"x_list": "v"}}, "name it <name>_<type>"),
        ({"update": {"n_counter": 1}, "remove": ["n_counter"]}, "both updates and removes"),
        ({"update": {"n_counter": "1"}}, r'^n_counter: bad counter op .*"increment"'),
        ({"update": {"on_flag": True}}, '^on_flag: bad flag op .* "enable"'),
        ({"update": {"v_register": 3}}, "^v_register: bad register op"),
        ({"update": {"s_set": ["x"]}}, "^s_set: bad set op"),
        ({"remove": "old_register"}, "'remove' a list"),
    ],
)
def test_a_bad_op_says_what_to_send(op: Any, message: str) -> None:
    with pytest.raises(CrdtError, match=message):
        _apply(crdt.new("map"), op, "a")


def test_a_failed_op_leaves_the_state_untouched() -> None:
    m = _apply(crdt.new("map"), {"update": {"n_counter": 1}}, "a")
    raw = crdt.encode("map", m)
    with pytest.raises(PreconditionError):
        _apply(m, {"update": {"n_counter": 1}, "remove": ["gone_flag"]}, "a")
    assert crdt.encode("map", m) == raw


def test_a_decoded_map_with_a_bad_field_name_is_refused() -> None:
    m = _apply(crdt.new("map"), {"update": {"n_counter": 1}}, "a")
    raw = crdt.encode("map", m).replace(b"n_counter", b"n_counted")
    with pytest.raises(CrdtFormatError, match="name it"):
        crdt.decode(raw)


def test_a_nested_remove_waiting_for_adds_settles_when_the_field_takes_a_newer_clock() -> None:
    ahead = _apply(crdt.new("map"), {"update": {"n_counter": 1}}, "b")
    m = _apply(crdt.new("map"), {"update": {"s_set": {"remove": "x"}}}, "a", context=_ctx(ahead))
    (waiting,) = m.fields["s_set"].values()
    assert waiting.deferred  # the set waits for b's events
    m = _apply(_merge(m, ahead), {"update": {"s_set": {"add": "x"}}}, "a")
    (settled,) = m.fields["s_set"].values()
    assert not settled.deferred  # its new clock (the map's) has seen them
    assert _value(m) == {"n_counter": 1, "s_set": ["x"]}
    assert crdt.decode(crdt.encode("map", m)) == ("map", m)


def test_a_field_named_twice_in_a_remove_is_removed_once() -> None:
    m = _apply(crdt.new("map"), {"update": {"a_flag": "enable", "b_flag": "enable"}}, "a")
    assert _value(_apply(m, {"remove": ["a_flag", "a_flag"]}, "a")) == {"b_flag": True}
