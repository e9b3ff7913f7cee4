"""Who owns a lab, and the guarantee that a lab does not outlive its owner.

Ownership is a lock file, ``/run/dynamo-lab/<lab id>.lock``, held with ``flock`` by
the process that made the lab from before its first namespace exists until its last
one is gone. The kernel drops the lock when the owner dies, however it dies (even
``kill -9``), so "is this lab stale?" is "can I take its lock?": no pid file to
go stale, no pid reuse to fool it. ``cleanup_stale`` takes the lock of every lab
whose names it finds (namespaces and root-namespace interfaces carrying the
prefix) and, for each one it gets, kills the processes left in its namespaces and
deletes the lab; a live lab's lock is held, so another process's lab (or one of
this process's) is never touched. ``/run`` is a tmpfs, as the namespaces' mounts
are, so both vanish together on reboot.

Teardown on the owner's way out: every lab that is up is registered here; an
``atexit`` hook and a SIGTERM handler (installed in the main thread, chained to the
handler it replaces, which then runs as before: the default one ends the process
with SIGTERM's status) tear down the registered labs of this process (a forked
child inherits the registry and must leave its parent's labs alone).
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from dynamo.tools.lab import shell
from dynamo.tools.lab.names import PREFIX, lab_id_of
from dynamo.tools.lab.plan import teardown_plan

log = logging.getLogger(__name__)

LOCK_DIR = Path("/run/dynamo-lab")
KILL_WAIT_S = 5.0


class OwnerLock:
    """The flock that says a lab is alive; ``acquire`` fails if another holds it."""

    def __init__(self, lab_id: str, lock_dir: Path = LOCK_DIR) -> None:
        self.path = lock_dir / f"{lab_id}.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False if someone holds it."""
        self.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.write(fd, f"{os.getpid()}\n".encode())  # for a human; liveness is the lock
        self._fd = fd
        return True

    def release(self) -> None:
        """Remove the lock file, then drop the lock (idempotent)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def _kill_all(namespaces: list[str]) -> None:
    for ns in namespaces:
        for pid in shell.netns_pids(ns):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def cleanup_stale(prefix: str = PREFIX, *, lock_dir: Path = LOCK_DIR) -> list[str]:
    """Delete the leftovers of dead labs of ``prefix``; returns their lab ids.

    A lab is dead when nobody holds its lock. Only names that parse as
    ``<prefix><6 hex>-<suffix>`` are considered, and only dead labs' are touched.
    """
    ns_by_lab: dict[str, list[str]] = {}
    links_by_lab: dict[str, list[str]] = {}
    for ns in shell.namespaces():
        if (lab_id := lab_id_of(ns, prefix)) is not None:
            ns_by_lab.setdefault(lab_id, []).append(ns)
    for link in shell.root_links():
        if (lab_id := lab_id_of(link, prefix)) is not None:
            links_by_lab.setdefault(lab_id, []).append(link)
    removed = []
    for lab_id in sorted(ns_by_lab.keys() | links_by_lab.keys()):
        lock = OwnerLock(lab_id, lock_dir)
        if not lock.acquire():
            continue  # alive: its owner holds the lock
        try:
            namespaces = sorted(ns_by_lab.get(lab_id, []), key=lambda n: n.endswith("-sw"))
            _kill_all(namespaces)
            for cmd in teardown_plan(namespaces, links_by_lab.get(lab_id, [])):
                shell.run(cmd)
            removed.append(lab_id)
            log.info("removed stale lab %s (%s)", lab_id, ", ".join(namespaces))
        finally:
            lock.release()
    return removed


class _Teardown(Protocol):
    def down(self) -> None: ...


_live: dict[int, _Teardown] = {}
_owner_pid: dict[int, int] = {}
_registry_lock = threading.RLock()
_atexit_installed = False
_sigterm_installed = False
_previous_sigterm: Callable[[int, FrameType | None], Any] | int | None = signal.SIG_DFL


def register(lab: _Teardown) -> None:
    """Tear ``lab`` down at interpreter exit or on SIGTERM unless it is down by then."""
    global _atexit_installed, _sigterm_installed, _previous_sigterm
    with _registry_lock:
        _live[id(lab)] = lab
        _owner_pid[id(lab)] = os.getpid()
        if not _atexit_installed:
            atexit.register(teardown_all)
            _atexit_installed = True
        if _sigterm_installed:
            return
        if threading.current_thread() is threading.main_thread():
            _previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
            _sigterm_installed = True
        else:  # signal.signal works in the main thread only; a later lab made there installs it
            log.warning("lab made outside the main thread: no SIGTERM teardown, atexit only")


def unregister(lab: _Teardown) -> None:
    with _registry_lock:
        _live.pop(id(lab), None)
        _owner_pid.pop(id(lab), None)


def teardown_all() -> None:
    """Tear down every lab this process made that is still up (best effort, logged)."""
    with _registry_lock:
        mine = [lab for key, lab in _live.items() if _owner_pid.get(key) == os.getpid()]
    for lab in mine:
        try:
            lab.down()
        except Exception:
            log.exception("lab teardown failed; run cleanup_stale() as root to finish it")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    teardown_all()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:  # the default, or a handler Python cannot call: end
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
