"""The ``dynamo`` command line.

::

    dynamo start --node-id n1 --data-dir ./data/n1 [--seeds host:port,...|--new-cluster] ...
    dynamo up [--nodes 3] [--base-http-port 8098] [--data-dir ./data]
    dynamo status|members|ring --url http://127.0.0.1:8098
    dynamo join --url URL --seed host:peer_port
    dynamo leave --url URL
    dynamo remove NODE --url URL          dynamo replace OLD NEW --url URL
    dynamo rolling-restart --url URL --restart-cmd "ssh {host} sudo systemctl restart dynamo"
    dynamo backup --url URL --name NAME [--all]    dynamo restore --from DIR --data-dir DIR
    dynamo bench ...      dynamo chaos ...
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import logging
import os
import signal
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from dynamo.node import config as config_mod
from dynamo.tools.supervisor import Supervisor, layout_from, parse_processes
from http_api.admin import AdminClient, AdminError

log = logging.getLogger("dynamo")


class _NodeFilter(logging.Filter):
    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node
        return True


def setup_logging(level: str, node: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_NodeFilter(node))
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s node=%(node)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own 64 MiB arena; RocksDB's threads
    then hold freed memory the process never returns. Two arenas bound the RSS."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# --- start ------------------------------------------------------------------------------------


def _start_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node-id", help="stable name of this node (env DYNAMO_NODE_ID)")
    p.add_argument("--host", help="address to bind and advertise, default 127.0.0.1")
    p.add_argument("--http-host", help="HTTP bind address if not --host (0.0.0.0 = everywhere)")
    p.add_argument("--http-port", type=int, help="HTTP API port, default 8098")
    p.add_argument("--peer-port", type=int, help="node-to-node port, default 8099")
    p.add_argument("--pb-port", type=int, help="Riak Protocol Buffers port, default 8087; 0: off")
    p.add_argument("--data-dir", help="RocksDB directory of this node")
    p.add_argument("--seeds", help="comma-separated host:peer_port of nodes to join through")
    p.add_argument(
        "--new-cluster",
        action="store_true",
        default=None,
        help="with no seeds and an empty data directory: found a new cluster (without it"
        " such a node waits to be contacted, as a wiped member of a cluster would)",
    )
    p.add_argument("--cluster-name", help="peers from another cluster are refused")
    p.add_argument("--cluster-secret-file", help="file with the secret every peer must prove")
    p.add_argument("--n-val", type=int, help="default replicas per key, default 3")
    p.add_argument(
        "--location",
        help="this node's failure domain (zone, rack or host), default the host name",
    )
    p.add_argument("--config", help="TOML file with any setting (flags override it)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other setting of dynamo.node.config.NodeConfig, e.g. --set hinted_handoff=false",
    )
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING, default INFO")
    p.add_argument(
        "--processes",
        help="run K node processes on this host under one supervisor (auto: one per core),"
        " sharing --http-port and --pb-port; see dynamo/tools/supervisor.py",
    )
    p.add_argument(
        "--admin-port",
        type=int,
        default=0,
        help="with --processes: the first process's own HTTP port, default --http-port + 1000",
    )


#: ``dynamo start`` flags a supervisor sets per process, not passed on from its own argv.
_PER_PROCESS = ("--processes", "--admin-port", "--new-cluster", "--seeds")


def _passed_on(argv: list[str]) -> list[str]:
    """The supervisor's own ``start`` flags its processes get too (minus ``_PER_PROCESS``:
    the flags each process is given after these override the rest)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _PER_PROCESS:
            skip = "=" not in arg and name != "--new-cluster"
            continue
        out.append(arg)
    return out


def load_config(args: argparse.Namespace) -> config_mod.NodeConfig:
    flags: dict[str, Any] = {
        "node_id": args.node_id,
        "host": args.host,
        "http_host": args.http_host,
        "http_port": args.http_port,
        "peer_port": args.peer_port,
        "pb_port": args.pb_port,
        "data_dir": args.data_dir,
        "seeds": args.seeds,
        "new_cluster": args.new_cluster,
        "cluster_name": args.cluster_name,
        "cluster_secret_file": args.cluster_secret_file,
        "n_val": args.n_val,
        "location": args.location,
        "log_level": args.log_level,
    }
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or name not in config_mod.NodeConfig.__dataclass_fields__:
            raise config_mod.ConfigError(f"--set {item!r}: use NAME=VALUE with a NodeConfig field")
        flags[name] = value
    return config_mod.load(flags, file=Path(args.config) if args.config else None)


async def _serve(cfg: config_mod.NodeConfig) -> int:
    from dynamo.node.assembly import Node
    from dynamo.node.cluster import LeftCluster
    from dynamo.storage.contract import StorageError

    try:
        node = Node(cfg)
    except (StorageError, LeftCluster) as e:
        log.error("%s", e)
        return 3 if isinstance(e, LeftCluster) else 2
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.start()
    except OSError as e:
        log.error("cannot start: %s", e)
        await node.stop()
        return 2
    # What a started node holds (modules, config, ring, caches) lives as long as the
    # process: keep it out of the collector's scans (gc.freeze), which otherwise go over
    # all of it at every full collection, paid by the requests of that moment (3-node PUT
    # p99 10.4 ms with it, 15.7-17.6 without, in one sitting; benchmarks/RESULTS.md).
    gc.freeze()
    waiter = asyncio.create_task(stop.wait())
    stopped = asyncio.create_task(node.exit_requested.wait())
    await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    stopped.cancel()
    await node.stop()
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args)
        processes = parse_processes(args.processes) if args.processes is not None else 0
    except (config_mod.ConfigError, ValueError) as e:
        print(f"dynamo start: {e}", file=sys.stderr)
        return 2
    setup_logging(cfg.log_level, cfg.node_id)
    if processes:
        layout = layout_from(cfg, processes, args.admin_port)
        argv = _passed_on(sys.argv[2:] if args.argv is None else args.argv)
        return Supervisor(layout, argv).run()
    limit_malloc_arenas()
    _use_uvloop()
    return asyncio.run(_serve(cfg))


# --- status, members, ring, join, leave -----------------------------------------------------------


def admin_client(args: argparse.Namespace) -> AdminClient:
    """The node at ``--url`` with the admin commands' credentials and TLS trust (flags,
    else the DYNAMO_* variables)."""
    return AdminClient(
        args.url,
        token=args.token or os.environ.get("DYNAMO_HTTP_AUTH_TOKEN", ""),
        basic=args.basic or os.environ.get("DYNAMO_HTTP_AUTH_BASIC", ""),
        ca_file=args.ca_file or os.environ.get("DYNAMO_CA_FILE", ""),
    )


def _admin(args: argparse.Namespace, path: str, method: str = "GET", body: Any = None) -> Any:
    try:
        return admin_client(args).request(method, path, body)
    except AdminError as e:
        print(f"dynamo: {e.status} {e.text}", file=sys.stderr)
        raise SystemExit(1)
    except OSError as e:
        print(f"dynamo: cannot reach {args.url}: {e}", file=sys.stderr)
        raise SystemExit(1)


def cmd_members(args: argparse.Namespace) -> int:
    data = _admin(args, "/admin/members")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"as seen by {data['node']}:")
    print(
        f"{'node':<16}{'status':<10}{'up':<6}{'phi':>8}  {'location':<18}{'peer':<22}{'http':<22}"
    )
    for m in data["members"]:
        up = "up" if m["up"] else "DOWN"
        print(
            f"{m['node']:<16}{m['status']:<10}{up:<6}{m['phi']:>8.2f}  "
            f"{m.get('location', m['node']):<18}{m['peer_addr']:<22}{m['http_addr']:<22}"
        )
    return 0


def cmd_ring(args: argparse.Namespace) -> int:
    data = _admin(args, "/admin/ring")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(
        f"ring {data['ring_hash']}: {len(data['members'])} members, "
        f"{data['tokens_per_node']} tokens each"
    )
    for node, share in sorted(data["ownership"].items()):
        print(f"  {node:<16}{share * 100:6.2f}%  {'#' * round(share * 100)}")
    by_location = data.get("location_ownership", {})
    if len(by_location) > 1:
        print(f"replicas per location (n_val {data.get('n_val')}):")
        for loc, share in sorted(by_location.items()):
            print(f"  {loc:<16}{share * 100:6.2f}%")
        print(f"location violations: {data.get('location_violations', 0)}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    s = _admin(args, "/stats")
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    keys = (
        "nodename",
        "cluster_status",
        "ring_members",
        "known_members",
        "connected_nodes",
        "node_gets",
        "node_puts",
        "node_get_fsm_time_99",
        "node_put_fsm_time_99",
        "read_repairs",
        "hints_pending",
    )
    for k in keys:
        print(f"{k:<24}{s.get(k)}")
    return 0


def cmd_join(args: argparse.Namespace) -> int:
    print(json.dumps(_admin(args, "/admin/join", "POST", {"seed": args.seed})))
    return 0


def cmd_leave(args: argparse.Namespace) -> int:
    from dynamo.tools.leave_cli import follow_leave

    started = _admin(args, "/admin/leave", "POST", {})
    return follow_leave(admin_client(args), started, args.timeout)


def cmd_rolling_restart(args: argparse.Namespace) -> int:
    from dynamo.tools.rolling import run_cli

    return run_cli(admin_client(args), args.restart_cmd, args.max_lag, args.timeout)


def cmd_remove(args: argparse.Namespace) -> int:
    out = _admin(args, "/admin/remove", "POST", {"node": args.node})
    print(json.dumps(out))
    return 0


def cmd_bucket_type(args: argparse.Namespace) -> int:
    """``dynamo bucket-type create|activate|update|list|status [NAME] ['{"props":...}']``."""
    action, name = args.action, args.name
    if action != "list" and not name:
        print(f"dynamo bucket-type {action}: name the bucket type", file=sys.stderr)
        return 2
    body: Any = {}
    if args.props:
        try:
            body = json.loads(args.props)
        except ValueError as e:
            print(f'dynamo bucket-type: the props are not JSON ({e}): {{"props": {{...}}}}')
            return 2
    path = "/admin/bucket-types" + (f"/{urllib.parse.quote(name, safe='')}" if name else "")
    if action == "list":
        out = _admin(args, "/admin/bucket-types")
    elif action == "status":
        out = _admin(args, path)
    elif action == "create":
        out = _admin(args, path, "POST", body)
    elif action == "update":
        out = _admin(args, path, "PUT", body)
    else:
        out = _activate(args, name)
    print(json.dumps(out, indent=2))
    return 0


def _activate(args: argparse.Namespace, name: str) -> Any:
    """Activate once every member holds the type (as ``riak admin bucket-type status``
    says "ready"), waiting up to ``--wait`` seconds for gossip to bring it there."""
    try:
        return admin_client(args).activate_bucket_type(name, args.wait)
    except AdminError as e:
        print(f"dynamo: {e.status} {e.text}", file=sys.stderr)
        raise SystemExit(1)
    except OSError as e:
        print(f"dynamo: cannot reach {args.url}: {e}", file=sys.stderr)
        raise SystemExit(1)


def cmd_replace(args: argparse.Namespace) -> int:
    out = _admin(args, "/admin/remove", "POST", {"node": args.old, "replace_with": args.new})
    print(json.dumps(out))
    return 0


# --- main -------------------------------------------------------------------------------------


def _access_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token", default="", help="bearer token (env DYNAMO_HTTP_AUTH_TOKEN)")
    p.add_argument("--basic", default="", help="user:password (env DYNAMO_HTTP_AUTH_BASIC)")
    p.add_argument("--ca-file", default="", help="CA to trust for https URLs (env DYNAMO_CA_FILE)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynamo",
        description="A leaderless, highly available key-value store (Dynamo / Riak KV style).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("start", help="run one node in the foreground")
    _start_flags(p)
    p.set_defaults(func=cmd_start)

    from dynamo.tools.bench.cli import add_parser as add_bench_parser
    from dynamo.tools.chaos.cli import add_parser as add_chaos_parser
    from dynamo.tools.simulation.cli import add_parser as add_sim_parser
    from dynamo.tools.up import add_up_parser

    add_up_parser(sub)
    add_sim_parser(sub)
    add_chaos_parser(sub)
    add_bench_parser(sub)

    for name, func, helptext in (
        ("status", cmd_status, "a node's counters"),
        ("members", cmd_members, "the members a node sees, up or down"),
        ("ring", cmd_ring, "the ring a node computed and each member's share"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--url", default="http://127.0.0.1:8098", help="a node's HTTP address")
        p.add_argument("--json", action="store_true", help="print the raw JSON")
        _access_flags(p)
        p.set_defaults(func=func)

    p = sub.add_parser("join", help="make a node gossip with a seed now")
    p.add_argument("--url", default="http://127.0.0.1:8098")
    p.add_argument("--seed", required=True, help="host:peer_port of a cluster member")
    _access_flags(p)
    p.set_defaults(func=cmd_join)

    p = sub.add_parser(
        "remove",
        help="take a node that never comes back out of the ring (Riak's force-remove);"
        " refused while it still answers: its ranges refill from the other replicas",
    )
    p.add_argument("node", help="the node id to remove")
    p.add_argument("--url", default="http://127.0.0.1:8098", help="any live node")
    _access_flags(p)
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser(
        "bucket-type",
        help="create, activate, update, list or show bucket types (riak admin bucket-type)",
    )
    p.add_argument("action", choices=["create", "activate", "update", "list", "status"])
    p.add_argument("name", nargs="?", default="", help="the bucket type")
    p.add_argument("props", nargs="?", default="", help='JSON: {"props": {"datatype": "set"}}')
    p.add_argument("--url", default="http://127.0.0.1:8098", help="any node")
    p.add_argument(
        "--wait", type=float, default=30.0,
        help="activate: seconds to wait for every member to hold the type (0: do not wait)",
    )  # fmt: skip
    _access_flags(p)
    p.set_defaults(func=cmd_bucket_type)

    p = sub.add_parser(
        "replace",
        help="hand a dead node's ranges to a new node that has joined (Riak's replace)",
    )
    p.add_argument("old", help="the node that never comes back")
    p.add_argument("new", help="a live member that takes its ranges (its tokens)")
    p.add_argument("--url", default="http://127.0.0.1:8098", help="any live node")
    _access_flags(p)
    p.set_defaults(func=cmd_replace)

    p = sub.add_parser(
        "rolling-restart",
        help="restart every node in turn, each once the one before is back, has its hints"
        " and has caught up by anti-entropy",
    )
    p.add_argument("--url", default="http://127.0.0.1:8098", help="any live node")
    p.add_argument(
        "--restart-cmd", required=True,
        help="shell command restarting one node: {node}, {host} and {http_addr} are filled"
        " in (e.g. 'ssh {host} sudo systemctl restart dynamo')",
    )  # fmt: skip
    p.add_argument("--max-lag", type=int, default=1000, help="anti-entropy lag bound, entries")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per node, default 600")
    _access_flags(p)
    p.set_defaults(func=cmd_rolling_restart)

    from dynamo.tools.backup_cli import add_parsers as add_backup_parsers

    add_backup_parsers(sub, _access_flags, admin_client)

    p = sub.add_parser("leave", help="make a node hand its data over and leave the cluster")
    p.add_argument("--url", default="http://127.0.0.1:8098")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait, default 600")
    _access_flags(p)
    p.set_defaults(func=cmd_leave)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = argv[1:] if argv is not None else None
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
