"""Real node processes on 127.0.0.1, started through the CLI: for ``dynamo up``,
``dynamo chaos``, ``dynamo bench`` and the cluster tests.

Every wait polls a condition with a deadline; nothing sleeps on luck.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from typing import Any, TypeVar

from http_api.admin import get_json

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline."""


def wait_for(
    cond: Callable[[], T | bool | None], timeout_s: float, what: str, interval_s: float = 0.1
) -> T:
    """Poll ``cond`` until it returns something truthy; raise ``WaitTimeout`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            v = cond()
            if v:
                return v  # type: ignore[return-value]
        except (OSError, ValueError, KeyError, HTTPException) as e:
            last_error = e
        if time.monotonic() > deadline:
            extra = f" (last error: {last_error})" if last_error else ""
            raise WaitTimeout(f"timed out after {timeout_s:.0f}s waiting for {what}{extra}")
        time.sleep(interval_s)


def _unclaimable_ports() -> range:
    """Ports below the kernel's ephemeral range (where outgoing connections take
    their local ports), so a port found free stays free until a node binds it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(20000, max(low, 21000))


_handed_out: set[int] = set()  # never hand the same port out twice in one process
_port_rng = random.Random()


def free_port_block(offsets: Sequence[int]) -> int:
    """A base port for which every ``base + offset`` is free now, chosen outside the
    ephemeral range and never handed out before by this process."""
    pool = _unclaimable_ports()
    if len(_handed_out) > len(pool) // 2:
        _handed_out.clear()
    span = max(offsets)
    for _ in range(10_000):
        base = _port_rng.randrange(pool.start, pool.stop - span)
        ports = [base + off for off in offsets]
        if any(p in _handed_out for p in ports):
            continue
        socks: list[socket.socket] = []
        try:
            for p in ports:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        _handed_out.update(ports)
        return base
    raise RuntimeError(f"no free ports at offsets {list(offsets)} in {pool}")


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free now (see :func:`free_port_block`)."""
    return [free_port_block([0]) for _ in range(n)]


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request, sending exactly the given headers; (status, headers, body)."""
    parts = urllib.parse.urlsplit(url)
    conn = HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


class NodeProcess:
    """One ``dynamo start`` process with its ports, data directory and log file."""

    def __init__(
        self,
        node_id: str,
        http_port: int,
        peer_port: int,
        data_dir: Path,
        log_path: Path | None,
        pb_port: int = 0,
    ) -> None:
        self.node_id = node_id
        self.http_port = http_port
        self.peer_port = peer_port
        self.pb_port = pb_port  # 0: the node serves no PB
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def peer_addr(self) -> str:
        return f"127.0.0.1:{self.peer_port}"

    @property
    def pb_addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.pb_port)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(
        self, seeds: Sequence[str], settings: Sequence[str], new_cluster: bool = False
    ) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "dynamo.tools.cli",
            "start",
            "--node-id",
            self.node_id,
            "--host",
            "127.0.0.1",
            "--http-port",
            str(self.http_port),
            "--peer-port",
            str(self.peer_port),
            "--pb-port",
            str(self.pb_port),
            "--data-dir",
            str(self.data_dir),
        ]
        if seeds:
            cmd += ["--seeds", ",".join(seeds)]
        if new_cluster:
            cmd.append("--new-cluster")
        for s in settings:
            cmd += ["--set", s]
        return cmd

    def start(
        self,
        seeds: Sequence[str],
        settings: Sequence[str] = (),
        env: dict[str, str] | None = None,
        new_cluster: bool | None = None,
    ) -> None:
        """Start the process; a node without seeds founds a new cluster unless
        ``new_cluster`` is False (then it waits to be contacted, as a wiped member would)."""
        if self.running():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command(seeds, settings, not seeds if new_cluster is None else new_cluster)
        full_env = {**os.environ, **(env or {})}
        if self.log_path is None:  # the terminal's
            self.proc = subprocess.Popen(cmd, env=full_env)
        else:
            with open(self.log_path, "ab") as log:
                log.write(f"--- start {time.strftime('%H:%M:%S')} ---\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env
                )
        self.paused = False

    def ping(self) -> bool:
        try:
            return http("GET", self.url + "/ping", timeout=2)[0] == 200
        except (OSError, HTTPException):
            return False

    def wait_ready(self, timeout_s: float = 30) -> None:
        def ready() -> bool:
            if not self.running():
                raise WaitTimeout(f"{self.node_id} exited: see {self.log_path or 'its output'}")
            return self.ping()

        wait_for(ready, timeout_s, f"{self.node_id} to answer /ping")

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
        self.paused = False

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout_s: float = 20) -> int | None:
        """SIGTERM and wait (SIGKILL if it does not exit in time); returns the exit code."""
        if self.proc is None:
            return None
        if self.paused:
            self.resume()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def wipe(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def stats(self) -> Any:
        return get_json(self.url + "/stats")


class LocalCluster:
    """N nodes on 127.0.0.1 in ``root``, each seeded with every other node."""

    def __init__(
        self,
        root: Path,
        nodes: int,
        *,
        settings: Sequence[str] = (),
        ports: list[int] | None = None,
        env: dict[str, str] | None = None,
        log_to_files: bool = True,
        seed_all: bool = True,
    ) -> None:
        self.root = root
        self.seed_all = seed_all
        self.per_node: dict[str, list[str]] = {}  # extra settings of one node
        self.settings = list(settings)
        self.env = env
        ports = ports or free_ports(3 * nodes)  # per node: http, peer, pb
        self.nodes = [
            NodeProcess(
                f"n{i + 1}",
                ports[3 * i],
                ports[3 * i + 1],
                root / f"n{i + 1}",
                root / f"n{i + 1}.log" if log_to_files else None,
                pb_port=ports[3 * i + 2],
            )
            for i in range(nodes)
        ]

    def __getitem__(self, i: int) -> NodeProcess:
        return self.nodes[i]

    def __len__(self) -> int:
        return len(self.nodes)

    def seeds_for(self, node: NodeProcess) -> list[str]:
        """Every other node, or (``seed_all=False``) only the first node."""
        if self.seed_all:
            return [n.peer_addr for n in self.nodes if n is not node]
        first = self.nodes[0]
        return [] if node is first else [first.peer_addr]

    def start(self, node: NodeProcess | None = None, wait: bool = True) -> None:
        targets = [node] if node is not None else self.nodes
        for n in targets:
            n.start(
                self.seeds_for(n), [*self.settings, *self.per_node.get(n.node_id, [])], self.env
            )
        if wait:
            for n in targets:
                n.wait_ready()

    def add_node(self) -> NodeProcess:
        http_port, peer_port, pb_port = free_ports(3)
        i = len(self.nodes) + 1
        n = NodeProcess(
            f"n{i}", http_port, peer_port, self.root / f"n{i}", self.root / f"n{i}.log", pb_port
        )
        self.nodes.append(n)
        return n

    def running(self) -> list[NodeProcess]:
        return [n for n in self.nodes if n.running() and not n.paused]

    def wait_converged(self, timeout_s: float = 30, members: int | None = None) -> str:
        """Every running node reports the same ring hash with ``members`` members."""
        want = members if members is not None else len(self.nodes)

        def same() -> str | None:
            hashes = set()
            for n in self.running():
                ring = get_json(n.url + "/admin/ring", timeout=3)
                if len(ring["members"]) != want:
                    return None
                hashes.add(ring["ring_hash"])
            return hashes.pop() if len(hashes) == 1 else None

        return wait_for(same, timeout_s, f"every node to see the same ring of {want} members")

    def wait_up_everywhere(self, node: NodeProcess, up: bool, timeout_s: float = 30) -> None:
        """Every other running node sees ``node`` as up (or down)."""

        def seen() -> bool:
            for n in self.running():
                if n is node:
                    continue
                members = get_json(n.url + "/admin/members", timeout=3)["members"]
                m = next((m for m in members if m["node"] == node.node_id), None)
                if m is None or m["up"] != up:
                    return False
            return True

        wait_for(seen, timeout_s, f"{node.node_id} to be {'up' if up else 'down'} everywhere")

    def stop(self) -> None:
        for n in self.nodes:
            n.signal(signal.SIGCONT)
        for n in self.nodes:
            if n.running():
                n.signal(signal.SIGTERM)
        for n in self.nodes:
            n.stop()

    def logs(self, tail: int = 40) -> str:
        out = []
        for n in self.nodes:
            if n.log_path is None:
                continue
            try:
                lines = n.log_path.read_text(errors="replace").splitlines()[-tail:]
            except OSError:
                continue
            out.append(f"==== {n.node_id} ({n.log_path}) ====\n" + "\n".join(lines))
        return "\n".join(out)
