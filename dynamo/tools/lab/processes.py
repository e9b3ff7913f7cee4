"""The processes running in one simulated host, and signals to all of them at once.

A host's processes are whatever runs in its network namespace: the ones ``spawn``
started (tracked as ``Popen``, each in its own session so the caller's Ctrl-C or
process-group signals never reach it) and anything they forked (found by
``ip netns pids``). A signal goes to the union of both, in one pass, so
``SIGKILL`` loses the whole host at once, as a power cut does, and ``SIGSTOP``
freezes it whole. Waiting for the dead polls with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from dynamo.tools.lab import shell
from dynamo.tools.lab.errors import LabCommandError
from dynamo.tools.lab.plan import netns_exec

KILL_WAIT_S = 5.0  # a SIGKILLed process is gone in milliseconds; this bounds a stuck one


class HostProcesses:
    """The processes of the host whose namespace is ``ns``."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.spawned: list[subprocess.Popen[bytes]] = []

    def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        log_path: Path | str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in the namespace; stdout and stderr to ``log_path`` (or nowhere)."""
        with contextlib.ExitStack() as stack:
            out: int | IO[bytes] = subprocess.DEVNULL
            if log_path is not None:
                out = stack.enter_context(open(log_path, "ab"))
            proc = subprocess.Popen(
                shell.resolve(netns_exec(self.ns, argv)),
                env=None if env is None else dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.spawned.append(proc)
        return proc

    def run(
        self, argv: Sequence[str], *, timeout_s: float, input_text: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the namespace to completion, output captured (killed at timeout)."""
        full = shell.resolve(netns_exec(self.ns, argv))
        try:
            return subprocess.run(
                full, input=input_text, capture_output=True, text=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            raise LabCommandError(full, f"did not finish within {timeout_s} s")

    def pids(self) -> set[int]:
        """Every live process of the host: the spawned ones and whatever runs in its namespace."""
        running = {p.pid for p in self.spawned if p.poll() is None}
        return running | set(shell.netns_pids(self.ns))

    def signal(self, sig: signal.Signals) -> list[int]:
        """Send ``sig`` to every process of the host in one pass; returns their pids."""
        pids = sorted(self.pids())
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return pids

    def reap(self, deadline: float) -> bool:
        """Wait (until ``deadline``, monotonic) for the host to have no process; True if so."""
        for p in self.spawned:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, deadline - time.monotonic()))
        while self.pids():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)  # polls the condition above; bounded by the deadline
        return True
