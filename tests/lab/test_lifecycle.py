"""Ownership of a lab is a flock: held while the owner lives, free the moment it dies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dynamo.tools.lab.lifecycle import OwnerLock
from tests.lab.probes import wait_until


def test_a_held_lock_cannot_be_taken_even_by_the_same_process(tmp_path: Path) -> None:
    owner, other = OwnerLock("dl00beef", tmp_path), OwnerLock("dl00beef", tmp_path)
    assert owner.acquire()
    assert not other.acquire()
    assert OwnerLock("dl00cafe", tmp_path).acquire()  # another lab's lock is another file
    owner.release()
    assert not (tmp_path / "dl00beef.lock").exists()
    assert other.acquire()
    other.release()
    owner.release()  # idempotent


def test_the_lock_is_free_once_its_owner_is_killed(tmp_path: Path) -> None:
    held = tmp_path / "held"
    code = (
        "import sys; from pathlib import Path; from dynamo.tools.lab.lifecycle import OwnerLock\n"
        "assert OwnerLock('dl00beef', Path(sys.argv[1])).acquire()\n"
        "Path(sys.argv[2]).touch(); sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path), str(held)], stdin=subprocess.PIPE
    )
    try:
        wait_until(lambda: held.exists() or child.poll() is not None, 10.0, "the child's lock")
        assert held.exists(), f"the child exited ({child.returncode}) without taking the lock"
        assert not OwnerLock("dl00beef", tmp_path).acquire()
    finally:
        child.kill()
        child.wait(timeout=10)
        assert child.stdin is not None
        child.stdin.close()
    survivor = OwnerLock("dl00beef", tmp_path)
    assert survivor.acquire()
    survivor.release()
