"""A small filesystem that a test fills and frees: a tmpfs mounted by the test itself
(root only) and unmounted afterwards, even when the test fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FILLER = "filler"


@contextmanager
def small_filesystem(path: Path, size_mib: int) -> Iterator[Path]:
    """``path`` as a fresh tmpfs of ``size_mib``; skips the test when it cannot be made."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    path.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield path
    finally:
        gone = subprocess.run(["umount", str(path)], capture_output=True, timeout=30)
        if gone.returncode != 0:  # something still holds a file: detach it now, free later
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def fill(path: Path, leave_bytes: int) -> Path:
    """Write a filler file leaving about ``leave_bytes`` free on ``path``'s filesystem."""
    free = shutil.disk_usage(path).free
    filler = path / FILLER
    with open(filler, "wb") as f:
        chunk = b"\0" * (1 << 20)
        todo = max(0, free - leave_bytes)
        while todo > 0:
            n = f.write(chunk[: min(len(chunk), todo)])
            todo -= n
    return filler
