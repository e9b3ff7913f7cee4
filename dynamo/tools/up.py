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
    p.add_argument(
        "--hosts",
        type=int,
        default=0,
        help="lay out H simulated hosts instead of --nodes, each its own location (host1..)"
        " running --processes node processes behind one client port: host i serves HTTP on"
        " base-http-port + 100 (i - 1), PB one above",
    )
    p.add_argument("--processes", type=int, default=2, help="with --hosts: processes per host")
    p.set_defaults(func=cmd_up)


def cmd_up_hosts(args: argparse.Namespace) -> int:
    """``--hosts H --processes K``: H supervisors of K node processes each."""
    from dynamo.tools.hosts import HostCluster, LocalSpawner, local_addrs

    if not 1 <= args.processes <= 40:
        print("dynamo up: --processes must be 1 to 40", file=sys.stderr)
        return 2
    addrs = local_addrs(args.hosts, args.base_http_port)
    settings = ["preset=local", *args.set, f"log_level={args.log_level}"]
    hosts = HostCluster(Path(args.data_dir), addrs, args.processes, LocalSpawner(), settings)
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    hosts.start()
    print(f"dynamo up: {args.hosts} hosts of {args.processes} processes (Ctrl-C stops them all)")
    for h, a in enumerate(addrs):
        print(
            f"  host{h + 1}: clients http://{a.address}:{a.http_port}  pb {a.address}:{a.pb_port}"
            f"  nodes {', '.join(hosts.node_urls(h))}  logs {hosts.root}/host{h + 1}.log",
            flush=True,
        )
    try:
        while not stopping and any(hosts.running(h) for h in range(len(addrs))):
            time.sleep(0.2)
    finally:
        hosts.stop()
    print("dynamo up: all hosts stopped", flush=True)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    if args.hosts:
        return cmd_up_hosts(args)
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
