"""Which IPv4 subnet a lab uses, and the proof that the machine does not use it.

A lab's hosts must be reachable from the root namespace through its veth, so the
lab's subnet becomes a route there: if it overlapped an address or a route the
machine already has, the lab would hijack (or lose) real traffic. So the subnet is
checked against every IPv4 address and every route of every table in the root
namespace (``ip -4 -j addr``, ``ip -4 -j route show table all``; default routes
overlap everything and are ignored) and refused when it overlaps, never used
anyway. Left to choose, the lab draws a random /24 inside 10.0.0.0/8, so two labs
started at the same moment are unlikely to draw the same one (a lab already up is
seen through its root veth's address).

Addressing inside a subnet: the root namespace takes the first address, host ``i``
the ``i + 2``-th. Everything here is pure: the ``ip`` output comes in as parsed JSON.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_network

from dynamo.tools.lab.errors import SubnetInUse

LAB_SPACE = IPv4Network("10.0.0.0/8")
LAB_PREFIXLEN = 24
RANDOM_ATTEMPTS = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class InUse:
    """A network the machine uses, and what uses it (for the error message)."""

    network: IPv4Network
    what: str


def _field(entry: object, key: str) -> str | None:
    if isinstance(entry, dict):
        value = entry.get(key)
        if isinstance(value, str | int):
            return str(value)
    return None


def networks_in_use(addr_json: object, route_json: object) -> list[InUse]:
    """The IPv4 networks of ``ip -4 -j addr`` and ``ip -4 -j route show table all`` output."""
    found: list[InUse] = []
    for link in addr_json if isinstance(addr_json, list) else []:
        infos = link.get("addr_info", []) if isinstance(link, dict) else []
        for info in infos if isinstance(infos, list) else []:
            local, prefixlen = _field(info, "local"), _field(info, "prefixlen")
            if local is None or prefixlen is None or _field(info, "family") not in (None, "inet"):
                continue
            net = ip_network(f"{local}/{prefixlen}", strict=False)
            if isinstance(net, IPv4Network):
                found.append(
                    InUse(network=net, what=f"address {local}/{prefixlen} on {_dev(link)}")
                )
    for route in route_json if isinstance(route_json, list) else []:
        dst = _field(route, "dst")
        if dst is None or dst == "default":
            continue
        net = ip_network(dst, strict=False)
        if isinstance(net, IPv4Network):
            table = _field(route, "table") or "main"
            found.append(InUse(network=net, what=f"route {dst} on {_dev(route)} (table {table})"))
    return found


def _dev(entry: object) -> str:
    return _field(entry, "ifname") or _field(entry, "dev") or "?"


def overlaps(subnet: IPv4Network, in_use: list[InUse]) -> list[InUse]:
    """The entries of ``in_use`` that ``subnet`` overlaps."""
    return [u for u in in_use if subnet.overlaps(u.network)]


def check_free(subnet: IPv4Network, in_use: list[InUse]) -> IPv4Network:
    """``subnet`` if nothing on the machine overlaps it; ``SubnetInUse`` naming what does."""
    clashes = overlaps(subnet, in_use)
    if clashes:
        listed = "; ".join(c.what for c in clashes[:5])
        raise SubnetInUse(
            f"subnet {subnet} overlaps what this machine uses ({listed}):"
            " pass another subnet (e.g. Lab(..., subnet='10.213.7.0/24')) that no address"
            " or route of `ip addr` / `ip route show table all` covers"
        )
    return subnet


def choose_subnet(
    in_use: list[InUse],
    rng: random.Random,
    *,
    space: IPv4Network = LAB_SPACE,
    prefixlen: int = LAB_PREFIXLEN,
) -> IPv4Network:
    """A /``prefixlen`` inside ``space`` that overlaps nothing in use: random, then scanned."""
    count = 2 ** (prefixlen - space.prefixlen)
    size = 2 ** (32 - prefixlen)
    base = int(space.network_address)
    candidates = [rng.randrange(count) for _ in range(RANDOM_ATTEMPTS)]
    for k in [*candidates, *range(count)]:
        subnet = IPv4Network((base + k * size, prefixlen))
        if not overlaps(subnet, in_use):
            return subnet
    raise SubnetInUse(
        f"every /{prefixlen} of {space} overlaps an address or route of this machine:"
        " pass a free subnet explicitly (Lab(..., subnet='172.31.250.0/24'))"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Addressing:
    """A lab's subnet, the root namespace's address in it, and each host's."""

    subnet: IPv4Network
    root: IPv4Address
    hosts: tuple[IPv4Address, ...]


def plan_addresses(subnet: IPv4Network, hosts: int) -> Addressing:
    """The root namespace takes the first address of ``subnet``, host ``i`` the ``i + 2``-th."""
    usable = subnet.num_addresses - 3  # network, broadcast and the root namespace's address
    if hosts < 1 or hosts > usable:
        raise ValueError(
            f"hosts={hosts} does not fit subnet {subnet} ({max(usable, 0)} host addresses):"
            " use between 1 and that many hosts, or a larger subnet"
        )
    base = subnet.network_address
    return Addressing(subnet=subnet, root=base + 1, hosts=tuple(base + 2 + i for i in range(hosts)))
