"""When a restarted node counts as settled, so that a rolling restart may go on."""

from __future__ import annotations

from typing import Any

import pytest

from dynamo.tools.rolling import NodeView, shell_restart, why_not_settled

NODES = ("n1", "n2", "n3")


def view(
    node: str,
    *,
    uptime_s: float = 1000.0,
    ready: bool = True,
    down: tuple[str, ...] = (),
    hints: dict[str, int] | None = None,
    aae: dict[str, dict[str, Any]] | None = None,
) -> NodeView:
    peer = {"last_success_age_s": 0.5, "consecutive_failures": 0, "watermark": 50}
    return NodeView(
        members={"members": [{"node": n, "up": n not in down} for n in NODES]},
        handoff={"hints_pending": hints or {}, "transfers": []},
        aae={
            "peers": aae if aae is not None else {n: dict(peer) for n in NODES if n != node},
            "head": 100,
        },
        uptime_s=uptime_s,
        ready=ready,
    )


def views(**changed: NodeView | None) -> dict[str, NodeView | None]:
    out: dict[str, NodeView | None] = {n: view(n) for n in NODES}
    out["n1"] = view("n1", uptime_s=3.0)  # n1 was restarted 5 s ago
    out.update(changed)
    return out


HEADS = {"n2": 55, "n3": 60}  # the others' log heads when n1 came back


def test_a_caught_up_node_is_settled() -> None:
    assert why_not_settled("n1", views(), 5.0, 10, HEADS) is None


@pytest.mark.parametrize(
    ("changed", "why"),
    [
        ({"n1": None}, "it does not answer yet"),
        ({"n1": view("n1", uptime_s=100.0)}, "not restarted yet"),
        ({"n1": view("n1", uptime_s=3.0, ready=False)}, "does not report ready"),
        ({"n2": None}, "n2 does not answer"),
        ({"n3": view("n3", down=("n1",))}, "n3 does not see it up yet"),
        ({"n2": view("n2", hints={"n1": 4, "n3": 0})}, "n2 still holds 4 hints for it"),
        (
            {
                "n1": view(
                    "n1", uptime_s=3.0, aae={"n2": {"last_success_age_s": 1.0, "watermark": 60}}
                )
            },
            "no anti-entropy exchange with n3 since it started",
        ),
        (
            {
                "n1": view(
                    "n1",
                    uptime_s=3.0,
                    aae={
                        "n2": {"last_success_age_s": 1.0, "watermark": 60},
                        "n3": {
                            "last_success_age_s": 1.0,
                            "consecutive_failures": 2,
                            "last_error": "Unreachable",
                        },
                    },
                )
            },
            "anti-entropy with n3 is failing: Unreachable",
        ),
        (
            {
                "n1": view(
                    "n1",
                    uptime_s=3.0,
                    aae={
                        "n2": {"last_success_age_s": 1.0, "watermark": 44},
                        "n3": {"last_success_age_s": 1.0, "watermark": 60},
                    },
                )
            },
            "has 11 entries of n2's log to read up to where it stood at the return (bound 10)",
        ),
    ],
)
def test_what_keeps_a_node_from_settling(changed: dict[str, NodeView | None], why: str) -> None:
    got = why_not_settled("n1", views(**changed), 5.0, 10, HEADS)
    assert got is not None
    assert why in got


def test_hints_for_other_nodes_do_not_hold_it_back() -> None:
    assert why_not_settled("n1", views(n2=view("n2", hints={"n3": 7})), 5.0, 10, HEADS) is None


def test_a_log_head_grown_since_the_return_does_not_hold_it_back() -> None:
    """Entries after the return reached it directly; only the ones before count."""
    assert why_not_settled("n1", views(), 5.0, 0, {"n2": 50, "n3": 50}) is None
    got = why_not_settled("n1", views(), 5.0, 0, {"n2": 51, "n3": 50})
    assert got is not None
    assert "1 entries of n2's log" in got
    assert (
        why_not_settled("n1", views(), 5.0, 0, {}) == "n2's log head at its return is not known yet"
    )


def test_the_restart_command_gets_the_members_fields() -> None:
    member = {"node": "n2", "http_addr": "10.0.0.2:8098"}
    shell_restart("test '{node} {host} {http_addr}' = 'n2 10.0.0.2 10.0.0.2:8098'", 10)(member)
    with pytest.raises(RuntimeError, match="restart of n2 failed"):
        shell_restart("exit 3", 10)(member)
