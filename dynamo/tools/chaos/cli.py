"""``dynamo chaos``: faults during a workload on a real local cluster, then a checker."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dynamo.tools.chaos.datatypes_work import WORKLOADS
from dynamo.tools.chaos.faults import KINDS
from dynamo.tools.chaos.lab_faults import LAB_KINDS
from dynamo.tools.chaos.runner import ChaosSettings, main_run


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "chaos",
        help="run a cart workload on a local cluster under faults, then check it",
        description=(
            "Starts a local cluster whose nodes reach each other through a fault proxy, runs"
            " concurrent read-modify-write clients, injects seeded faults (kill -9 and restart,"
            " SIGSTOP/SIGCONT, partitions, an isolated node, slow and lossy links, restarts with"
            " a wiped data directory), heals, waits for the replicas to converge and checks that"
            " no acknowledged write was lost. Exit status 0 when the run passes."
        ),
    )
    p.add_argument("--nodes", type=int, default=5)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of workload, default 60")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clients", type=int, default=8, help="concurrent writers, default 8")
    p.add_argument("--keys", type=int, default=16)
    p.add_argument(
        "--max-impaired",
        type=int,
        default=0,
        help="nodes impaired at once, default a minority: (nodes - 1) // 2",
    )
    p.add_argument(
        "--faults",
        default=",".join(KINDS),
        help=f"fault kinds to use, comma-separated, default all: {','.join(KINDS)}",
    )
    p.add_argument("--converge", type=float, default=120.0, help="seconds allowed to converge")
    p.add_argument(
        "--urls",
        default="",
        help="target running nodes (comma-separated): workload and checks only, no faults",
    )
    p.add_argument("--data-dir", help="where the nodes keep their data (default a temp dir)")
    p.add_argument(
        "--lab",
        action="store_true",
        help="root: run the nodes on hosts of a network lab (namespaces, nftables): --nodes"
        " hosts of --processes node processes each, with silent partitions (symmetric,"
        f" asymmetric, flapping), lost and paused hosts ({','.join(LAB_KINDS)})",
    )
    p.add_argument("--processes", type=int, default=2, help="with --lab: processes per host")
    p.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="carts",
        help="carts (read-modify-write of JSON sets, default), counters (counter increments"
        " checked against the acknowledged sum) or sets (set adds and removes with contexts)",
    )
    p.set_defaults(func=cmd_chaos)


def cmd_chaos(args: argparse.Namespace) -> int:
    known = LAB_KINDS if args.lab else KINDS
    default = ",".join(KINDS)
    kinds = tuple(
        k
        for k in (
            args.faults if args.faults != default or not args.lab else ",".join(LAB_KINDS)
        ).split(",")
        if k
    )
    unknown = [k for k in kinds if k not in known]
    if unknown:
        print(f"dynamo chaos: unknown fault kinds {unknown}: use {','.join(known)}")
        return 2
    settings = ChaosSettings(
        nodes=args.nodes,
        duration_s=args.duration,
        seed=args.seed,
        clients=args.clients,
        keys=args.keys,
        max_impaired=args.max_impaired,
        kinds=kinds,
        converge_s=args.converge,
        urls=tuple(u for u in args.urls.split(",") if u),
        data_dir=Path(args.data_dir) if args.data_dir else None,
        lab=args.lab,
        processes=args.processes,
        workload=args.workload,
    )
    return main_run(settings)
