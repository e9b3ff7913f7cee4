"""A cluster of hosts, each running ``dynamo start --processes K`` (one supervisor and
its K node processes): in a lab of network namespaces (each host its own address,
``dynamo.tools.lab``), or on this machine's 127.0.0.1 with a port range per host
(``dynamo up --hosts``). Each host's location is ``host<i>``, given explicitly, as
namespaces share the machine's host name.

Per host ``i`` (from 1) and process ``j`` (from 1): the client HTTP and PB ports are the
host's (shared, SO_REUSEPORT), the admin HTTP port and the peer port the process's own;
node ids are ``h<i>-<j>``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dynamo.tools.localcluster import free_port_block, http, wait_for
from http_api.admin import get_json

HTTP_PORT, PB_PORT, PEER_PORT, ADMIN_PORT = 8098, 8087, 8099, 9098


class Spawner(Protocol):
    """Where a host's processes run: a lab namespace, or this machine."""

    def spawn(self, host: int, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]: ...
    def kill_host(self, host: int) -> None: ...
    def pause_host(self, host: int) -> None: ...
    def resume_host(self, host: int) -> None: ...


@dataclass(frozen=True, slots=True)
class HostAddr:
    address: str
    http_port: int
    pb_port: int
    peer_port: int
    admin_port: int


class HostCluster:
    """``hosts`` hosts of ``processes`` node processes each."""

    def __init__(
        self,
        root: Path,
        addrs: Sequence[HostAddr],
        processes: int,
        spawner: Spawner,
        settings: Sequence[str] = (),
    ) -> None:
        self.root = root
        self.addrs = list(addrs)
        self.processes = processes
        self.spawner = spawner
        self.settings = list(settings)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.paused: set[int] = set()

    # --- Addresses ------------------------------------------------------------------------------

    def node_id(self, host: int, j: int) -> str:
        return f"h{host + 1}-{j}"

    def client_url(self, host: int) -> str:
        a = self.addrs[host]
        return f"http://{a.address}:{a.http_port}"

    def client_urls(self) -> list[str]:
        return [self.client_url(h) for h in range(len(self.addrs))]

    def node_url(self, host: int, j: int) -> str:
        a = self.addrs[host]
        return f"http://{a.address}:{a.admin_port + j - 1}"

    def node_urls(self, host: int | None = None) -> list[str]:
        hosts = range(len(self.addrs)) if host is None else [host]
        return [self.node_url(h, j) for h in hosts for j in range(1, self.processes + 1)]

    def nodes(self) -> list[str]:
        return [
            self.node_id(h, j) for h in range(len(self.addrs)) for j in range(1, self.processes + 1)
        ]

    # --- Processes ------------------------------------------------------------------------------

    def argv(self, host: int) -> list[str]:
        a = self.addrs[host]
        seeds = [f"{b.address}:{b.peer_port}" for i, b in enumerate(self.addrs) if i != host]
        cmd = [
            sys.executable, "-m", "dynamo.tools.cli", "start",
            "--node-id", f"h{host + 1}", "--processes", str(self.processes),
            "--host", a.address, "--http-port", str(a.http_port), "--pb-port", str(a.pb_port),
            "--peer-port", str(a.peer_port), "--admin-port", str(a.admin_port),
            "--data-dir", str(self.root / f"host{host + 1}"), "--location", f"host{host + 1}",
        ]  # fmt: skip
        if host == 0:
            cmd.append("--new-cluster")
        if seeds:
            cmd += ["--seeds", ",".join(seeds)]
        for s in self.settings:
            cmd += ["--set", s]
        return cmd

    def start(self, host: int | None = None) -> None:
        for h in range(len(self.addrs)) if host is None else [host]:
            proc = self.procs.get(h)
            if proc is not None and proc.poll() is None:
                continue
            (self.root / f"host{h + 1}").mkdir(parents=True, exist_ok=True)
            log_path = self.root / f"host{h + 1}.log"
            self.procs[h] = self.spawner.spawn(h, self.argv(h), log_path)
            self.paused.discard(h)

    def kill(self, host: int) -> None:
        """Every process of the host at once, supervisor included: a lost host."""
        self.spawner.kill_host(host)
        proc = self.procs.pop(host, None)
        if proc is not None:
            proc.wait(10)
        self.paused.discard(host)

    def pause(self, host: int) -> None:
        self.spawner.pause_host(host)
        self.paused.add(host)

    def resume(self, host: int) -> None:
        self.spawner.resume_host(host)
        self.paused.discard(host)

    def running(self, host: int) -> bool:
        proc = self.procs.get(host)
        return proc is not None and proc.poll() is None and host not in self.paused

    def stop(self) -> None:
        for h in list(self.paused):
            self.resume(h)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for h, proc in list(self.procs.items()):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                self.spawner.kill_host(h)
        self.procs.clear()

    # --- Waiting --------------------------------------------------------------------------------

    def wait_converged(self, timeout_s: float = 90) -> str:
        """Every running process reports the same ring of every node."""
        want = len(self.nodes())

        def same() -> str | None:
            hashes = set()
            for h in range(len(self.addrs)):
                if not self.running(h):
                    continue
                for url in self.node_urls(h):
                    ring = get_json(url + "/admin/ring", timeout=3)
                    if len(ring["members"]) != want:
                        return None
                    hashes.add(ring["ring_hash"])
            return hashes.pop() if len(hashes) == 1 else None

        return wait_for(same, timeout_s, f"every node to see the same ring of {want} members")

    def wait_down_everywhere(self, host: int, timeout_s: float = 60) -> None:
        """Every process of the other running hosts sees the host's processes down."""
        gone = {self.node_id(host, j) for j in range(1, self.processes + 1)}

        def seen() -> bool:
            for h in range(len(self.addrs)):
                if h == host or not self.running(h):
                    continue
                for url in self.node_urls(h):
                    members = get_json(url + "/admin/members", timeout=3)["members"]
                    if any(m["node"] in gone and m["up"] for m in members):
                        return False
            return True

        wait_for(seen, timeout_s, f"host{host + 1} to be down everywhere")

    def logs(self, tail: int = 40) -> str:
        out = []
        for h in range(len(self.addrs)):
            path = self.root / f"host{h + 1}.log"
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                out.append(f"--- host{h + 1} ---\n" + "\n".join(lines))
        return "\n".join(out)


class LocalSpawner:
    """Hosts on this machine: plain processes (each host's in its own process group)."""

    def __init__(self) -> None:
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self, host: int, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs[host] = proc
        return proc

    def _group(self, host: int, sig: int) -> None:
        proc = self.procs.get(host)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, sig)

    def kill_host(self, host: int) -> None:
        self._group(host, signal.SIGKILL)

    def pause_host(self, host: int) -> None:
        self._group(host, signal.SIGSTOP)

    def resume_host(self, host: int) -> None:
        self._group(host, signal.SIGCONT)


class LabSpawner:
    """Hosts as a lab's network namespaces (``dynamo.tools.lab.Lab``)."""

    def __init__(self, lab: Any) -> None:
        self.lab = lab

    def spawn(self, host: int, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = self.lab.spawn(host, argv, log_path=log_path)
        return proc

    def kill_host(self, host: int) -> None:
        self.lab.kill_host(host)

    def pause_host(self, host: int) -> None:
        self.lab.pause_host(host)

    def resume_host(self, host: int) -> None:
        self.lab.resume_host(host)


def local_addrs(hosts: int, base_port: int) -> list[HostAddr]:
    """Port ranges per host on 127.0.0.1, 100 apart from ``base_port``."""
    return [
        HostAddr("127.0.0.1", base_port + 100 * h, base_port + 100 * h + 1,
                 base_port + 100 * h + 2, base_port + 100 * h + 50)
        for h in range(hosts)
    ]  # fmt: skip


def free_local_base(hosts: int, processes: int) -> int:
    """A base port for :func:`local_addrs` whose every derived port is free now."""
    per_host = [0, 1, *range(2, 2 + processes), *range(50, 50 + processes)]
    return free_port_block([100 * h + off for h in range(hosts) for off in per_host])


def lab_addrs(lab: Any) -> list[HostAddr]:
    return [
        HostAddr(lab.address(h), HTTP_PORT, PB_PORT, PEER_PORT, ADMIN_PORT)
        for h in range(lab.hosts)
    ]


def put_props(url: str, bucket: str, props: dict[str, Any]) -> None:
    status, _, body = http(
        "PUT", f"{url}/buckets/{bucket}/props", json.dumps({"props": props}).encode(),
        {"Content-Type": "application/json"},
    )  # fmt: skip
    if status != 204:
        raise RuntimeError(f"setting props of {bucket}: {status} {body[:200]!r}")
