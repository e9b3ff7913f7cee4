"""Backup and restore with real nodes and the CLI: every node checkpointed in turn, one
node's data lost after more writes and deletes, put back from its backup as a new
incarnation, and brought up to date by anti-entropy (deleted keys stay deleted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dynamo.tools.localcluster import LocalCluster, http, wait_for
from http_api.admin import get_json
from tests.cluster.conftest import MakeCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

TEXT = {"Content-Type": "text/plain"}


def dynamo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynamo.tools.cli", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_node_restored_from_its_backup_catches_up(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    c: LocalCluster = make_cluster(3, start=False)
    for n in c.nodes:
        c.per_node[n.node_id] = [f"backup_root={tmp_path / 'backups' / n.node_id}"]
    c.start()
    c.wait_converged()
    n1 = c[0]
    for i in range(30):
        assert http("PUT", f"{n1.url}/buckets/b/keys/k{i}?w=all", b"v%d" % i, TEXT)[0] == 204

    done = dynamo("backup", "--url", n1.url, "--name", "b1", "--all")
    assert done.returncode == 0, done.stderr
    for n in c.nodes:
        assert (tmp_path / "backups" / n.node_id / "b1" / "backup.json").is_file(), done.stdout
    again = dynamo("backup", "--url", n1.url, "--name", "b1")
    assert again.returncode == 1
    assert "exists" in again.stderr

    # After the backup: more writes, overwrites and deletes.
    for i in range(30, 45):
        assert http("PUT", f"{n1.url}/buckets/b/keys/k{i}?w=all", b"v%d" % i, TEXT)[0] == 204
    for i in range(5):
        assert http("DELETE", f"{n1.url}/buckets/b/keys/k{i}?w=all")[0] == 204
    _, headers, _ = http("GET", f"{n1.url}/buckets/b/keys/k5")
    overwrite = {**TEXT, "X-Riak-Vclock": headers["X-Riak-Vclock"]}  # replaces, no sibling
    assert http("PUT", f"{n1.url}/buckets/b/keys/k5?w=all", b"new", overwrite)[0] == 204

    # n1 loses its disk; it comes back from its backup.
    assert n1.stop() == 0
    n1.data_dir.rename(tmp_path / "lost")
    done = dynamo("restore", "--from", str(tmp_path / "backups" / "n1" / "b1"),
                  "--data-dir", str(n1.data_dir))  # fmt: skip
    assert done.returncode == 0, done.stderr
    restored = json.loads(done.stdout.splitlines()[0])
    c.start(n1)
    c.wait_up_everywhere(n1, up=True)

    want = {f"k{i}": b"v%d" % i for i in range(6, 45)} | {"k5": b"new"}

    behind: list[str] = []

    def caught_up() -> bool:
        behind.clear()
        for key, value in want.items():
            local = get_json(f"{n1.url}/admin/local/b/{key}")
            live = [s for s in local.get("siblings", []) if not s["deleted"]]
            if len(live) != 1 or live[0]["value_b64"] != _b64(value):
                behind.append(f"{key}: {local}")
        for i in range(5):
            local = get_json(f"{n1.url}/admin/local/b/k{i}")
            if any(not s["deleted"] for s in local.get("siblings", [])):
                behind.append(f"k{i} (deleted): {local}")
        return not behind

    try:
        wait_for(caught_up, 90, "the restored node to hold every write made after its backup")
    except Exception:
        print("\n".join(behind[:8]))
        print(get_json(f"{n1.url}/admin/aae"))
        raise
    assert restored["incarnation"] != restored["old_incarnation"]
    wait_for(
        lambda: (
            get_json(f"{c[1].url}/admin/aae")["peers"]["n1"]["incarnation"]
            == restored["incarnation"]
        ),
        60,
        "n2 to read the restored n1's log as a new incarnation's",
    )
    for i in range(5):
        assert http("GET", f"{n1.url}/buckets/b/keys/k{i}?r=all")[0] == 404
    for key, value in want.items():
        assert http("GET", f"{n1.url}/buckets/b/keys/{key}?r=all")[::2] == (200, value)


def _b64(value: bytes) -> str:
    import base64

    return base64.b64encode(value).decode()
