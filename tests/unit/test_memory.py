"""The C heap's figures tell a leak (bytes in use) from fragmentation (bytes freed but
held), and a trim hands freed pages back; without glibc every figure is unknown."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import pytest

from dynamo.node.config import ConfigError, NodeConfig
from dynamo.node.memory import Heap

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not Heap().available, reason="glibc's malloc only"
)


@glibc
def test_bytes_in_use_follow_an_allocation_and_its_release() -> None:
    heap = Heap()
    before = heap.usage()
    assert before is not None
    size = 64 * 1024 * 1024
    block = ctypes.create_string_buffer(size)  # malloc'd by Python, held here
    held = heap.usage()
    assert held is not None
    assert held.in_use_bytes - before.in_use_bytes >= size
    del block
    after = heap.usage()
    assert after is not None
    assert after.in_use_bytes - before.in_use_bytes < size // 2


@glibc
def test_a_trim_gives_freed_heap_pages_back_and_is_counted() -> None:
    heap = Heap()
    # Many mid-sized blocks come from the heap itself (under the mmap threshold); freeing
    # all but the last leaves free pages below it that only a trim returns.
    blocks = [ctypes.create_string_buffer(64 * 1024) for _ in range(400)]
    last = blocks.pop()
    blocks.clear()
    freed = heap.usage()
    assert freed is not None
    assert freed.free_bytes >= 8 * 1024 * 1024
    rss_before = _rss()
    heap.trim()
    assert rss_before - _rss() >= 4 * 1024 * 1024, "the freed pages stayed resident"
    trimmed = heap.usage()
    assert heap.trims == 1
    assert heap.trim_seconds >= 0
    assert trimmed is not None
    assert trimmed.in_use_bytes >= 64 * 1024
    stats = heap.stats()
    assert stats["malloc_trims_total"] == 1
    assert stats["malloc_in_use_bytes"] == trimmed.in_use_bytes
    assert isinstance(stats["python_allocated_blocks"], int)
    del last


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_without_glibc_the_figures_are_unknown_and_trim_does_nothing() -> None:
    class Musl:  # a C library with neither mallinfo2 nor malloc_trim
        pass

    heap = Heap(libc=Musl())
    assert not heap.available
    assert heap.usage() is None
    assert heap.trim() is False
    stats = heap.stats()
    assert stats["malloc_in_use_bytes"] is None
    assert stats["malloc_free_bytes"] is None
    assert stats["malloc_trims_total"] == 0


def test_a_negative_trim_interval_is_refused_with_what_to_write() -> None:
    with pytest.raises(ConfigError, match=r"malloc_trim_interval_s.*0 \(never\)"):
        NodeConfig(node_id="n1", data_dir=Path("d"), malloc_trim_interval_s=-1)
    assert (
        NodeConfig(
            node_id="n1", data_dir=Path("d"), malloc_trim_interval_s=0
        ).malloc_trim_interval_s
        == 0
    )
