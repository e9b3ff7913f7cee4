"""The lab's public surface, pinned: a change to it is a decision, not an accident."""

from __future__ import annotations

import dynamo.tools.lab as lab


def test_public_api() -> None:
    assert lab.__all__ == [
        "Flap",
        "Lab",
        "LabCommandError",
        "LabError",
        "LabUnavailable",
        "SubnetInUse",
        "cleanup_stale",
        "environment_problems",
    ]
    assert all(hasattr(lab, name) for name in lab.__all__)


def test_error_tree() -> None:
    for error in (lab.LabUnavailable, lab.SubnetInUse, lab.LabCommandError):
        assert issubclass(error, lab.LabError)
    e = lab.LabCommandError(["ip", "netns", "add", "x"], "failed (exit 1): File exists")
    assert str(e) == "`ip netns add x` failed (exit 1): File exists"
