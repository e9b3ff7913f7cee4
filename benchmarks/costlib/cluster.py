"""A scratch cluster's life: a ``LocalCluster`` in a temporary directory, stopped on the
way out whatever happens (SIGTERM, as from ``timeout``, included), its directory removed
unless kept (asked for, or after a failure, with the nodes' state and logs printed);
and the waits that tell when its nodes are idle."""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from costlib.node import READ_ERRORS, aae_summary, pending_compaction, proc_cpu_s
from dynamo.tools.localcluster import LocalCluster, NodeProcess, WaitTimeout, wait_for


class Stop(Exception):
    """SIGTERM: end the run, stopping the cluster on the way out."""


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise Stop(f"signal {signum}")


def stop_on_sigterm() -> None:
    """Turn SIGTERM into ``Stop``, so ``finally`` blocks stop the nodes."""
    signal.signal(signal.SIGTERM, _sigterm)


class Scratch:
    """One cluster in its temporary directory; ``fail`` keeps the directory."""

    def __init__(self, prefix: str, nodes: int, settings: Sequence[str], keep: bool) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.cluster = LocalCluster(self.root, nodes, settings=settings)
        self.keep = keep
        self.failed = False

    def fail(self, e: BaseException, tail: int = 30) -> str:
        """Print what failed, each node's log exchange state and the logs' tails."""
        self.failed = True
        msg = f"{type(e).__name__}: {e}"
        print(f"\n!!! {msg}", file=sys.stderr)
        if not isinstance(e, Stop | KeyboardInterrupt):
            traceback.print_exc(file=sys.stderr)
        try:
            print("log exchange state:\n" + aae_summary(self.cluster.running()), file=sys.stderr)
        except READ_ERRORS:
            pass
        print(self.cluster.logs(tail=tail), file=sys.stderr, flush=True)
        return msg

    @property
    def kept(self) -> str | None:
        return str(self.root) if self.failed or self.keep else None

    def close(self) -> None:
        self.cluster.stop()
        if self.kept is None:
            shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def scratch(prefix: str, nodes: int, settings: Sequence[str], keep: bool) -> Iterator[Scratch]:
    s = Scratch(prefix, nodes, settings, keep)
    try:
        yield s
    finally:
        s.close()


def wait_compactions(nodes: Sequence[NodeProcess], timeout_s: float) -> None:
    """RocksDB's pending compactions drained on every node (or a note at the timeout)."""
    try:
        wait_for(
            lambda: all(pending_compaction(n) == 0 for n in nodes),
            timeout_s,
            "RocksDB's pending compactions to drain",
            interval_s=2,
        )
    except WaitTimeout as e:
        print(f"  note: {e}; measuring anyway")


def wait_idle(
    nodes: Sequence[NodeProcess], idle_cpu: float, window_s: float, timeout_s: float
) -> float:
    """Seconds until every node used under ``idle_cpu`` of a core over ``window_s`` (or a
    note at the timeout)."""
    pids = {n.node_id: n.pid for n in nodes if n.pid}
    t0 = time.monotonic()
    prev = {k: proc_cpu_s(p) for k, p in pids.items()}
    while True:
        time.sleep(window_s)
        cur = {k: proc_cpu_s(p) for k, p in pids.items()}
        rate = {k: (cur[k] - prev[k]) / window_s for k in cur}
        prev = cur
        if all(v < idle_cpu for v in rate.values()):
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout_s:
            shown = {k: round(v, 3) for k, v in rate.items()}
            print(f"  note: nodes still busy after {timeout_s:.0f}s ({shown} of a core)")
            return time.monotonic() - t0
