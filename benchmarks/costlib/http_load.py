"""A plain loader: PUTs of one value over threads with keep-alive connections spread
over the nodes, each failed write retried once on a fresh connection."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from dynamo.tools.localcluster import NodeProcess


class LoadError(RuntimeError):
    """Writes the cluster refused or failed."""


@dataclass(slots=True)
class LoadResult:
    keys: int
    seconds: float
    reconnects: int = 0
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.keys / self.seconds if self.seconds > 0 else 0.0


def put_keys(
    nodes: Sequence[NodeProcess],
    bucket: str,
    prefix: str,
    count: int,
    value: bytes,
    w: str,
    threads: int,
) -> LoadResult:
    """PUT ``count`` keys ``{prefix}{i:08d}`` to ``bucket``, thread t writing keys t,
    t+threads, ... to node t % n; ``LoadError`` if any write failed twice."""
    result = LoadResult(keys=count, seconds=0.0)
    lock = threading.Lock()
    headers = {"Content-Type": "application/octet-stream"}

    def worker(t: int) -> None:
        node = nodes[t % len(nodes)]
        conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30)
        reconnects = 0
        errors: list[str] = []
        error_count = 0
        try:
            for i in range(t, count, threads):
                path = f"/buckets/{bucket}/keys/{prefix}{i:08d}?w={w}"
                for attempt in (0, 1):
                    try:
                        conn.request("PUT", path, body=value, headers=headers)
                        resp = conn.getresponse()
                        body = resp.read()
                    except (ConnectionError, http.client.HTTPException) as e:
                        conn.close()
                        reconnects += 1
                        if attempt == 1:
                            error_count += 1
                            if len(errors) < 5:
                                errors.append(f"{node.node_id} PUT {path}: {e!r}")
                        continue
                    if resp.status not in (200, 204):
                        error_count += 1
                        if len(errors) < 5:
                            errors.append(
                                f"{node.node_id} PUT {path}: {resp.status} {body[:200]!r}"
                            )
                    if resp.will_close:
                        conn.close()
                    break
        finally:
            conn.close()
            with lock:
                result.reconnects += reconnects
                result.errors += error_count
                result.error_examples.extend(errors[: max(0, 10 - len(result.error_examples))])

    start = time.monotonic()
    pool = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    result.seconds = time.monotonic() - start
    if result.errors:
        raise LoadError(
            f"{result.errors} of {count} writes failed (w={w}); first: "
            + "; ".join(result.error_examples)
        )
    return result
