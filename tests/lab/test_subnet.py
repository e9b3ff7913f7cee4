"""Subnet choice: never overlap what the machine uses, and say what clashes when refusing."""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Network

import pytest

from dynamo.tools.lab.errors import SubnetInUse
from dynamo.tools.lab.subnet import (
    InUse,
    check_free,
    choose_subnet,
    networks_in_use,
    plan_addresses,
)

# Shaped as `ip -4 -j addr` and `ip -4 -j route show table all` print them.
ADDR_JSON = [
    {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.7.3.9", "prefixlen": 24}]},
    {"ifname": "ifb0", "addr_info": []},
    {"ifname": "eth1", "addr_info": [{"family": "inet6", "local": "fd00::2", "prefixlen": 64}]},
]
ROUTE_JSON = [
    {"dst": "default", "gateway": "10.7.3.1", "dev": "eth0"},
    {"dst": "10.7.3.0/24", "dev": "eth0"},
    {"dst": "10.200.0.0/16", "dev": "tun0", "table": "vpn"},
    {"type": "local", "dst": "10.7.3.9", "dev": "eth0", "table": "local"},
]


def test_addresses_and_routes_of_every_table_count_and_default_routes_do_not() -> None:
    found = networks_in_use(ADDR_JSON, ROUTE_JSON)
    assert [str(u.network) for u in found] == [
        "127.0.0.0/8",
        "10.7.3.0/24",
        "10.7.3.0/24",
        "10.200.0.0/16",
        "10.7.3.9/32",
    ]
    assert found[1].what == "address 10.7.3.9/24 on eth0"
    assert found[3].what == "route 10.200.0.0/16 on tun0 (table vpn)"


def test_malformed_or_empty_output_yields_nothing_in_use() -> None:
    assert networks_in_use([], []) == []
    assert networks_in_use({"unexpected": 1}, None) == []


def test_a_chosen_subnet_is_a_24_of_10_8_that_overlaps_nothing() -> None:
    in_use = networks_in_use(ADDR_JSON, ROUTE_JSON)
    for seed in range(50):
        subnet = choose_subnet(in_use, random.Random(seed))
        assert subnet.prefixlen == 24
        assert subnet.subnet_of(IPv4Network("10.0.0.0/8"))
        assert not any(subnet.overlaps(u.network) for u in in_use)


def test_the_choice_scans_when_random_draws_keep_hitting_used_space() -> None:
    space = IPv4Network("10.9.0.0/22")  # four /24s, three of them used
    in_use = [InUse(network=IPv4Network(f"10.9.{k}.0/24"), what="x") for k in (0, 1, 3)]
    assert choose_subnet(in_use, random.Random(0), space=space) == IPv4Network("10.9.2.0/24")


def test_no_free_24_is_refused_with_what_to_do() -> None:
    in_use = [InUse(network=IPv4Network("10.0.0.0/8"), what="route 10.0.0.0/8 on vpn0")]
    with pytest.raises(SubnetInUse, match="pass a free subnet explicitly"):
        choose_subnet(in_use, random.Random(0))


def test_a_given_subnet_that_overlaps_is_refused_naming_the_clash() -> None:
    in_use = networks_in_use(ADDR_JSON, ROUTE_JSON)
    with pytest.raises(SubnetInUse) as e:
        check_free(IPv4Network("10.200.5.0/24"), in_use)
    assert "route 10.200.0.0/16 on tun0" in str(e.value)
    assert "pass another subnet" in str(e.value)
    assert check_free(IPv4Network("10.201.5.0/24"), in_use) == IPv4Network("10.201.5.0/24")


def test_root_takes_the_first_address_and_host_i_the_i_plus_second() -> None:
    a = plan_addresses(IPv4Network("10.1.2.0/24"), 3)
    assert a.root == IPv4Address("10.1.2.1")
    assert a.hosts == tuple(IPv4Address(f"10.1.2.{k}") for k in (2, 3, 4))
    assert len(plan_addresses(IPv4Network("10.1.2.0/24"), 253).hosts) == 253


@pytest.mark.parametrize(("subnet", "hosts"), [("10.1.2.0/24", 254), ("10.1.2.0/30", 2)])
def test_more_hosts_than_the_subnet_holds_are_refused(subnet: str, hosts: int) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        plan_addresses(IPv4Network(subnet), hosts)
