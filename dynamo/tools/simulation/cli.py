"""``dynamo sim``: run many seeds of the whole-cluster simulation.

    dynamo sim --seeds 1000 [--from 0] [--workers 2]
               [--scenario all|carts|outage|counters|sets] [--bug ack-before-write|...]

Each seed runs the cart workload under random faults (``harness``), the
long-outage scenario of deleted keys (``outage``) and the data type workloads
(counter increments, set adds and removes: ``dynamo.tools.chaos.datatypes_work``)
under the same kind of faults, or only the one named.
Prints the rate (seeds per second), and for each failing seed its report and a
shrunk schedule that still fails. ``dynamo sim --seed S`` replays one seed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from typing import Any

from dynamo.tools.simulation.harness import BUGS, SimSettings, run, shrink
from dynamo.tools.simulation.outage import run_outage

SCENARIOS = ("all", "carts", "outage", "counters", "sets")
WORKLOADS = ("carts", "counters", "sets")


def _one(args: tuple[int, str | None, str]) -> tuple[int, bool, str]:
    seed, bug, scenario = args
    passed, reports = True, []
    for workload in WORKLOADS:
        if scenario in ("all", workload):
            outcome = run(seed, SimSettings(workload=workload), bug=bug)
            passed = passed and outcome.passed
            reports.append(f"{workload}: {outcome.report()}")
    if scenario in ("all", "outage"):
        outage = run_outage(seed, bug=bug)
        passed = passed and outage.passed
        reports.append(outage.report())
    return seed, passed, "\n".join(reports)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sim", help="run the deterministic whole-cluster simulation over many seeds")
    p.add_argument("--seeds", type=int, default=100, help="how many seeds, default 100")
    p.add_argument("--from", dest="first", type=int, default=0, help="first seed, default 0")
    p.add_argument("--seed", type=int, help="replay this one seed and print its report")
    p.add_argument("--workers", type=int, default=1, help="processes, default 1")
    p.add_argument("--bug", choices=BUGS, help="break the nodes on purpose: the runs must fail")
    p.add_argument(
        "--scenario", choices=SCENARIOS, default="all", help="what each seed runs, default all"
    )
    p.add_argument("--no-shrink", action="store_true", help="do not shrink failing schedules")
    p.set_defaults(func=cmd_sim)


def cmd_sim(args: argparse.Namespace) -> int:
    if os.environ.get("PYTHONHASHSEED") != "0":  # same seed, same run, in any process
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "dynamo.tools.cli", *sys.argv[1:]])
    settings = SimSettings()
    if args.seed is not None:
        _, passed, report = _one((args.seed, args.bug, args.scenario))
        print(report)
        return 0 if passed else 1
    seeds = range(args.first, args.first + args.seeds)
    t0 = time.perf_counter()
    failed: list[int] = []
    done = 0
    work = [(s, args.bug, args.scenario) for s in seeds]
    with multiprocessing.Pool(args.workers) if args.workers > 1 else _Inline() as pool:
        for seed, passed, report in pool.imap_unordered(_one, work, chunksize=4):
            done += 1
            if not passed:
                failed.append(seed)
                print(report, flush=True)
            if done % 50 == 0 or done == len(work):
                rate = done / (time.perf_counter() - t0)
                print(
                    f"\r{done}/{len(work)} seeds, {len(failed)} failed, {rate:.1f} seeds/s",
                    end="\n" if done == len(work) else "",
                    file=sys.stderr,
                    flush=True,
                )
    elapsed = time.perf_counter() - t0
    print(
        f"{len(work)} seeds in {elapsed:.0f}s ({len(work) / elapsed:.1f} seeds/s): "
        f"{len(work) - len(failed)} passed, {len(failed)} failed"
    )
    for seed in sorted(failed)[:3]:
        outcome = run(seed, settings, bug=args.bug)
        if args.no_shrink or outcome.passed:  # the outage scenario has no schedule to shrink
            continue
        small = shrink(outcome, settings, args.bug)
        print(f"seed {seed} still fails with {len(small)} of {len(outcome.schedule)} faults:")
        for f in small:
            print(f"  {f}")
    return 1 if failed else 0


class _Inline:
    """``multiprocessing.Pool``'s ``imap_unordered`` without processes."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def imap_unordered(self, fn: Any, items: list[Any], chunksize: int = 1) -> Any:
        return map(fn, items)
