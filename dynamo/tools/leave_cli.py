"""``dynamo leave``: ask a node to leave, then follow its handoff until it is gone."""

from __future__ import annotations

import json
import ssl
import sys
import time
import urllib.error
import urllib.request
from typing import Any

POLL_S = 0.5


def follow_leave(
    url: str,
    started: Any,
    timeout_s: float,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> int:
    """Print progress until the node reports ``left`` or stops answering."""
    base = url.rstrip("/")

    def _get(target: str) -> Any:
        req = urllib.request.Request(target, headers=headers or {})
        with urllib.request.urlopen(req, timeout=5, context=context) as resp:
            return json.loads(resp.read())

    node = started.get("node", "?")
    print(f"{node}: {started.get('status')}", flush=True)
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            handoff = _get(base + "/admin/handoff")
            members = _get(base + "/admin/members")
        except (urllib.error.URLError, OSError, ValueError):
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
