"""Running the lab's commands, and reading the machine's state, always with a timeout.

Every command goes through ``run``: ``argv[0]`` resolved on ``PATH`` up front (a
missing tool is a clear ``LabUnavailable``, not an ``ENOENT`` from deep inside), a
timeout on every call (``ip`` and ``nft`` finish in milliseconds; one that hangs is
a broken machine, and the lab must not hang with it), and a failure raised as
``LabCommandError`` with the command and its stderr unless the command may fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from dynamo.tools.lab.errors import LabCommandError, LabUnavailable
from dynamo.tools.lab.plan import Cmd

COMMAND_TIMEOUT_S = 10.0
REQUIRED_TOOLS = {"ip": "iproute2", "nft": "nftables"}


def environment_problems() -> list[str]:
    """Why this machine cannot run a lab, one sentence each with the fix (empty: it can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("network namespaces need root: run as root (uid 0)")
    for tool, package in REQUIRED_TOOLS.items():
        if shutil.which(tool) is None:
            problems.append(
                f"`{tool}` is not on PATH: install {package}"
                f" (apt-get install {package}, or run tests/setup.sh as root)"
            )
    return problems


def require_environment() -> None:
    """Raise ``LabUnavailable`` listing every problem if the machine cannot run a lab."""
    problems = environment_problems()
    if problems:
        raise LabUnavailable("; ".join(problems))


def resolve(argv: tuple[str, ...]) -> list[str]:
    """``argv`` with its program resolved on PATH (``LabUnavailable`` if it is missing)."""
    path = shutil.which(argv[0])
    if path is None:
        raise LabUnavailable(f"`{argv[0]}` is not on PATH: {'; '.join(environment_problems())}")
    return [path, *argv[1:]]


def run(cmd: Cmd, timeout_s: float = COMMAND_TIMEOUT_S) -> str:
    """Run ``cmd`` and return its stdout; ``LabCommandError`` if it fails (unless it may)."""
    try:
        done = subprocess.run(
            resolve(cmd.argv),
            input=cmd.stdin,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        if cmd.may_fail:
            return ""
        raise LabCommandError(cmd.argv, f"did not finish within {timeout_s} s")
    if done.returncode != 0 and not cmd.may_fail:
        raise LabCommandError(
            cmd.argv, f"failed (exit {done.returncode}): {done.stderr.strip() or '(no stderr)'}"
        )
    return done.stdout


def ip_json(*args: str) -> object:
    """The parsed output of ``ip -j ARGS`` (an empty list when ``ip`` prints nothing)."""
    out = run(Cmd(argv=("ip", "-j", *args)))
    return json.loads(out) if out.strip() else []


def namespaces() -> list[str]:
    """The names of every named network namespace (``ip netns list``)."""
    listed = ip_json("netns", "list")
    return [e["name"] for e in listed if isinstance(e, dict)] if isinstance(listed, list) else []


def root_links() -> list[str]:
    """The names of every interface in the root namespace."""
    listed = ip_json("link", "show")
    if not isinstance(listed, list):
        return []
    return [e["ifname"] for e in listed if isinstance(e, dict) and "ifname" in e]


def netns_pids(ns: str) -> list[int]:
    """The processes inside namespace ``ns`` now (none if it is gone)."""
    out = run(Cmd(argv=("ip", "netns", "pids", ns), may_fail=True))
    return [int(p) for p in out.split() if p.isdigit()]
