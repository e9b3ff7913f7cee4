"""Basho's official ``riak`` 2.7.0 Python client against real nodes, over PB (its default
protocol) and over HTTP: the scenarios in ``tests/support/riak_scenarios.py``, run in
the client's own environment (``.venv-riak``, made by ``make test``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dynamo.tools.localcluster import LocalCluster
from tests.cluster.conftest import MakeCluster

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
RIAK_PYTHON = ROOT / ".venv-riak" / "bin" / "python"


def run_scenario(scenario: str, protocol: str, c: LocalCluster, bucket: str, *extra: str) -> str:
    """Run one scenario against every running node of ``c``; its output, or the failure."""
    assert RIAK_PYTHON.exists(), f"{RIAK_PYTHON} is missing: run `make test`, which makes it"
    nodes = [f"--node=127.0.0.1:{n.http_port}:{n.pb_port}" for n in c.running()]
    cmd = [str(RIAK_PYTHON), "-W", "ignore", "-m", "tests.support.riak_scenarios", scenario]
    cmd += [f"--protocol={protocol}", f"--bucket={bucket}", *nodes, *extra]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{scenario} over {protocol} failed:\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.parametrize("protocol", ["pbc", "http"])
def test_riak_client_against_one_node(protocol: str, make_cluster: MakeCluster) -> None:
    c = make_cluster(1)
    c.wait_converged()
    assert "ok on 1 node" in run_scenario("basic", protocol, c, f"single-{protocol}")


@pytest.mark.parametrize("protocol", ["pbc", "http"])
def test_riak_client_against_every_node_of_three(protocol: str, make_cluster: MakeCluster) -> None:
    c = make_cluster(3)
    c.wait_converged()
    out = run_scenario("basic", protocol, c, f"three-{protocol}", "--w=all", "--r=all")
    assert "ok on 3 node" in out
    victim = c[2]
    assert victim.stop() == 0
    c.wait_up_everywhere(victim, up=False)
    for proto in ("pbc", "http"):
        out = run_scenario("quorum-failure", proto, c, f"quorum-{protocol}-{proto}")
        assert "ok on 2 node" in out


def make_types(c: LocalCluster) -> None:
    """The bucket types a Riak operator makes with ``riak admin bucket-type``, with ours."""
    kinds = (("counters", "counter"), ("sets", "set"), ("maps", "map"), ("hlls", "hll"))
    for name, kind in kinds:
        props = json.dumps({"props": {"datatype": kind}})
        for action in (["create", name, props], ["activate", name]):
            cmd = [sys.executable, "-m", "dynamo.tools.cli", "bucket-type", *action]
            done = subprocess.run([*cmd, "--url", c[0].url], capture_output=True, text=True)
            assert done.returncode == 0, f"bucket-type {action}: {done.stderr}"


@pytest.mark.parametrize("nodes", [1, 3])
def test_riak_client_data_types(nodes: int, make_cluster: MakeCluster) -> None:
    c = make_cluster(nodes)
    c.wait_converged()
    make_types(c)
    for protocol in ("pbc", "http"):
        out = run_scenario("datatypes", protocol, c, f"dt{nodes}-{protocol}")
        assert f"ok on {nodes} node" in out


def test_riak_client_secondary_indexes_on_five_nodes_and_with_one_down(
    make_cluster: MakeCluster,
) -> None:
    """A plan covers the ring with fewer nodes than the five; written once, queried
    through every node over both protocols, then again with one node down."""
    c = make_cluster(5)
    c.wait_converged()
    run_scenario("index-write", "http", c, "idx")
    for protocol in ("http", "pbc"):
        assert "ok on 5 node" in run_scenario("index-read", protocol, c, "idx")
    victim = c[3]
    assert victim.stop() == 0
    c.wait_up_everywhere(victim, up=False)
    for protocol in ("http", "pbc"):
        assert "ok on 4 node" in run_scenario("index-read", protocol, c, "idx")
