"""The hint record (``handoff.hints``): its key, its age, its merge, and both stores
holding to the hint store Protocol."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo.kv import dvvset
from dynamo.storage.memory import Disk, MemStore
from dynamo.storage.rocksdb import Store
from handoff import hints
from handoff.hints import HintStore
from http_api.types import Content

CONTENT = Content(value=b"v", content_type="text/plain")
TARGETS = st.text(min_size=1, max_size=40).filter(lambda t: len(t.encode()) <= 255)


@given(TARGETS, st.binary(max_size=64))
def test_a_hint_key_splits_back_and_groups_one_targets_hints(target: str, objkey: bytes) -> None:
    hk = hints.hint_key(target, objkey)
    assert hints.split_hint_key(hk) == (target, objkey)
    assert hk.startswith(hints.hint_key(target, b""))


def test_a_node_id_too_long_for_the_key_is_refused() -> None:
    with pytest.raises(ValueError, match="255"):
        hints.hint_key("x" * 256, b"k")


def test_a_hint_expires_after_its_ttl_from_when_it_was_first_stored() -> None:
    assert not hints.expired(1_000, 1_000 + 60_000, ttl_s=60)
    assert hints.expired(1_000, 1_000 + 60_001, ttl_s=60)


@given(st.frozensets(st.integers(0, 9)), st.frozensets(st.integers(0, 9)), st.integers(0, 10**6))
def test_a_merged_hint_keeps_the_time_it_was_first_stored(
    held: frozenset[int], incoming: frozenset[int], now_ms: int
) -> None:
    def union(a: frozenset[int], b: frozenset[int]) -> frozenset[int]:
        return a | b

    assert hints.merge_into(None, incoming, now_ms, union) == (incoming, now_ms)
    record = hints.merge_into((held, 7), incoming, now_ms, union)
    if incoming <= held:
        assert record is None  # nothing new: nothing to store
    else:
        assert record == (held | incoming, 7)


def test_both_stores_are_hint_stores(tmp_path: Path) -> None:
    """mypy holds both to the Protocol here; the storage contract suite
    (``test_storage_contract.py``) holds them to its behaviour."""
    mem, disk = MemStore("n1", Disk(), random.Random(1)), Store(tmp_path / "db", "n1")
    try:
        for store in (mem, disk):
            as_hints: HintStore = store
            as_hints.put_hint("n2", b"\x00k", dvvset.update(dvvset.new(CONTENT), None, "n1/1"), 5)
            assert as_hints.hint_counts() == {"n2": 1}
    finally:
        disk.close()
        mem.close()
