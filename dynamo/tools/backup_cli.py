"""``dynamo backup`` and ``dynamo restore``.

    dynamo backup --url URL --name NAME [--all]
    dynamo restore --from BACKUP_DIR --data-dir DATA_DIR [--force]

``backup`` asks the node at ``--url`` (or, with ``--all``, every member in turn) to
checkpoint itself into ``backup_root/NAME`` on its own host. Each node's copy is
consistent for that node; the copies of several nodes are not one cut of the cluster.
``restore`` runs where the stopped node's data lives: it puts the backup into the empty
data directory as a new incarnation with fresh actors (``dynamo.node.backup``); start
the node afterwards and anti-entropy brings it up to date.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from http_api.admin import AdminClient, AdminError


def run_backup(admin: AdminClient, name: str, every_member: bool) -> int:
    targets = [admin]
    if every_member:
        members = admin.get("/admin/members")["members"]
        live = [m for m in members if m.get("status") not in ("leaving", "left")]
        targets = [admin.at(str(m["http_addr"])) for m in sorted(live, key=lambda m: m["node"])]
    for target in targets:
        try:
            out: dict[str, Any] = target.request("POST", "/admin/backup", {"name": name})
        except AdminError as e:
            print(f"dynamo backup: {target.url}: {e.status} {e.text}", file=sys.stderr)
            return 1
        except OSError as e:
            print(f"dynamo backup: cannot reach {target.url}: {e}", file=sys.stderr)
            return 1
        print(
            f"{out['node_id']}: {out['path']} ({out['bytes']:,} bytes in {out['files']} files,"
            f" {out['seconds']:.1f} s, log at {out['seq']})",
            flush=True,
        )
    return 0


def run_restore(source: Path, data_dir: Path, force: bool) -> int:
    from dynamo.node.backup import BackupError, restore
    from dynamo.storage.contract import StorageError

    try:
        out = restore(source, data_dir, now=time.time(), force=force)
    except (BackupError, StorageError, OSError) as e:
        print(f"dynamo restore: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    print(
        f"{out['node_id']} restored into {data_dir} as incarnation {out['incarnation']}: start"
        " it with its usual flags; anti-entropy brings it up to date"
    )
    return 0


def add_parsers(sub: Any, access_flags: Any, admin_client: Any) -> None:
    p = sub.add_parser(
        "backup", help="checkpoint a node (or every node in turn) into backup_root/NAME"
    )
    p.add_argument("--url", default="http://127.0.0.1:8098", help="the node (any, with --all)")
    p.add_argument("--name", required=True, help="the backup's directory under backup_root")
    p.add_argument("--all", action="store_true", help="every member in turn")
    access_flags(p)
    p.set_defaults(func=lambda a: run_backup(admin_client(a), a.name, a.all))

    p = sub.add_parser(
        "restore", help="put a stopped node's data back from a backup, as a new incarnation"
    )
    p.add_argument("--from", dest="source", type=Path, required=True, help="backup_root/NAME")
    p.add_argument("--data-dir", type=Path, required=True, help="the node's (empty) data dir")
    p.add_argument(
        "--force", action="store_true",
        help="restore a backup older than the reaped markers' lifetime (deleted keys may return)",
    )  # fmt: skip
    p.set_defaults(func=lambda a: run_restore(a.source, a.data_dir, a.force))
