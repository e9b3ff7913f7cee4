"""Network faults as nftables scripts: which packets each host drops, as text.

A fault is a set of directed pairs ``(src, dst)`` of host indices: packets from
``src`` to ``dst`` vanish. Each host namespace has its own table ``inet dynamolab``
with one chain on the *input* hook, and host ``dst`` drops there what comes from the
addresses of its pairs' ``src``. Why input, on the receiver:

- a drop on the sender's output hook is not silent: the kernel hands the sender
  ``EPERM`` (a UDP ``sendto`` fails, ``ping`` prints "Operation not permitted"),
  which no real partition does; a drop on the receiver's input is seen by nobody;
- ``drop``, never ``reject``: a rejected SYN is a "connection refused" at once, a
  dropped one hangs until the caller's timeout, as a cut cable or a dead switch does;
- ARP is not IP and still passes, so neighbours stay resolved and healing is
  immediate (a real partition would need a new ARP round; nothing here depends on it).
- IPv4 only (``ip saddr``): hosts have IPv4 addresses and link-local IPv6 ones, and
  nothing of ours speaks link-local IPv6, so that path is left open.

A host's chain is rewritten whole by one ``nft -f`` script (flush, then one rule),
which nft applies as a transaction: there is never a moment with half the rules.
The root namespace holds no rules: the test process there observes and is never cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set

TABLE_FAMILY = "inet"
TABLE_NAME = "dynamolab"
CHAIN_NAME = "input"

Pair = tuple[int, int]  # (src host, dst host): packets from src to dst are dropped


def table_script() -> str:
    """The nft script that creates a host's table and its (empty, accepting) input chain."""
    return (
        f"table {TABLE_FAMILY} {TABLE_NAME} {{\n"
        f"  chain {CHAIN_NAME} {{\n"
        "    type filter hook input priority filter; policy accept;\n"
        "  }\n"
        "}\n"
    )


def drops_script(sources: Iterable[str]) -> str:
    """The nft script that makes a host drop, silently, every packet from ``sources``."""
    lines = [f"flush chain {TABLE_FAMILY} {TABLE_NAME} {CHAIN_NAME}"]
    addresses = sorted(set(sources), key=lambda a: tuple(int(p) for p in a.split(".")))
    if addresses:
        lines.append(
            f"add rule {TABLE_FAMILY} {TABLE_NAME} {CHAIN_NAME}"
            f" ip saddr {{ {', '.join(addresses)} }} counter drop"
        )
    return "\n".join(lines) + "\n"


def _check_hosts(side: Set[int], hosts: int, name: str) -> None:
    if not side:
        raise ValueError(f"{name} is empty: a partition needs at least one host on each side")
    bad = sorted(i for i in side if not 0 <= i < hosts)
    if bad:
        raise ValueError(f"{name} has host indices {bad}: use indices from 0 to {hosts - 1}")


def partition_pairs(
    side_a: Set[int], side_b: Set[int], *, symmetric: bool, hosts: int
) -> frozenset[Pair]:
    """The pairs a partition cuts: A to B, and B to A too when ``symmetric``."""
    _check_hosts(side_a, hosts, "side_a")
    _check_hosts(side_b, hosts, "side_b")
    common = side_a & side_b
    if common:
        raise ValueError(f"hosts {sorted(common)} are on both sides: make the sides disjoint")
    pairs = {(a, b) for a in side_a for b in side_b}
    if symmetric:
        pairs |= {(b, a) for a, b in pairs}
    return frozenset(pairs)


def union(layers: Mapping[str, frozenset[Pair]]) -> frozenset[Pair]:
    """Every pair cut by any layer (a partition, a flapping link)."""
    return frozenset().union(*layers.values())


def host_scripts(pairs: Set[Pair], addresses: Sequence[str]) -> list[str]:
    """Host ``i``'s whole drop script for the cut ``pairs``, for every host ``i``."""
    return [
        drops_script(addresses[src] for src, dst in pairs if dst == i)
        for i in range(len(addresses))
    ]
