"""A rolling restart under load: every node of a real cluster restarted in turn (SIGTERM,
start), each only once the one before has settled, while clients write and read through
every node, retrying a 503 or a refused connection on the next node as a load balancer
would. No client operation fails for good and every acknowledged write reads back."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from dynamo.tools.localcluster import LocalCluster, http, wait_for
from dynamo.tools.rolling import RollingRestart
from http_api.admin import AdminClient
from tests.cluster.conftest import MakeCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]  # 6x a slowish day's run

TEXT = {"Content-Type": "text/plain"}
RETRY_FOR_S = 30.0  # a client gives up on one operation after this long


class Client(threading.Thread):
    """Writes new keys and reads back earlier ones, each until it succeeds or
    ``RETRY_FOR_S`` passes, on node after node."""

    def __init__(self, name: str, urls: list[str], stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.urls = urls
        self.stop = stop
        self.acked: dict[str, bytes] = {}
        self.failed: list[str] = []
        self.retries = 0
        self._next = itertools.cycle(range(len(urls)))

    def _until_ok(self, method: str, path: str, query: str, body: bytes | None, ok: int) -> bool:
        deadline = time.monotonic() + RETRY_FOR_S
        while time.monotonic() < deadline:
            url = self.urls[next(self._next)]
            try:
                status, _, got = http(
                    method, url + path + query, body, TEXT if body else None, timeout=5
                )
            except OSError:
                status, got = 0, b""
            if status == ok and (body is not None or got == self.acked[path]):
                return True
            if status not in (0, 503):
                self.failed.append(f"{method} {path}: {status} {got[:200]!r}")
                return False
            self.retries += 1
            time.sleep(0.05)
        self.failed.append(f"{method} {path}: still refused after {RETRY_FOR_S:.0f} s")
        return False

    def run(self) -> None:
        for i in itertools.count():
            if self.stop.is_set():
                return
            path = f"/buckets/roll/keys/{self.name}-{i}"
            value = f"{self.name} {i}".encode()
            if self._until_ok("PUT", path, "?w=2", value, 204):
                self.acked[path] = value
            if i % 3 == 0 and self.acked:
                self._until_ok("GET", next(iter(self.acked)), "?r=2", None, 200)


def test_a_rolling_restart_under_load_fails_no_client_operation(
    make_cluster: MakeCluster,
) -> None:
    c: LocalCluster = make_cluster(3)
    c.wait_converged()
    by_id = {n.node_id: n for n in c.nodes}
    stop = threading.Event()
    clients = [Client(f"c{i}", [n.url for n in c.nodes], stop) for i in range(2)]
    for cl in clients:
        cl.start()

    def restart(member: Mapping[str, Any]) -> None:
        node = by_id[str(member["node"])]
        assert node.stop() == 0, f"{node.node_id} did not stop cleanly"
        c.start(node)

    lines: list[str] = []
    try:
        # Load before the first restart, as in production.
        wait_for(lambda: sum(len(cl.acked) for cl in clients) >= 50, 30, "the load to start")
        steps = RollingRestart(
            AdminClient(c[0].url), restart, max_lag=1000, timeout_s=90, say=lines.append
        ).run()
    finally:
        stop.set()
        for cl in clients:
            cl.join(timeout=RETRY_FOR_S + 10)
        print("\n".join(lines))
    assert [s.node for s in steps] == ["n1", "n2", "n3"]
    failed = [f for cl in clients for f in cl.failed]
    assert failed == [], failed
    acked = {p: v for cl in clients for p, v in cl.acked.items()}
    assert len(acked) > 20, "the clients wrote too little to tell"
    for path, value in acked.items():
        status, _, got = http("GET", c[0].url + path + "?r=all")
        assert (status, got) == (200, value), path
    print(f"{len(acked)} writes acknowledged, {sum(cl.retries for cl in clients)} retries")
