"""Real topologies in the lab (network namespaces, needs root): 3 hosts x 2 node
processes, each host its own address and location. Every key's replicas sit on three
different hosts, so losing a whole host keeps every quorum available and loses nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dynamo.tools.hosts import HostCluster, LabSpawner, lab_addrs
from dynamo.tools.lab import Lab, environment_problems
from dynamo.tools.localcluster import http, wait_for
from http_api.admin import get_json

problems = environment_problems()
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(bool(problems), reason="; ".join(problems) or "lab available"),
]
TEXT = {"Content-Type": "text/plain"}


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[HostCluster]:
    with Lab(3) as lab:
        hc = HostCluster(tmp_path, lab_addrs(lab), 2, LabSpawner(lab), ["preset=local"])
        try:
            hc.start()
            hc.wait_converged(120)
            yield hc
        except BaseException:
            print(hc.logs())
            raise
        finally:
            hc.stop()


def test_three_hosts_of_two_processes_lose_a_host_and_nothing_else(hosts: HostCluster) -> None:
    for url in hosts.node_urls():
        ring = get_json(url + "/admin/ring")
        assert ring["location_violations"] == 0
        assert sorted(set(ring["locations"].values())) == ["host1", "host2", "host3"]
        assert ring["location_ownership"] == pytest.approx(
            {"host1": 1 / 3, "host2": 1 / 3, "host3": 1 / 3}
        )
    keys = [f"k{i}" for i in range(40)]
    for i, key in enumerate(keys):
        url = hosts.client_url(i % 3)  # the host's one client address, shared by its processes
        status, _, body = http("PUT", f"{url}/buckets/b/keys/{key}?w=quorum", key.encode(), TEXT)
        assert status == 204, body
    for key in keys[:10]:
        pre = get_json(f"{hosts.node_url(1, 1)}/admin/preflist/b/{key}")
        assert sorted(pre["primary_locations"]) == ["host1", "host2", "host3"]

    hosts.kill(0)  # every process of host1 at once
    hosts.wait_down_everywhere(0)
    for i, key in enumerate(keys):
        url = hosts.client_url(1 + i % 2)
        status, _, body = http("GET", f"{url}/buckets/b/keys/{key}?r=quorum")
        assert (status, body) == (200, key.encode()), key
        status, _, body = http("PUT", f"{url}/buckets/b/keys/new-{key}?w=quorum", b"v", TEXT)
        assert status == 204, body

    hosts.start(0)
    hosts.wait_converged(120)

    def all_there() -> bool:
        for key in keys:
            status, _, body = http("GET", f"{hosts.client_url(0)}/buckets/b/keys/{key}?r=all")
            if (status, body) != (200, key.encode()):
                return False
        return True

    wait_for(all_there, 60, "every acknowledged write readable with r=all after the host is back")
    stats = get_json(hosts.node_url(0, 1) + "/stats")
    assert json.dumps(stats["ring_members"]).count("h") == 6
