"""Faults as nft text: silent drops on the receiver's input, whole scripts, never reject."""

from __future__ import annotations

import pytest

from dynamo.tools.lab.nftrules import (
    drops_script,
    host_scripts,
    partition_pairs,
    table_script,
    union,
)

ADDRS = ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.10"]


def test_each_host_table_has_one_accepting_input_chain() -> None:
    assert table_script() == (
        "table inet dynamolab {\n"
        "  chain input {\n"
        "    type filter hook input priority filter; policy accept;\n"
        "  }\n"
        "}\n"
    )


def test_a_drop_script_replaces_the_chain_whole_with_sources_in_numeric_order() -> None:
    assert drops_script(["10.0.0.10", "10.0.0.9", "10.0.0.9"]) == (
        "flush chain inet dynamolab input\n"
        "add rule inet dynamolab input ip saddr { 10.0.0.9, 10.0.0.10 } counter drop\n"
    )
    assert drops_script([]) == "flush chain inet dynamolab input\n"


@pytest.mark.parametrize(
    ("a", "b", "symmetric", "expected"),
    [
        ({0}, {1}, True, {(0, 1), (1, 0)}),
        ({0}, {1}, False, {(0, 1)}),
        ({0}, {1, 2}, True, {(0, 1), (0, 2), (1, 0), (2, 0)}),
        ({0, 3}, {2}, False, {(0, 2), (3, 2)}),
    ],
)
def test_partition_pairs(
    a: set[int], b: set[int], symmetric: bool, expected: set[tuple[int, int]]
) -> None:
    assert partition_pairs(a, b, symmetric=symmetric, hosts=4) == expected


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (set(), {1}, "side_a is empty"),
        ({0}, set(), "side_b is empty"),
        ({0, 1}, {1, 2}, r"hosts \[1\] are on both sides"),
        ({0}, {4}, r"side_b has host indices \[4\]: use indices from 0 to 3"),
        ({-1}, {1}, r"side_a has host indices \[-1\]"),
    ],
)
def test_a_partition_that_makes_no_sense_is_refused(a: set[int], b: set[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        partition_pairs(a, b, symmetric=True, hosts=4)


def test_the_receiver_drops_what_its_pairs_send_it() -> None:
    pairs = partition_pairs({0}, {1, 3}, symmetric=False, hosts=4)
    scripts = host_scripts(pairs, ADDRS)
    assert scripts[0] == drops_script([])  # the sender's side holds no rule: sending is silent
    assert scripts[1] == drops_script(["10.0.0.2"])
    assert scripts[2] == drops_script([])
    assert scripts[3] == drops_script(["10.0.0.2"])


def test_layers_combine_and_nothing_ever_rejects() -> None:
    layers = {
        "partition-1": partition_pairs({0}, {1}, symmetric=True, hosts=4),
        "flap-2": partition_pairs({2}, {1}, symmetric=False, hosts=4),
    }
    pairs = union(layers)
    assert pairs == {(0, 1), (1, 0), (2, 1)}
    scripts = host_scripts(pairs, ADDRS)
    assert scripts[1] == drops_script(["10.0.0.2", "10.0.0.4"])
    assert union({}) == frozenset()
    assert not any("reject" in s for s in [*scripts, table_script()])
