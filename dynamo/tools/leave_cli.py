"""``dynamo leave``: ask a node to leave, then follow its handoff until it is gone."""

from __future__ import annotations

import sys
import time
from typing import Any

from http_api.admin import AdminClient

POLL_S = 0.5


def follow_leave(node_client: AdminClient, started: Any, timeout_s: float) -> int:
    """Print progress until the node reports ``left`` or stops answering."""

    node = started.get("node", "?")
    print(f"{node}: {started.get('status')}", flush=True)
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            handoff = node_client.get("/admin/handoff", timeout_s=5)
            members = node_client.get("/admin/members", timeout_s=5)
        except (OSError, ValueError):
            print(f"{node}: left the cluster and stopped", flush=True)
            return 0
        me: dict[str, Any] = next((m for m in members["members"] if m["node"] == node), {})
        transfers = handoff.get("transfers", [])
        sent = sum(int(t.get("sent", 0)) for t in transfers)
        total = sum(int(t.get("total", 0)) for t in transfers)
        line = f"{node}: {me.get('status', '?')}"
        if total:
            line += f", handed over {sent}/{total} objects"
        if line != last:
            print(line, flush=True)
            last = line
        if me.get("status") == "left":
            print(f"{node}: left the cluster", flush=True)
            return 0
        time.sleep(POLL_S)
    print(f"{node}: still leaving after {timeout_s:.0f}s", file=sys.stderr)
    return 1
