"""Real namespaces: hosts lost and frozen, and a lab that never outlives its owner.

Teardown is proven from the outside: after ``down()``, an exception in the ``with``,
SIGTERM, a normal exit (atexit), or the owner's ``kill -9`` and ``cleanup_stale``,
no namespace or root-namespace interface with the lab id remains and the lab's
processes are dead.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from dynamo.tools.lab import Lab, LabError, SubnetInUse, cleanup_stale, shell
from dynamo.tools.lab.lifecycle import LOCK_DIR
from tests.lab.probes import LAB_MARKS, PY, echo_server, probe_from_root, wait_until

pytestmark = LAB_MARKS

SLEEPER = [PY, "-c", "import time; time.sleep(60)"]  # a process that lives until killed

# A process that makes a lab with a process in host 0, writes "<lab id> <pid>", then
# either exits without down() ("exit") or blocks until a signal ("wait").
OWNER = """
import sys
from pathlib import Path
from dynamo.tools.lab import Lab
lab = Lab(2).up()
proc = lab.spawn(0, [sys.executable, "-c", "import time; time.sleep(60)"])
Path(sys.argv[1]).write_text(f"{lab.lab_id} {proc.pid}\\n")
if sys.argv[2] == "wait":
    sys.stdin.read()
"""


def named(lab_id: str) -> list[str]:
    """Namespaces and root-namespace interfaces whose name carries ``lab_id``."""
    return [n for n in [*shell.namespaces(), *shell.root_links()] if n.startswith(f"{lab_id}-")]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    return process_state(pid) not in ("", "Z")


def process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return ""


def start_owner(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[bytes], str, int]:
    """The OWNER program in a child process; returns it, its lab id and its host's pid."""
    out = tmp_path / f"owner-{mode}.txt"
    child = subprocess.Popen([PY, "-c", OWNER, str(out), mode], stdin=subprocess.PIPE)
    wait_until(lambda: out.exists() or child.poll() is not None, 15.0, "the owner's lab")
    wait_until(lambda: out.read_text().endswith("\n"), 5.0, "the owner's whole line")
    lab_id, pid = out.read_text().split()
    return child, lab_id, int(pid)


def stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.kill()
    child.wait(timeout=10)
    if child.stdin is not None:
        child.stdin.close()


def test_kill_host_kills_every_process_of_the_host_at_once(lab: Lab) -> None:
    sleeper = lab.spawn(0, SLEEPER)
    forker = lab.spawn(0, ["sh", "-c", "sleep 60 & wait"])  # its child is not tracked by spawn
    other = lab.spawn(1, SLEEPER)
    ns = lab.namespace(0)
    wait_until(lambda: len(shell.netns_pids(ns)) == 3, 10.0, "3 processes in host 0")

    pids = lab.kill_host(0)
    assert len(pids) == 3
    assert {sleeper.pid, forker.pid} < set(pids)
    assert (sleeper.returncode, forker.returncode) == (-signal.SIGKILL, -signal.SIGKILL)
    assert not any(alive(pid) for pid in pids)
    assert shell.netns_pids(ns) == []
    assert other.poll() is None  # host 1 lives on


def test_a_paused_host_leaves_connections_unanswered_until_resumed(lab: Lab) -> None:
    lab.spawn(0, echo_server(lab.address(0)))
    address = lab.address(0)
    wait_until(lambda: probe_from_root(address, timeout_s=0.5) == "ok", 10.0, "the echo server")

    pids = lab.pause_host(0)
    wait_until(lambda: all(process_state(p) == "T" for p in pids), 5.0, "host 0 stopped")
    assert probe_from_root(address, timeout_s=0.5) == "timeout"  # its kernel accepts; no answer
    lab.resume_host(0)
    wait_until(lambda: probe_from_root(address, timeout_s=0.5) == "ok", 5.0, "answers again")


def test_down_kills_processes_and_leaves_no_namespace_interface_or_lock() -> None:
    lab = Lab(2).up()
    proc = lab.spawn(1, SLEEPER)
    assert sorted(named(lab.lab_id)) == sorted([*lab.names.namespaces(), lab.names.root_veth])

    lab.down()
    assert proc.returncode == -signal.SIGKILL
    assert named(lab.lab_id) == []
    assert not (LOCK_DIR / f"{lab.lab_id}.lock").exists()
    lab.down()  # idempotent
    with pytest.raises(LabError, match="is not up"):
        lab.address(0)


def test_an_exception_inside_the_with_still_tears_everything_down() -> None:
    made: list[tuple[Lab, subprocess.Popen[bytes]]] = []

    def work() -> None:
        with Lab(2) as lab:
            made.append((lab, lab.spawn(0, SLEEPER)))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        work()
    lab, proc = made[0]
    assert named(lab.lab_id) == []
    assert proc.returncode == -signal.SIGKILL


def test_a_subnet_the_machine_uses_is_refused_and_nothing_is_left() -> None:
    lab = Lab(1, subnet="127.0.5.0/24")
    with pytest.raises(SubnetInUse, match=r"127\.0\.0\.0/8 on lo"):
        lab.up()
    assert named(lab.lab_id) == []
    assert not lab.is_up


def test_sigterm_to_the_owner_tears_its_lab_down(tmp_path: Path) -> None:
    child, lab_id, pid = start_owner(tmp_path, "wait")
    try:
        assert len(named(lab_id)) == 4
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == -signal.SIGTERM  # the default action still ran
    finally:
        stop(child)
    assert named(lab_id) == []
    assert not alive(pid)


def test_a_lab_left_up_at_exit_is_torn_down_by_atexit(tmp_path: Path) -> None:
    child, lab_id, pid = start_owner(tmp_path, "exit")
    try:
        assert child.wait(timeout=10) == 0
    finally:
        stop(child)
    assert named(lab_id) == []
    assert not alive(pid)


def test_cleanup_stale_removes_a_killed_owners_lab_and_spares_live_ones(tmp_path: Path) -> None:
    with Lab(1) as live:
        child, lab_id, pid = start_owner(tmp_path, "wait")
        stop(child)  # SIGKILL: no teardown ran
        assert len(named(lab_id)) == 4
        assert alive(pid)  # its host's process outlived it

        removed = cleanup_stale()
        assert lab_id in removed
        assert live.lab_id not in removed
        assert named(lab_id) == []
        wait_until(lambda: not alive(pid), 5.0, "the stale host's process gone")
        assert len(named(live.lab_id)) == 3  # h0, sw and the root veth: untouched
        assert live.run(0, ["true"]).returncode == 0
