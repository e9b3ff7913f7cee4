"""The node's memory as the C allocator sees it, and freed memory given back.

RocksDB's memtables and block cache, and every Python object too large for Python's own
small-object allocator, come from the C library's ``malloc``. With glibc, memory freed
inside its heaps stays in the process (and in its RSS) until the top of a heap is free
or the heap is *trimmed*; a node whose memtables fill and flush all day leaves freed
holes behind, so its RSS creeps up though nothing leaks. Two figures tell the two apart:
bytes in use (what a leak raises) and bytes free but held (what fragmentation raises).
``trim`` hands whole free pages back to the kernel (``malloc_trim``: a walk of the free
lists; 0.7 ms on average for a soak node's ~140 MiB). Another C library, or none found, gives
``None`` figures and trims nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class _Mallinfo2(ctypes.Structure):
    # glibc >= 2.33: every field a size_t (the older ``mallinfo`` wraps at 2 GiB)
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",  # bytes taken from the system with brk/sbrk, every heap
            "ordblks",  # free chunks
            "smblks",  # free fastbin chunks
            "hblks",  # chunks mmapped on their own
            "hblkhd",  # bytes in chunks mmapped on their own
            "usmblks",
            "fsmblks",  # bytes in free fastbin chunks
            "uordblks",  # bytes in use in the heaps
            "fordblks",  # bytes free in the heaps
            "keepcost",  # free bytes at the top of the main heap
        )
    ]


@dataclass(frozen=True, slots=True)
class HeapUsage:
    in_use_bytes: int  # allocated and not freed: heaps plus chunks mmapped on their own
    free_bytes: int  # freed but still held by the process


class Heap:
    """glibc's malloc statistics and ``malloc_trim``, when the process has them."""

    def __init__(self, libc: Any = None) -> None:
        self.trims = 0
        self.trim_seconds = 0.0
        self._info: Any = None
        self._trim: Any = None
        if libc is None:
            libc = _glibc()
        if libc is None:
            return
        info = getattr(libc, "mallinfo2", None)
        if info is not None:
            info.restype = _Mallinfo2
            info.argtypes = []
            self._info = info
        trim = getattr(libc, "malloc_trim", None)
        if trim is not None:
            trim.restype = ctypes.c_int
            trim.argtypes = [ctypes.c_size_t]
            self._trim = trim

    @property
    def available(self) -> bool:
        return self._info is not None

    def usage(self) -> HeapUsage | None:
        if self._info is None:
            return None
        m = self._info()
        return HeapUsage(in_use_bytes=m.uordblks + m.hblkhd, free_bytes=m.fordblks)

    def trim(self) -> bool:
        """Give free pages back to the kernel; whether any were."""
        if self._trim is None:
            return False
        t0 = time.perf_counter()
        released = bool(self._trim(0))
        self.trims += 1
        self.trim_seconds += time.perf_counter() - t0
        return released

    def stats(self) -> dict[str, int | float | None]:
        usage = self.usage()
        return {
            "malloc_in_use_bytes": None if usage is None else usage.in_use_bytes,
            "malloc_free_bytes": None if usage is None else usage.free_bytes,
            "malloc_trims_total": self.trims,
            "malloc_trim_seconds_total": round(self.trim_seconds, 4),
            # Python's small objects (its own allocator, beside malloc): a Python-level
            # leak shows here first
            "python_allocated_blocks": sys.getallocatedblocks(),
        }


def _glibc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        log.info("no C library to read malloc statistics from (%s)", name)
        return None
    gnu = getattr(libc, "gnu_get_libc_version", None)
    if gnu is None:  # musl and others: no mallinfo2, no malloc_trim
        return None
    return libc
