"""Backups of one node and restores from them.

A backup is a RocksDB checkpoint (hard links to the immutable files plus a copy of the
live ones: cheap, and consistent for this node at one instant) taken by the node into
``backup_root/NAME/db``, with a manifest ``backup.json`` beside it. A backup of every
node taken in turn is not one consistent cut of the cluster: each node's copy is of
its own instant, and anti-entropy reconciles them after a restore.

A restore copies the checkpoint into an empty data directory (the node stopped) and
makes it a new incarnation of the node with fresh actors: its clock epochs start from a
new random base, so no dot the old node issued after the backup is ever issued again
(data-type actors are the same actors), and peers read its log from the start. Anti-
entropy then brings it up to date. A backup older than the reaped markers' lifetime
is refused unless forced: a key deleted and reaped since would come back with it.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from dynamo.kv.replica import META_EPOCH_BASE, META_EPOCH_LEASE
from dynamo.storage.contract import META_INCARNATION
from dynamo.storage.rocksdb import Store

MANIFEST = "backup.json"
FORMAT = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class BackupError(Exception):
    """A backup or restore refused; the message says what to change."""


class BackupExists(BackupError):
    pass


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise BackupError(
            f"backup name {name!r}: use 1-100 letters, digits, '.', '_' or '-' (a directory"
            " under backup_root)"
        )
    return name


def take(
    store: Store, root: Path | None, name: str, *, now: float, marker_ttl_s: float
) -> dict[str, Any]:
    """Checkpoint ``store`` into ``root/name``; the manifest, with size and duration."""
    if root is None:
        raise BackupError("backups are off on this node: set backup_root (a directory)")
    dest = root / check_name(name)
    if dest.exists():
        raise BackupExists(f"{dest} exists: choose another name or remove it")
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    dest.mkdir()
    try:
        store.checkpoint(dest / "db")
    except Exception:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    manifest = {
        "format": FORMAT,
        "node_id": store.node_id,
        "incarnation": store.incarnation,
        "created_at": now,
        "seq": store.seq,
        "reaped_marker_ttl_s": marker_ttl_s,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    files = [p for p in (dest / "db").rglob("*") if p.is_file()]
    return {
        **manifest,
        "path": str(dest),
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "seconds": round(time.monotonic() - t0, 3),
    }


def read_manifest(backup: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((backup / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise BackupError(f"{backup} is not a backup ({MANIFEST}: {e})")
    if manifest.get("format") != FORMAT or not (backup / "db").is_dir():
        raise BackupError(f"{backup}: unknown backup format {manifest.get('format')!r}")
    return manifest


def restore(backup: Path, data_dir: Path, *, now: float, force: bool = False) -> dict[str, Any]:
    """Put the node back from ``backup`` into the empty ``data_dir`` as a new
    incarnation with fresh actors; what was restored."""
    manifest = read_manifest(backup)
    age_s = now - float(manifest["created_at"])
    ttl_s = float(manifest["reaped_marker_ttl_s"])
    if age_s > ttl_s and not force:
        raise BackupError(
            f"the backup is {age_s / 86400:.1f} days old, older than the reaped markers'"
            f" lifetime ({ttl_s / 86400:.1f} days): keys deleted since could come back with it."
            " Restore a newer backup, or start the node on an empty directory and let"
            " anti-entropy refill it, or pass --force to accept that"
        )
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty: move it away first")
    if data_dir.exists():
        data_dir.rmdir()
    shutil.copytree(backup / "db", data_dir)
    node_id = str(manifest["node_id"])
    incarnation = secrets.token_hex(8)
    store = Store(data_dir, node_id)
    try:
        store.put_meta(META_INCARNATION, incarnation.encode(), sync=True)
        # A new random epoch base at the next start: fresh actors, never an old dot.
        store.delete_meta(META_EPOCH_BASE)
        store.delete_meta(META_EPOCH_LEASE)
    finally:
        store.close()
    return {
        "node_id": node_id,
        "data_dir": str(data_dir),
        "from": str(backup),
        "backup_age_s": round(age_s, 1),
        "old_incarnation": manifest["incarnation"],
        "incarnation": incarnation,
    }
