"""Readings of one node: its process's CPU and I/O from ``/proc``, its anti-entropy state
from ``/admin/aae`` (not cached, unlike ``/stats``), RocksDB's pending compactions, and
its log file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from http.client import HTTPException
from pathlib import Path
from typing import Any

from dynamo.tools.localcluster import NodeProcess
from http_api.admin import get_json

CLK_TCK = os.sysconf("SC_CLK_TCK")
# What reading a node can raise when it is slow, gone or answering oddly.
READ_ERRORS = (OSError, ValueError, KeyError, HTTPException)


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()  # fields from 3 (state) on
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_io_bytes(pid: int) -> int:
    """rchar + wchar of a process: bytes through read/write syscalls (sockets and files)."""
    total = 0
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("rchar", "wchar"):
            total += int(value)
    return total


def aae_status(node: NodeProcess, timeout_s: float = 10) -> dict[str, Any]:
    status: dict[str, Any] = get_json(node.url + "/admin/aae", timeout=timeout_s)
    return status


def caught_up(nodes: Sequence[NodeProcess]) -> bool:
    """Every node has applied every other node's whole current log."""
    snaps = {n.node_id: aae_status(n) for n in nodes}
    for me, s in snaps.items():
        for other, o in snaps.items():
            if other == me:
                continue
            p = s["peers"].get(other)
            if p is None or not p["complete"] or p["lag"] != 0 or p["watermark"] < o["head"]:
                return False
    return True


def aae_summary(nodes: Sequence[NodeProcess]) -> str:
    """One line per node: head and, per peer, watermark/peer_head/lag/complete."""
    lines = []
    for n in nodes:
        try:
            s = aae_status(n)
        except READ_ERRORS as e:
            lines.append(f"  {n.node_id}: /admin/aae failed: {e}")
            continue
        peers = ", ".join(
            f"{peer}: wm={p['watermark']} head={p['peer_head']} lag={p['lag']} "
            f"complete={p['complete']}"
            for peer, p in s["peers"].items()
        )
        lines.append(f"  {n.node_id}: head={s['head']} rounds={s['rounds']} [{peers}]")
    return "\n".join(lines)


def pending_compaction(node: NodeProcess) -> int:
    return int(node.stats().get("rocksdb_pending_compaction_bytes", 0) or 0)


def log_lines(node: NodeProcess) -> list[str]:
    if node.log_path is None:
        return []
    return node.log_path.read_text(errors="replace").splitlines()
