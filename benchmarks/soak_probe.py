"""The soak's probes: client outcomes tallied per op kind, and what a node process holds
(its data directory's bytes, its open fds by kind) read from the file system and /proc.
"""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
from soak_verdict import FAILURES, OUTCOMES

from http_api.errors import ServiceError

MIX = {"get": 50, "put": 30, "delete": 15, "index": 5}  # per client loop; "list" runs apart
KINDS = (*MIX, "list")
EXAMPLES = 20


class Tally:
    """Outcomes per op kind; expected errors outside fault windows apart; latencies of
    successes per sampling interval."""

    def __init__(self) -> None:
        self.counts = {k: dict.fromkeys(OUTCOMES, 0) for k in KINDS}
        self.outside_faults = {k: dict.fromkeys(OUTCOMES, 0) for k in KINDS}
        self.examples: list[str] = []
        self.interval_ok: list[float] = []
        self.interval_errors = 0

    def record(self, kind: str, outcome: str, latency_s: float, in_fault: bool, why: str) -> None:
        self.counts[kind][outcome] += 1
        if outcome in ("ok", "not_found"):
            self.interval_ok.append(latency_s)
            return
        self.interval_errors += 1
        if not in_fault:
            self.outside_faults[kind][outcome] += 1
        if (outcome in FAILURES or not in_fault) and len(self.examples) < EXAMPLES:
            self.examples.append(f"{kind} {outcome}{' (no fault)' if not in_fault else ''}: {why}")

    def take_interval(self) -> dict[str, float]:
        ok, self.interval_ok = sorted(self.interval_ok), []
        errors, self.interval_errors = self.interval_errors, 0

        def pick(q: float) -> float:
            return round(ok[min(len(ok) - 1, int(q * len(ok)))] * 1000, 2) if ok else 0.0

        return {"ok": len(ok), "errors": errors, "p50_ms": pick(0.5), "p99_ms": pick(0.99)}


def classify(e: BaseException) -> str:
    if isinstance(e, ServiceError):
        if e.status == 503:
            return "unavailable"
        return "server_error" if e.status >= 500 else "client_error"
    if isinstance(e, TimeoutError):
        return "timeout"
    if isinstance(e, aiohttp.ClientError | OSError):
        return "connection"
    return "other"


def disk_bytes(data_dir: Path) -> dict[str, int]:
    """What the node keeps on disk: every file, and SST files (what a restart reads from)."""
    out = {"disk_bytes": 0, "disk_sst_bytes": 0}
    for folder, _, files in os.walk(data_dir):
        for name in files:
            try:
                size = os.stat(os.path.join(folder, name)).st_size
            except OSError:  # compacted away meanwhile
                continue
            out["disk_bytes"] += size
            out["disk_sst_bytes"] += size if name.endswith(".sst") else 0
    return out


def fd_kinds(pid: int) -> dict[str, int]:
    """Open fds of ``pid``: in all, sockets, SST files, and files deleted but still held
    (a compacted SST that an iterator or a snapshot still pins shows there)."""
    base = f"/proc/{pid}/fd"
    out = {"fds": 0, "fds_sockets": 0, "fds_sst": 0, "fds_deleted": 0}
    for fd in os.listdir(base):
        try:
            target = os.readlink(f"{base}/{fd}")
        except OSError:  # closed meanwhile
            continue
        out["fds"] += 1
        out["fds_sockets"] += target.startswith("socket:")
        out["fds_sst"] += target.removesuffix(" (deleted)").endswith(".sst")
        out["fds_deleted"] += target.endswith(" (deleted)")
    return out
