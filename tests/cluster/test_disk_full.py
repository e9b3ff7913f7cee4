"""A node whose disk fills: writes refused with a clear 503, reads still served, the
node reported not ready by ``/admin/health`` (``/ping`` stays up) and counted in
``/metrics``, and writes back by themselves once space is freed. The data directory
is a small tmpfs the test mounts (root only) and fills with a file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dynamo.tools.localcluster import LocalCluster, http, wait_for
from http_api.admin import AdminClient
from tests.cluster.conftest import MakeCluster
from tests.support.small_fs import fill, small_filesystem

pytestmark = pytest.mark.cluster

OCTETS = {"Content-Type": "application/octet-stream"}


def test_a_full_disk_refuses_writes_serves_reads_and_recovers(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    c: LocalCluster = make_cluster(1, start=False)
    node = c[0]
    with small_filesystem(node.data_dir, 48):
        c.start()
        c.wait_converged()
        admin = AdminClient(node.url)
        assert admin.health() == (True, [])
        filler = fill(node.data_dir, 4 << 20)
        acked: list[str] = []
        value = b"v" * (256 * 1024)
        for i in range(200):
            status, _, body = http("PUT", f"{node.url}/buckets/b/keys/k{i}", value, OCTETS)
            if status != 204:
                break
            acked.append(f"k{i}")
        else:
            raise AssertionError("200 PUTs of 256 KiB fitted in 4 MiB of free space")
        assert status == 503, body
        assert b"disk is full" in body, body
        assert acked, "nothing was written before the disk filled"
        ready, reasons = admin.health()
        assert not ready
        assert any("No space left on device" in r for r in reasons), reasons
        assert http("GET", f"{node.url}/ping")[0] == 200
        for k in acked:
            status, _, got = http("GET", f"{node.url}/buckets/b/keys/{k}")
            assert (status, len(got)) == (200, len(value)), k
        stats = node.stats()
        assert stats["storage_writes_refused"] == 1
        assert stats["storage_write_failures_total"] >= 1
        metrics = http("GET", f"{node.url}/metrics")[2].decode()
        assert "dynamo_storage_writes_refused 1.0" in metrics

        filler.unlink()
        t0 = time.monotonic()
        # No client write needed: the node probes its storage and reports ready again.
        wait_for(lambda: admin.health()[0], 60, "the node to report ready after space returned")
        resumed_s = time.monotonic() - t0
        print(f"writes resumed {resumed_s:.1f} s after space returned")
        status, _, body = http("PUT", f"{node.url}/buckets/b/keys/after", b"x", OCTETS)
        assert status == 204, body
        assert node.stats()["storage_writes_refused"] == 0
        for k in acked:
            assert http("GET", f"{node.url}/buckets/b/keys/{k}")[0] == 200, k
        c.stop()
