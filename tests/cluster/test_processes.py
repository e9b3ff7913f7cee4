"""``dynamo start --processes 2`` on this machine: one client endpoint for the host's
processes, each its own node; a crashed one comes back; SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from dynamo.tools.hosts import HostCluster, LocalSpawner, free_local_base, local_addrs
from dynamo.tools.localcluster import http, wait_for
from http_api.admin import get_json
from pb_api.client import PbClient

pytestmark = pytest.mark.cluster


@pytest.fixture
def host(tmp_path: Path) -> Iterator[HostCluster]:
    base = free_local_base(1, 2)
    hc = HostCluster(tmp_path, local_addrs(1, base), 2, LocalSpawner(), ["preset=local"])
    try:
        hc.start()
        hc.wait_converged(60)
        yield hc
    except BaseException:
        print(hc.logs())
        raise
    finally:
        hc.stop()


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_two_processes_share_the_hosts_ports_and_come_back_from_a_crash(
    host: HostCluster,
) -> None:
    url = host.client_url(0)
    members = get_json(host.node_url(0, 1) + "/admin/members")["members"]
    assert sorted(m["node"] for m in members) == ["h1-1", "h1-2"]
    assert {m["location"] for m in members} == {"host1"}
    assert sorted(m["http_addr"] for m in members) == sorted(
        u.removeprefix("http://") for u in host.node_urls(0)
    )
    # The shared client port reaches both processes (the kernel spreads connections).
    seen = {get_json(url + "/stats")["nodename"] for _ in range(40)}
    assert seen == {"h1-1", "h1-2"}
    status, _, _ = http("PUT", f"{url}/buckets/b/keys/k", b"v", {"Content-Type": "text/plain"})
    assert status == 204
    a = host.addrs[0]
    with PbClient(f"pb://{a.address}:{a.pb_port}") as pb:
        assert pb.get("b", "k").value == b"v"

    supervisor = host.procs[0].pid
    first = _children(supervisor)
    assert len(first) == 2
    os.kill(first[0], signal.SIGKILL)
    wait_for(
        lambda: len(_children(supervisor)) == 2 and set(_children(supervisor)) != set(first),
        30,
        "the supervisor to restart the killed process",
    )
    wait_for(lambda: http("GET", host.node_url(0, 1) + "/ping")[0] == 200, 30, "h1-1 back")
    host.procs[0].send_signal(signal.SIGTERM)
    assert host.procs[0].wait(60) == 0
    for pid in _children_or_none(supervisor):
        pytest.fail(f"process {pid} outlived its supervisor")
    log = (host.root / "host1.log").read_text()
    assert "exited with -9: restarting" in log
    assert log.count("stopped") >= 2


def _children_or_none(pid: int) -> list[int]:
    try:
        return _children(pid)
    except OSError:
        return []
