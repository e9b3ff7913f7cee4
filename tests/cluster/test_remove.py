"""A node that never comes back: ``dynamo remove`` (Riak's force-remove) and ``dynamo
replace``, on real processes. Verified on the new preference lists, copy by copy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dynamo.tools.localcluster import LocalCluster, http, wait_for
from http_api.admin import get_json
from tests.cluster.conftest import MakeCluster

pytestmark = pytest.mark.cluster

TEXT = {"Content-Type": "text/plain"}
FAST = ("aae_quiet_interval_s=0.5", "aae_interval_s=0.2", "handoff_interval_s=0.5")
KEYS = [f"k{i}" for i in range(30)]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynamo.tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _write_all(c: LocalCluster) -> None:
    for key in KEYS:
        status, _, body = http("PUT", f"{c[0].url}/buckets/r/keys/{key}?w=all", key.encode(), TEXT)
        assert status == 204, body


def _on_every_primary(c: LocalCluster) -> bool:
    """Every key held, alike, by each of its primaries on the current ring."""
    urls = {n.node_id: n.url for n in c.running()}
    for key in KEYS:
        primaries = get_json(f"{c[0].url}/admin/preflist/r/{key}")["primaries"]
        if len(primaries) != 3 or not set(primaries) <= set(urls):
            return False
        copies = [get_json(f"{urls[p]}/admin/local/r/{key}") for p in primaries]
        if not all(cp["found"] for cp in copies) or len({cp["context"] for cp in copies}) != 1:
            return False
    return True


def test_remove_a_killed_node_and_every_key_is_back_to_three_replicas(
    make_cluster: MakeCluster,
) -> None:
    c = make_cluster(4, settings=FAST)
    c.wait_converged()
    _write_all(c)
    done = _cli("remove", "n4", "--url", c[0].url)
    assert done.returncode == 1
    assert "still answers" in done.stderr
    c[3].kill9()
    c.wait_up_everywhere(c[3], up=False)
    done = _cli("remove", "n4", "--url", c[1].url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["members"] == ["n1", "n2", "n3"]
    c.wait_converged(members=3)
    members = get_json(c[2].url + "/admin/members")["members"]
    assert {m["node"]: m["removed"] for m in members}["n4"] is True
    wait_for(lambda: _on_every_primary(c), 90, "every key on its 3 primaries of the new ring")

    # Back on the same data, the removed node finds itself removed and stops.
    c.start(c[3], wait=False)
    wait_for(lambda: not c[3].running(), 60, "the removed node to stop")
    assert "was removed from the cluster" in (c.root / "n4.log").read_text()
    assert get_json(c[0].url + "/admin/ring")["members"] == ["n1", "n2", "n3"]


def test_replace_hands_the_dead_nodes_ranges_to_a_new_one(make_cluster: MakeCluster) -> None:
    c = make_cluster(4, settings=FAST)
    c.wait_converged()
    _write_all(c)
    before = get_json(c[0].url + "/admin/ring")["ownership"]["n4"]
    c[3].kill9()
    c.wait_up_everywhere(c[3], up=False)
    new = c.add_node()
    c.start(new)
    wait_for(lambda: "n5" in get_json(c[0].url + "/admin/ring")["members"], 60, "n5 in the ring")
    done = _cli("replace", "n4", "n5", "--url", c[0].url)
    assert done.returncode == 0, done.stderr
    c.wait_converged(members=4)
    ring = get_json(c[1].url + "/admin/ring")
    assert ring["members"] == ["n1", "n2", "n3", "n5"]
    assert ring["ownership"]["n5"] == pytest.approx(before)  # exactly n4's tokens
    wait_for(lambda: _on_every_primary(c), 90, "every key on its 3 primaries of the new ring")
