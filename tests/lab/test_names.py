"""Names: one lab id on every name, every interface name within Linux's 15 characters."""

from __future__ import annotations

import random
import re

import pytest

from dynamo.tools.lab.names import MAX_IFNAME_CHARS, LabNames, lab_id_of, new_lab_id


def test_lab_id_is_prefix_and_six_hex_digits_drawn_from_the_rng() -> None:
    ids = [new_lab_id(random.Random(7)) for _ in range(2)]
    assert ids[0] == ids[1]  # the rng decides: seeded, reproducible
    assert re.fullmatch(r"dl[0-9a-f]{6}", ids[0])
    assert re.fullmatch(r"zz9[0-9a-f]{6}", new_lab_id(random.Random(1), "zz9"))


@pytest.mark.parametrize("prefix", ["", "DL", "1dl", "dl-x", "abcde"])
def test_a_prefix_that_could_overflow_or_break_names_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="lowercase letters or digits"):
        new_lab_id(random.Random(0), prefix)


def test_every_name_carries_the_lab_id() -> None:
    n = LabNames(lab_id="dl00beef", hosts=2)
    assert n.namespaces() == ("dl00beef-h0", "dl00beef-h1", "dl00beef-sw")
    assert (n.bridge, n.root_veth, n.switch_root_veth) == (
        "dl00beef-br",
        "dl00beef-r",
        "dl00beef-sr",
    )
    assert (n.host_veth(1), n.switch_veth(1)) == ("dl00beef-h1", "dl00beef-s1")


def test_the_longest_name_fits_ifnamsiz_for_a_full_24_with_the_longest_prefix() -> None:
    n = LabNames(lab_id=new_lab_id(random.Random(0), "abcd"), hosts=253)
    names = [n.bridge, n.root_veth, n.switch_root_veth]
    names += [f(i) for i in range(n.hosts) for f in (n.host_veth, n.switch_veth)]
    assert max(len(name) for name in names) <= MAX_IFNAME_CHARS


def test_names_too_long_for_linux_are_refused_before_any_command() -> None:
    with pytest.raises(ValueError, match="15"):
        LabNames(lab_id="dlabcdef1234", hosts=100)  # "dlabcdef1234-h99": 16
    with pytest.raises(ValueError, match="at least 1 host"):
        LabNames(lab_id="dl00beef", hosts=0)


@pytest.mark.parametrize(
    ("name", "prefix", "expected"),
    [
        ("dl00beef-h0", "dl", "dl00beef"),
        ("dl00beef-sw", "dl", "dl00beef"),
        ("dl00beef-r", "dl", "dl00beef"),
        ("dl00bee-h0", "dl", None),  # 5 hex digits: not a lab id
        ("dl00beef0-h0", "dl", None),  # 7 hex digits
        ("dl00beeg-h0", "dl", None),  # not hex
        ("dl00beef", "dl", None),  # no suffix: not a name the lab makes
        ("eth0", "dl", None),
        ("xx00beef-h0", "dl", None),  # another prefix's
        ("xx00beef-h0", "xx", "xx00beef"),
        ("dla00beef-h0", "dl", None),  # a prefix that begins like ours is not ours
    ],
)
def test_lab_id_of_finds_only_names_of_the_prefix(
    name: str, prefix: str, expected: str | None
) -> None:
    assert lab_id_of(name, prefix) == expected
