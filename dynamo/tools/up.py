"""``dynamo up``: a local cluster on 127.0.0.1, one ``dynamo start`` process per node,
in the foreground. Ctrl-C (or SIGTERM) stops every node cleanly."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from dynamo.tools.localcluster import LocalCluster


def add_up_parser(sub: Any) -> None:
    p = sub.add_parser("up", help="run a local cluster on 127.0.0.1 in the foreground")
    p.add_argument("--nodes", type=int, default=3, help="how many nodes, default 3")
    p.add_argument("--base-http-port", type=int, default=8098, help="HTTP port of n1, default 8098")
    p.add_argument(
        "--base-peer-port", type=int, default=0, help="peer port of n1, default base-http + 1000"
    )
    p.add_argument(
        "--base-pb-port", type=int, default=8087, help="Riak PB port of n1, default 8087 (0: off)"
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
    ports: list[int] = []
    for i in range(args.nodes):
        pb = args.base_pb_port + i if args.base_pb_port else 0
        ports += [args.base_http_port + i, base_peer + i, pb]
    cluster = LocalCluster(
        Path(args.data_dir),
        args.nodes,
        settings=["preset=local", *args.set, f"log_level={args.log_level}"],
        ports=ports,
        log_to_files=False,
    )
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    cluster.start(wait=False)
    print(f"dynamo up: {len(cluster)} nodes on 127.0.0.1 (Ctrl-C stops them all)", flush=True)
    for n in cluster.nodes:
        pb = f"  pb 127.0.0.1:{n.pb_port}" if n.pb_port else ""
        print(f"  {n.node_id}: {n.url}{pb}  peer {n.peer_addr}  data {n.data_dir}", flush=True)
    print(f"try: curl -i {cluster[0].url}/ping", flush=True)
    reported: set[str] = set()
    try:
        while not stopping:
            for n in cluster.nodes:
                if not n.running() and n.node_id not in reported:
                    reported.add(n.node_id)
                    code = n.proc.returncode if n.proc else None
                    print(f"dynamo up: {n.node_id} exited with {code}", file=sys.stderr, flush=True)
            if len(reported) == len(cluster):
                break
            time.sleep(0.2)
    finally:
        cluster.stop()
    print("dynamo up: all nodes stopped", flush=True)
    return 0
