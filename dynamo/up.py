"""``dynamo up``: a local cluster on 127.0.0.1, one ``dynamo start`` process per node,
in the foreground. Ctrl-C (or SIGTERM) stops every node cleanly."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STOP_GRACE_S = 20.0


@dataclass(frozen=True, slots=True)
class LocalNode:
    node_id: str
    http_port: int
    peer_port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def peer_addr(self) -> str:
        return f"127.0.0.1:{self.peer_port}"


def plan(nodes: int, base_http_port: int, base_peer_port: int, data_dir: Path) -> list[LocalNode]:
    return [
        LocalNode(f"n{i + 1}", base_http_port + i, base_peer_port + i, data_dir / f"n{i + 1}")
        for i in range(nodes)
    ]


def start_command(node: LocalNode, all_nodes: list[LocalNode], extra: list[str]) -> list[str]:
    seeds = ",".join(n.peer_addr for n in all_nodes if n is not node)
    cmd = [
        sys.executable,
        "-m",
        "dynamo.cli",
        "start",
        "--node-id",
        node.node_id,
        "--host",
        "127.0.0.1",
        "--http-port",
        str(node.http_port),
        "--peer-port",
        str(node.peer_port),
        "--data-dir",
        str(node.data_dir),
    ]
    if seeds:
        cmd += ["--seeds", seeds]
    return cmd + extra


def add_up_parser(sub: Any) -> None:
    p = sub.add_parser("up", help="run a local cluster on 127.0.0.1 in the foreground")
    p.add_argument("--nodes", type=int, default=3, help="how many nodes, default 3")
    p.add_argument("--base-http-port", type=int, default=8098, help="HTTP port of n1, default 8098")
    p.add_argument(
        "--base-peer-port", type=int, default=0, help="peer port of n1, default base-http + 1000"
    )
    p.add_argument(
        "--data-dir", default="./data", help="parent of each node's data, default ./data"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting passed to every node",
    )
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=cmd_up)


def cmd_up(args: argparse.Namespace) -> int:
    if args.nodes < 1:
        print("dynamo up: --nodes must be at least 1", file=sys.stderr)
        return 2
    base_peer = args.base_peer_port or args.base_http_port + 1000
    nodes = plan(args.nodes, args.base_http_port, base_peer, Path(args.data_dir))
    extra = ["--log-level", args.log_level]
    for s in args.set:
        extra += ["--set", s]
    procs: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for n in nodes:
        n.data_dir.mkdir(parents=True, exist_ok=True)
        procs.append(subprocess.Popen(start_command(n, nodes, extra), env=os.environ.copy()))
    print(f"dynamo up: {len(nodes)} nodes on 127.0.0.1 (Ctrl-C stops them all)", flush=True)
    for n in nodes:
        print(f"  {n.node_id}: {n.url}  peer {n.peer_addr}  data {n.data_dir}", flush=True)
    print(f"try: curl -i {nodes[0].url}/ping", flush=True)
    try:
        while not stopping:
            for n, p in zip(nodes, procs, strict=True):
                code = p.poll()
                if code is not None and code != 0:
                    print(f"dynamo up: {n.node_id} exited with {code}", file=sys.stderr, flush=True)
            if all(p.poll() is not None for p in procs):
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    print("dynamo up: all nodes stopped", flush=True)
    return 0
