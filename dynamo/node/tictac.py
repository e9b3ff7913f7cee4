"""The tictac backstop's shell: this node's tree kept up to date, rebuilt, and exchanged.

- Every change of a stored object updates the tree (the store calls ``changed``).
- The tree is built at start from a scan of the store (which checks every object's seal,
  so a damaged one is removed and drops out of the tree), and rebuilt from scratch every
  ``tictac_rebuild_interval_s`` at ``tictac_rebuild_keys_per_s``: the rebuild is what
  notices objects lost behind the store's back. While it runs, changes to keys it has
  passed go into the new tree too.
- Every ``tictac_exchange_interval_s`` the node compares the ranges it shares with one up
  peer (at the default ``n_val``; buckets of another n_val rely on the log exchange) and
  pulls the copies that differ, which the replica merges as any anti-entropy copy.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import operator
import random
from collections.abc import Awaitable, Callable
from typing import Any

from dynamo.kv import object as objects
from dynamo.node.cluster import Cluster
from dynamo.node.env import REAL, Env
from dynamo.storage.contract import StoreAPI
from gossip import tictac
from gossip.antientropy import (
    FetchRequest,
    fetch_reply_from_wire,
    fetch_request_to_wire,
)
from gossip.tictac import Cover, Range, Tree
from ring.position import storage_key_bkey, storage_key_position

log = logging.getLogger(__name__)

BATCH = 500  # keys scanned between pauses
MAX_BRANCHES = 32  # branches asked for leaves in one exchange
MAX_SEGMENTS = 128  # segments whose keys are compared in one exchange
FETCH_BYTES = 4 * 1024 * 1024

Call = Callable[[str, str, Any], Awaitable[Any]]  # (peer, method, body) -> reply
Apply = Callable[[list[tuple[bytes, bytes]]], Awaitable[int]]


class TictacService:
    def __init__(
        self,
        node_id: str,
        store: StoreAPI,
        cluster: Cluster,
        call: Call,
        apply: Apply,
        *,
        exchange_interval_s: float,
        rebuild_interval_s: float,
        rebuild_keys_per_s: float,
        build_keys_per_s: float,
        env: Env = REAL,
    ) -> None:
        self.node_id = node_id
        self.store = store
        self.cluster = cluster
        self.call = call
        self.apply = apply
        self.exchange_interval_s = exchange_interval_s
        self.rebuild_interval_s = rebuild_interval_s
        self.rebuild_keys_per_s = rebuild_keys_per_s
        self.build_keys_per_s = build_keys_per_s
        self.env = env
        self.rng = random.Random(env.rng.random())
        self.tree: Tree | None = None  # None until the first build is done
        self._new: Tree | None = None
        self._cursor = b""
        self.builds = 0
        self.built_keys = 0
        self.exchanges = 0
        self.differing_exchanges = 0
        self.keys_fetched = 0
        self.repaired = 0
        self.bytes_in = 0
        self.healed_leaves = 0
        store.on_change = self.changed

    # --- The tree -----------------------------------------------------------------------

    def _in_tree(self, objkey: bytes) -> bool:
        """Keys of buckets at the default n_val: the ranges exchanged are that n_val's."""
        n = self.cluster.default_props().n_val
        return self.cluster.bucket_props(storage_key_bkey(objkey)[0]).n_val == n

    def changed(self, objkey: bytes, old: bytes | None, new: bytes | None) -> None:
        """The store changed ``objkey`` from ``old`` to ``new`` (encoded objects or None)."""
        if self.tree is None and self._new is None:
            return
        delta = _hash(objkey, old) ^ _hash(objkey, new)
        if not delta or not self._in_tree(objkey):
            return
        pos = storage_key_position(objkey)
        if self.tree is not None:
            self.tree.toggle(pos, delta)
        if self._new is not None and objkey <= self._cursor:
            self._new.toggle(pos, delta)

    async def build(self, keys_per_s: float) -> None:
        """A new tree from a scan of every object (each seal checked), at a bounded rate."""
        self._new, self._cursor = Tree(), b""
        count = 0
        started = self.env.monotonic()
        while True:
            batch = 0
            for objkey, raw in self.store.scan(self._cursor + b"\x00" if self._cursor else b""):
                if self._in_tree(objkey):
                    self._new.toggle(storage_key_position(objkey), _hash(objkey, raw))
                self._cursor = objkey
                batch += 1
                if batch == BATCH:
                    break
            count += batch
            if batch < BATCH:
                break
            ahead = count / keys_per_s - (self.env.monotonic() - started)
            await asyncio.sleep(max(0.0, ahead))
        self.tree, self._new = self._new, None
        self.builds += 1
        self.built_keys = count
        log.info("tictac tree built from %d objects (%d builds)", count, self.builds)

    # --- Exchanges ----------------------------------------------------------------------

    def _shared(self, peer: str) -> list[Range]:
        ring = self.cluster.ring
        n = self.cluster.default_props().n_val
        return tictac.intersect(ring.owned_ranges(self.node_id, n), ring.owned_ranges(peer, n))

    def _keys_in(self, ranges: list[Range] | tuple[Range, ...]) -> dict[bytes, bytes]:
        """``{objkey: digest}`` of the tree's keys in ``ranges`` (read from the store)."""
        out: dict[bytes, bytes] = {}
        for lo, hi in ranges:
            start = (lo + 1).to_bytes(8, "big")
            end = (hi + 1).to_bytes(8, "big") if hi < tictac.MAX_POSITION else None
            for objkey, raw in self.store.scan(start, end):
                if self._in_tree(objkey):
                    out[objkey] = objects.digest(raw)
        return out

    def _part_hashes(self, c: Cover) -> dict[int, int]:
        out: dict[int, int] = {}
        for seg, ranges in c.parts:
            h = 0
            for objkey, d in self._keys_in(ranges).items():
                h ^= tictac.key_hash(objkey, d)
            out[seg] = h
        return out

    def _heal(self, c: Cover, segments: list[int], keys: dict[bytes, bytes]) -> None:
        """Set the tree's leaves of whole ``segments`` to what the store holds: a change
        the tree was not told of (a damaged object removed on a read) leaves a leaf wrong,
        which an exchange that finds no differing key would otherwise meet again."""
        tree = self.tree
        if tree is None:
            return
        actual = dict.fromkeys((s for s in segments if s in c.whole), 0)
        for objkey, d in keys.items():
            seg = tictac.segment_of(storage_key_position(objkey))
            if seg in actual:
                actual[seg] ^= tictac.key_hash(objkey, d)
        for seg, h in actual.items():
            if tree.leaves[seg] != h:
                tree.toggle(tictac.segment_range(seg)[1], tree.leaves[seg] ^ h)
                self.healed_leaves += 1

    def _segment_ranges(self, c: Cover, segments: list[int]) -> list[Range]:
        parts = dict(c.parts)
        out: list[Range] = []
        for seg in segments:
            out.extend(parts.get(seg, (tictac.segment_range(seg),) if seg in c.whole else ()))
        return out

    def handle(self, body: Any, peer: str = "") -> Any:
        """A peer's step of an exchange: our hashes (or keys) over the ranges it names."""
        kind, ranges, extra = tictac.request_from_wire(body)
        if self.tree is None:
            return {"busy": True}
        c = tictac.cover(ranges)
        parts = self._part_hashes(c)
        if kind == "tree":
            return {"b": tictac.branch_hashes(self.tree, c, parts)}
        if kind == "leaves":
            leaves = tictac.leaf_hashes(self.tree, c, parts, extra[:MAX_BRANCHES])
            return {"l": [[s, h] for s, h in leaves.items()]}
        segments = extra[:MAX_SEGMENTS]
        keys = self._keys_in(self._segment_ranges(c, segments))
        self._heal(c, segments, keys)
        return {"k": [[k, d] for k, d in keys.items()]}

    async def exchange(self, peer: str) -> int:
        """Compare the ranges shared with ``peer``; pull the copies that differ. Returns
        how many objects changed here."""
        tree = self.tree
        ranges = self._shared(peer)
        if tree is None or not ranges:
            return 0
        self.exchanges += 1
        c = tictac.cover(ranges)
        parts = self._part_hashes(c)
        wire = [list(r) for r in ranges]
        theirs = await self.call(peer, tictac.METHOD, {"k": "tree", "r": wire})
        if theirs.get("busy"):
            return 0
        branches = tictac.differing_branches(tictac.branch_hashes(tree, c, parts), theirs.get("b"))
        if not branches:
            return 0
        self.differing_exchanges += 1
        branches = branches[:MAX_BRANCHES]
        reply = await self.call(peer, tictac.METHOD, {"k": "leaves", "r": wire, "x": branches})
        mine = tictac.leaf_hashes(tree, c, parts, branches)
        segments = tictac.differing_leaves(mine, {int(s): int(h) for s, h in reply["l"]})
        segments = segments[:MAX_SEGMENTS]
        reply = await self.call(peer, tictac.METHOD, {"k": "keys", "r": wire, "x": segments})
        theirs_keys = {bytes(k): bytes(d) for k, d in reply["k"]}
        mine_keys = self._keys_in(self._segment_ranges(c, segments))
        self._heal(c, segments, mine_keys)
        want = tictac.keys_to_fetch(mine_keys, theirs_keys)
        changed = 0
        while want:
            ask = fetch_request_to_wire(FetchRequest(tuple(want), FETCH_BYTES))
            got = fetch_reply_from_wire(await self.call(peer, "aae_fetch", ask))
            self.keys_fetched += len(got.entries)
            self.bytes_in += sum(len(v) for _, v in got.entries)
            changed += await self.apply(list(got.entries))
            want = want[max(1, got.handled) :]
        self.repaired += changed
        if changed:
            log.info("tictac exchange with %s: %d objects repaired here", peer, changed)
        return changed

    async def run(self) -> None:
        await self.build(self.build_keys_per_s)
        last_build = self.env.monotonic()
        while True:
            await asyncio.sleep(self.exchange_interval_s * self.rng.uniform(0.8, 1.2))
            peers = [
                n for n in self.cluster.ring.members if n != self.node_id and self.cluster.is_up(n)
            ]
            if peers:
                try:
                    await self.exchange(self.rng.choice(peers))
                except Exception as e:  # a peer gone or an old peer: the next round retries
                    log.info("tictac exchange failed: %s", e)
            if self.env.monotonic() - last_build >= self.rebuild_interval_s:
                await self.build(self.rebuild_keys_per_s)
                last_build = self.env.monotonic()

    def status(self) -> dict[str, Any]:
        root = functools.reduce(operator.xor, self.tree.branches, 0) if self.tree else 0
        return {
            "built": self.tree is not None,
            "root": f"{root:016x}",
            "builds": self.builds,
            "built_keys": self.built_keys,
            "exchanges": self.exchanges,
            "differing_exchanges": self.differing_exchanges,
            "keys_fetched": self.keys_fetched,
            "repaired": self.repaired,
            "bytes_in": self.bytes_in,
            "healed_leaves": self.healed_leaves,
        }


def _hash(objkey: bytes, raw: bytes | None) -> int:
    return 0 if raw is None else tictac.key_hash(objkey, objects.digest(raw))
