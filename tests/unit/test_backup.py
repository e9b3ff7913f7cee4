"""Backups of one node (a RocksDB checkpoint and its manifest) and restores from them:
a new incarnation whose clock actors were never used, old backups refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynamo.kv import dvvset
from dynamo.kv.replica import Replica
from dynamo.node import backup
from dynamo.storage.rocksdb import Store
from http_api.types import Content

DAY = 86400.0
KEY = (7).to_bytes(8, "big") + b"\x00\x01b" + b"k"


def write(replica: Replica, value: bytes) -> str:
    """Coordinate a write of ``KEY`` over the local copy; the actor it was stamped with."""
    local = replica.store.get(KEY)
    context = dvvset.join(local[0]) if local else ()
    obj = replica.coordinate(
        KEY, Content(value=value, last_modified_us=1), context,
        hint_for=None, allow_mult=True, last_write_wins=False,
    )  # fmt: skip
    before = {actor: n for actor, n, _ in local[0].entries} if local else {}
    stamped = [actor for actor, n, _ in obj.entries if n > before.get(actor, 0)]
    assert len(stamped) == 1, obj.entries
    return stamped[0]


def test_a_backup_restores_as_a_new_incarnation_with_fresh_actors(tmp_path: Path) -> None:
    store = Store(tmp_path / "live", "n1")
    replica = Replica(store)
    first_actor = write(replica, b"v1")
    out = backup.take(store, tmp_path / "backups", "b1", now=1000.0, marker_ttl_s=7 * DAY)
    assert out["node_id"] == "n1"
    assert out["bytes"] > 0
    assert (
        json.loads((tmp_path / "backups" / "b1" / backup.MANIFEST).read_text())["seq"] == store.seq
    )
    assert write(replica, b"v2") == first_actor  # the live node goes on with its actor
    old_incarnation = store.incarnation
    store.close()

    restored = backup.restore(tmp_path / "backups" / "b1", tmp_path / "new", now=1000.0 + DAY)
    assert restored["old_incarnation"] == old_incarnation
    store = Store(tmp_path / "new", "n1")
    try:
        assert store.incarnation == restored["incarnation"] != old_incarnation
        assert not store.fresh
        got = store.get(KEY)
        assert got is not None
        assert [c.value for c in dvvset.values(got[0])] == [b"v1"]  # as at the backup
        # The old node went on stamping with its actor after the backup: the restored
        # node must never issue those dots again, so it takes an actor of its own.
        assert write(Replica(store), b"v3") != first_actor
    finally:
        store.close()


def test_what_a_backup_or_restore_refuses(tmp_path: Path) -> None:
    store = Store(tmp_path / "live", "n1")
    try:
        with pytest.raises(backup.BackupError, match="set backup_root"):
            backup.take(store, None, "b1", now=0.0, marker_ttl_s=DAY)
        with pytest.raises(backup.BackupError, match="letters, digits"):
            backup.take(store, tmp_path / "b", "../escape", now=0.0, marker_ttl_s=DAY)
        backup.take(store, tmp_path / "b", "b1", now=0.0, marker_ttl_s=DAY)
        with pytest.raises(backup.BackupExists):
            backup.take(store, tmp_path / "b", "b1", now=0.0, marker_ttl_s=DAY)
    finally:
        store.close()
    with pytest.raises(backup.BackupError, match="older than the reaped markers' lifetime"):
        backup.restore(tmp_path / "b" / "b1", tmp_path / "new", now=2 * DAY)
    assert not (tmp_path / "new").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    with pytest.raises(backup.BackupError, match="not empty"):
        backup.restore(tmp_path / "b" / "b1", tmp_path / "full", now=0.0)
    with pytest.raises(backup.BackupError, match="is not a backup"):
        backup.restore(tmp_path / "full", tmp_path / "new", now=0.0)
    forced = backup.restore(tmp_path / "b" / "b1", tmp_path / "new", now=2 * DAY, force=True)
    assert forced["backup_age_s"] == 2 * DAY
