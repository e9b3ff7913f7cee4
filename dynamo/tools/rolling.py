"""``dynamo rolling-restart``: restart every node of a cluster, one at a time, each only
once the one before has caught up.

For each member in turn (sorted by node id): run the restart (a shell command with
``{node}``, ``{host}`` and ``{http_addr}`` filled in, e.g. ``systemctl restart dynamo``
over ssh or ``kubectl delete pod {node}``), then wait until the node is settled:

1. it answers, started after the restart was asked for (its uptime says so), and
   reports ready (``/admin/health``);
2. every other member sees it up;
3. no member holds hints for it any more (what it missed while down was handed back);
4. its anti-entropy has exchanged with every other member since it started, with no
   failure in a row, and has read each one's log up to where that log stood when the
   node came back (less ``max_lag`` entries): what it missed while it was down without
   a hint for it (a write that met W on the others) is then on it. Later entries
   reached it directly. Anti-entropy's lag against the log's head grows under a heavy
   write load (it reads a bounded number of entries per round), so the head at the
   node's return is the mark, not the moving head.

Only then is the next node restarted, so at most one replica of any key is away at any
moment and a client that retries a 503 sees no failure. ``why_not_settled`` is the
pure decision; ``RollingRestart`` polls the nodes' admin routes for it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from http_api.admin import AdminClient, AdminError

POLL_S = 0.5


@dataclass(frozen=True)
class NodeView:
    """What one member's admin routes said at one poll."""

    members: Mapping[str, Any]  # /admin/members
    handoff: Mapping[str, Any]  # /admin/handoff
    aae: Mapping[str, Any]  # /admin/aae
    uptime_s: float  # /stats node_uptime_s
    ready: bool  # /admin/health answered 200


def why_not_settled(
    node: str,
    views: Mapping[str, NodeView | None],
    since_s: float,
    max_lag: int,
    heads_at_return: Mapping[str, int],
) -> str | None:
    """Why ``node`` is not settled yet (``None``: it is). ``views`` holds every member's
    view, ``None`` for one that did not answer; ``since_s`` is how long ago its restart
    was asked for; ``heads_at_return`` each other member's log head when ``node``
    first reported ready again (empty until then)."""
    me = views.get(node)
    if me is None:
        return "it does not answer yet"
    if me.uptime_s > since_s + 1:
        return f"it has been up {me.uptime_s:.0f} s: not restarted yet"
    if not me.ready:
        return "it does not report ready (/admin/health)"
    others = sorted(n for n in views if n != node)
    for other in others:
        view = views[other]
        if view is None:
            return f"{other} does not answer"
        seen = {m["node"]: m for m in view.members.get("members", [])}
        if not seen.get(node, {}).get("up"):
            return f"{other} does not see it up yet"
        pending = int(view.handoff.get("hints_pending", {}).get(node, 0))
        if pending:
            return f"{other} still holds {pending} hints for it"
    peers = me.aae.get("peers", {})
    for other in others:
        p = peers.get(other)
        if p is None or p.get("last_success_age_s") is None:
            return f"no anti-entropy exchange with {other} since it started"
        if p.get("consecutive_failures"):
            return f"anti-entropy with {other} is failing: {p.get('last_error')}"
        if other not in heads_at_return:
            return f"{other}'s log head at its return is not known yet"
        behind = heads_at_return[other] - int(p.get("watermark") or 0)
        if behind > max_lag:
            return (
                f"anti-entropy has {behind} entries of {other}'s log to read up to where it"
                f" stood at the return (bound {max_lag})"
            )
    return None


@dataclass
class Step:
    node: str
    restart_s: float  # how long the restart command took
    settled_s: float  # from asking for the restart to settled


class RollingRestart:
    def __init__(
        self,
        admin: AdminClient,
        restart: Callable[[Mapping[str, Any]], None],
        *,
        max_lag: int = 1000,
        timeout_s: float = 600.0,
        say: Callable[[str], None] = print,
    ) -> None:
        self.admin = admin
        self.restart = restart
        self.max_lag = max_lag
        self.timeout_s = timeout_s
        self.say = say

    def members(self) -> list[Mapping[str, Any]]:
        """The members to restart: every one that is valid or joining, by node id."""
        data = self.admin.get("/admin/members")
        live = [m for m in data["members"] if m.get("status") not in ("leaving", "left")]
        return sorted((m for m in live if not m.get("removed")), key=lambda m: str(m["node"]))

    def run(self) -> list[Step]:
        members = self.members()
        down = [m["node"] for m in members if not m.get("up")]
        if down:
            raise RuntimeError(f"{', '.join(down)} down before the restart: bring them back first")
        steps = []
        for m in members:
            node = str(m["node"])
            self.say(f"{node}: restarting")
            t0 = time.monotonic()
            self.restart(m)
            restarted = time.monotonic() - t0
            self._wait_settled(node, members, t0)
            steps.append(Step(node, restarted, time.monotonic() - t0))
            self.say(f"{node}: settled {steps[-1].settled_s:.1f} s after its restart")
        return steps

    def _wait_settled(self, node: str, members: list[Mapping[str, Any]], t0: float) -> None:
        deadline = t0 + self.timeout_s
        last = ""
        heads: dict[str, int] = {}
        while True:
            views = {str(m["node"]): self._view(str(m["http_addr"])) for m in members}
            me = views.get(node)
            since_s = time.monotonic() - t0
            if not heads and me is not None and me.ready and me.uptime_s <= since_s + 1:
                answered = {n: v for n, v in views.items() if n != node and v is not None}
                if len(answered) == len(views) - 1:  # every other member's head, at once
                    heads = {n: int(v.aae.get("head") or 0) for n, v in answered.items()}
            why = why_not_settled(node, views, since_s, self.max_lag, heads)
            if why is None:
                return
            if why != last:
                self.say(f"{node}: waiting: {why}")
                last = why
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node} not settled after {self.timeout_s:.0f} s: {why}")
            time.sleep(POLL_S)

    def _view(self, http_addr: str) -> NodeView | None:
        client = self.admin.at(http_addr)
        try:
            ready, _ = client.health()
            return NodeView(
                members=client.get("/admin/members", timeout_s=5),
                handoff=client.get("/admin/handoff", timeout_s=5),
                aae=client.get("/admin/aae", timeout_s=5),
                uptime_s=float(client.get("/stats", timeout_s=5)["node_uptime_s"]),
                ready=ready,
            )
        except (OSError, ValueError, KeyError, AdminError):
            return None


def shell_restart(command: str, timeout_s: float) -> Callable[[Mapping[str, Any]], None]:
    """A restart that runs ``command`` with the member's ``{node}``, ``{host}`` and
    ``{http_addr}`` filled in; a non-zero exit stops the rolling restart."""

    def restart(member: Mapping[str, Any]) -> None:
        http_addr = str(member["http_addr"])
        cmd = command.format(
            node=member["node"], host=http_addr.rpartition(":")[0], http_addr=http_addr
        )
        done = subprocess.run(cmd, shell=True, timeout=timeout_s, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"restart of {member['node']} failed ({done.returncode}): {cmd}: "
                f"{(done.stderr or done.stdout).strip()[-500:]}"
            )

    return restart


def run_cli(admin: AdminClient, command: str, max_lag: int, timeout_s: float) -> int:
    """``dynamo rolling-restart``: 0 once every node restarted and settled, else 1."""
    roll = RollingRestart(
        admin,
        shell_restart(command, timeout_s),
        max_lag=max_lag,
        timeout_s=timeout_s,
        say=lambda line: print(line, flush=True),
    )
    try:
        steps = roll.run()
    except (RuntimeError, TimeoutError, OSError, AdminError) as e:
        print(f"dynamo rolling-restart: {e}", file=sys.stderr)
        return 1
    total = sum(s.settled_s for s in steps)
    print(f"restarted {len(steps)} nodes in {total:.0f} s, each settled before the next")
    return 0
