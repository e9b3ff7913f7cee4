"""``dynamo up``: a local cluster in one command; Ctrl-C stops every node cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dynamo.tools.localcluster import free_port_block, http, wait_for
from http_api.admin import get_json
from pb_api.client import PbClient

pytestmark = pytest.mark.cluster


def _consecutive_free(n: int) -> int:
    """A base port with ``n`` free ports above it (1000 above that for peers, 2000 for PB)."""
    return free_port_block([i + off for i in range(n) for off in (0, 1000, 2000)])


def test_up_starts_a_cluster_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    base = _consecutive_free(3)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dynamo.tools.cli",
            "up",
            "--nodes",
            "3",
            "--base-http-port",
            str(base),
            "--base-pb-port",
            str(base + 2000),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    urls = [f"http://127.0.0.1:{base + i}" for i in range(3)]
    try:

        def converged() -> bool:
            hashes = {get_json(u + "/admin/ring", timeout=2)["ring_hash"] for u in urls}
            sizes = {len(get_json(u + "/admin/ring", timeout=2)["members"]) for u in urls}
            return len(hashes) == 1 and sizes == {3}

        wait_for(converged, 30, "the three nodes of dynamo up to agree")
        status, _, _ = http(
            "PUT", urls[0] + "/buckets/b/keys/k?w=all", b"v", {"Content-Type": "text/plain"}
        )
        assert status == 204
        assert http("GET", urls[2] + "/buckets/b/keys/k?r=all")[2] == b"v"
        with PbClient(f"pb://127.0.0.1:{base + 2001}") as pb:
            assert pb.get("b", "k", r="all").value == b"v"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    text = out.decode(errors="replace")
    assert "all nodes stopped" in text
    assert text.count("stopped") >= 3  # each node logged its clean stop
    for u in urls:
        with pytest.raises(ConnectionRefusedError):
            http("GET", u + "/ping", timeout=1)
