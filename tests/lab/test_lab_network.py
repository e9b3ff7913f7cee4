"""Real namespaces: hosts reach each other, partitions drop silently, heal and flaps restore.

Needs root, ``ip`` and ``nft`` (skips with the reason otherwise). A probe that must
fail waits out a short timeout: that wait is the fact under test (a dropped SYN
hangs, a refused one answers at once), not a sleep hoping for a state.
"""

from __future__ import annotations

import re
import time
from ipaddress import IPv4Address
from pathlib import Path

from dynamo.tools.lab import Lab
from tests.lab.probes import (
    CLOSED_PORT,
    ECHO_PORT,
    LAB_MARKS,
    echo_server,
    lines,
    probe_from_root,
    send_from_root,
    tcp_probe,
    udp_send,
    udp_sink,
    wait_until,
)

pytestmark = LAB_MARKS

CUT_TIMEOUT_S = 0.5  # how long a probe that should hang waits before it says "timeout"


def start_echo(lab: Lab, host: int) -> None:
    """An echo server in ``host``, answering from the root namespace before this returns."""
    lab.spawn(host, echo_server(lab.address(host)))
    address = lab.address(host)
    wait_until(lambda: probe_from_root(address, timeout_s=0.5) == "ok", 10.0, f"echo on {host}")


def probe(lab: Lab, src: int, dst: int, port: int = ECHO_PORT, timeout_s: float = 1.0) -> str:
    """The TCP probe from host ``src`` to host ``dst``: ok, timeout or refused."""
    done = lab.run(src, tcp_probe(lab.address(dst), port, timeout_s))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def drops(lab: Lab, host: int, src: int) -> bool:
    """Whether the kernel's rules of ``host`` hold a drop of ``src``'s address."""
    return re.search(rf"{re.escape(lab.address(src))}(?!\d)", lab.nft_table(host)) is not None


def test_hosts_reach_each_other_and_the_root_namespace_reaches_every_host(lab: Lab) -> None:
    addresses = [lab.address(i) for i in range(lab.hosts)]
    assert len({*addresses, lab.root_address}) == 4
    assert all(IPv4Address(a) in lab.subnet for a in [*addresses, lab.root_address])
    for host in range(lab.hosts):
        start_echo(lab, host)  # reached from the root namespace
    assert probe(lab, 1, 0) == "ok"
    assert probe(lab, 2, 1) == "ok"
    assert probe(lab, 0, 2) == "ok"


def test_a_symmetric_partition_drops_silently_both_ways_and_heal_restores(lab: Lab) -> None:
    start_echo(lab, 0)
    start_echo(lab, 1)
    assert probe(lab, 1, 0, CLOSED_PORT) == "refused"  # uncut, a closed port answers at once

    lab.partition({0}, {1})
    assert lab.cut_pairs() == {(0, 1), (1, 0)}
    started = time.monotonic()
    assert probe(lab, 1, 0, timeout_s=CUT_TIMEOUT_S) == "timeout"
    assert time.monotonic() - started >= CUT_TIMEOUT_S  # the connect hung until its timeout
    assert probe(lab, 0, 1, timeout_s=CUT_TIMEOUT_S) == "timeout"
    # Dropped, not rejected: even a closed port stays silent (no RST comes back).
    assert probe(lab, 1, 0, CLOSED_PORT, timeout_s=CUT_TIMEOUT_S) == "timeout"
    assert probe(lab, 2, 0) == "ok"  # host 2 is on neither side
    assert probe_from_root(lab.address(0)) == "ok"  # the root namespace is never cut
    assert "reject" not in lab.nft_table(0)

    lab.heal()
    assert lab.cut_pairs() == frozenset()
    assert probe(lab, 1, 0) == "ok"
    assert probe(lab, 0, 1) == "ok"


def test_an_asymmetric_partition_drops_only_from_a_to_b(lab: Lab, tmp_path: Path) -> None:
    logs = [tmp_path / "h0.log", tmp_path / "h1.log"]
    for host, log in enumerate(logs):
        lab.spawn(host, udp_sink(lab.address(host)), log_path=log)
    wait_until(lambda: all("ready" in lines(log) for log in logs), 10.0, "the UDP sinks")

    lab.partition({0}, {1}, symmetric=False)
    assert lab.cut_pairs() == {(0, 1)}
    # The sender sees nothing wrong (a drop on its own output would fail sendto: EPERM).
    assert lab.run(0, udp_send(lab.address(1), "a-to-b")).stdout.strip() == "sent"
    assert lab.run(1, udp_send(lab.address(0), "b-to-a")).stdout.strip() == "sent"
    wait_until(lambda: "b-to-a" in lines(logs[0]), 5.0, "B's datagrams at A")
    send_from_root(lab.address(1), "marker")  # sent after A's, on an uncut path
    wait_until(lambda: "marker" in lines(logs[1]), 5.0, "the root's marker at B")
    assert "a-to-b" not in lines(logs[1])
    assert "counter packets 3 " in lab.nft_table(1)  # B's input dropped A's 3 datagrams
    assert "drop" not in lab.nft_table(0)  # A drops nothing: B to A is open

    lab.heal()
    lab.run(0, udp_send(lab.address(1), "after-heal"))
    wait_until(lambda: "after-heal" in lines(logs[1]), 5.0, "A's datagrams at B after heal")


def test_a_flapping_link_cuts_heals_and_stops_by_itself_leaving_other_cuts(lab: Lab) -> None:
    start_echo(lab, 0)
    lab.partition({2}, {0})

    flap = lab.flap(0, 1, period_s=0.4, duration_s=1.2)
    wait_until(lambda: drops(lab, 0, 1), 5.0, "the flapping link cut (h0 dropping h1)")
    wait_until(lambda: not drops(lab, 0, 1), 5.0, "the flapping link healed")
    flap.wait(5.0)
    assert not flap.running
    assert flap.toggles_done == len(flap.schedule)

    assert lab.cut_pairs() == {(0, 2), (2, 0)}  # the partition beside the flap stands
    assert not drops(lab, 0, 1)
    assert drops(lab, 0, 2)
    assert probe(lab, 1, 0) == "ok"
    assert probe(lab, 2, 0, timeout_s=CUT_TIMEOUT_S) == "timeout"
