"""The tictac backstop's shell: this node's tree kept up to date, rebuilt, and exchanged.

- Every change of a stored object updates the tree (the store calls ``changed``).
- The tree is built at start from a scan of the store (which checks every object's seal,
  so a damaged one is removed and drops out of the tree), and rebuilt from scratch every
  ``tictac_rebuild_interval_s`` at ``tictac_rebuild_keys_per_s``: the rebuild is what
  notices objects lost behind the store's back. While it runs, changes to keys it has
  passed go into the new tree too.
- One tree per n_val in use: a key is in the tree of its bucket's n_val.
- Every ``tictac_exchange_interval_s`` the node compares the ranges it shares with one up
  peer, for each n_val, and pulls the copies that differ, which the replica merges as
  any anti-entropy copy.
- A damaged object removed on a read (the store's ``on_lost``: its bytes unknown, so its
  hash cannot be taken out) has its leaf worked out from the store before the next
  comparison.
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
        self.trees: dict[int, Tree] | None = None  # by n_val; None until the first build
        self._new: dict[int, Tree] | None = None  # the trees a build is making
        self._dirty: set[tuple[int, int]] = set()  # (n_val, segment) of damaged objects
        self._cursor = b""
        self.builds = 0
        self.built_keys = 0
        self.exchanges = 0
        self.differing_exchanges = 0
        self.keys_fetched = 0
        self.repaired = 0
        self.bytes_in = 0
        self.healed_leaves = 0
        self.parts_read = 0  # cut segments' parts worked out from the store
        store.on_change = self.changed
        store.on_lost = self.lost

    # --- The trees ----------------------------------------------------------------------

    @property
    def tree(self) -> Tree | None:
        """The tree of the default n_val (None until the first build is done)."""
        if self.trees is None:
            return None
        return self.trees.setdefault(self.cluster.default_props().n_val, Tree())

    def _n_val(self, objkey: bytes) -> int:
        return self.cluster.bucket_props(storage_key_bkey(objkey)[0]).n_val

    def changed(self, objkey: bytes, old: bytes | None, new: bytes | None) -> None:
        """The store changed ``objkey`` from ``old`` to ``new`` (encoded objects or None)."""
        if self.trees is None and self._new is None:
            return
        delta = _hash(objkey, old) ^ _hash(objkey, new)
        if not delta:
            return
        n, pos = self._n_val(objkey), storage_key_position(objkey)
        if self.trees is not None:
            self.trees.setdefault(n, Tree()).toggle(pos, delta)
        if self._new is not None and objkey <= self._cursor:
            self._new.setdefault(n, Tree()).toggle(pos, delta)

    def lost(self, objkey: bytes) -> None:
        """The store removed ``objkey`` without knowing its bytes (a damaged object): its
        leaf is worked out from the store again before the next comparison."""
        seg = tictac.segment_of(storage_key_position(objkey))
        self._dirty.add((self._n_val(objkey), seg))

    def _mend(self) -> None:
        """Leaves of damaged objects' segments set to what the store holds (not while a
        build runs: the new tree may hold the lost key too; it is mended once in use)."""
        if self.trees is None or self._new is not None or not self._dirty:
            return
        for n, seg in sorted(self._dirty):
            keys = self._keys_in(n, [tictac.segment_range(seg)])
            h = functools.reduce(operator.xor, (tictac.key_hash(k, d) for k, d in keys.items()), 0)
            self.healed_leaves += self.trees.setdefault(n, Tree()).set_leaf(seg, h)
        self._dirty.clear()

    async def build(self, keys_per_s: float) -> None:
        """New trees from a scan of every object (each seal checked), at a bounded rate."""
        self._new, self._cursor = {}, b""
        count = 0
        started = self.env.monotonic()
        while True:
            batch = 0
            for objkey, raw in self.store.scan(self._cursor + b"\x00" if self._cursor else b""):
                tree = self._new.setdefault(self._n_val(objkey), Tree())
                tree.toggle(storage_key_position(objkey), _hash(objkey, raw))
                self._cursor = objkey
                batch += 1
                if batch == BATCH:
                    break
            count += batch
            if batch < BATCH:
                break
            ahead = count / keys_per_s - (self.env.monotonic() - started)
            await asyncio.sleep(max(0.0, ahead))
        self.trees, self._new = self._new, None
        self.builds += 1
        self.built_keys = count
        log.info("tictac tree built from %d objects (%d builds)", count, self.builds)

    # --- Exchanges ----------------------------------------------------------------------

    def _shared(self, peer: str, n: int) -> list[Range]:
        ring = self.cluster.ring
        return tictac.intersect(ring.owned_ranges(self.node_id, n), ring.owned_ranges(peer, n))

    def _keys_in(self, n: int, ranges: list[Range] | tuple[Range, ...]) -> dict[bytes, bytes]:
        """``{objkey: digest}`` of the keys of n_val ``n`` in ``ranges`` (from the store)."""
        out: dict[bytes, bytes] = {}
        for lo, hi in ranges:
            start = (lo + 1).to_bytes(8, "big")
            end = (hi + 1).to_bytes(8, "big") if hi < tictac.MAX_POSITION else None
            for objkey, raw in self.store.scan(start, end):
                if self._n_val(objkey) == n:
                    out[objkey] = objects.digest(raw)
        return out

    def _part_hashes(self, n: int, tree: Tree, c: Cover) -> dict[int, int]:
        """The cut segments' parts: kept by the tree, worked out from the store the first
        time an exchange asks (the same ranges come back every exchange)."""
        out: dict[int, int] = {}
        for seg, ranges in c.parts:
            h = tree.part(seg, ranges)
            if h is None:
                h = 0
                for objkey, d in self._keys_in(n, ranges).items():
                    h ^= tictac.key_hash(objkey, d)
                tree.keep_part(seg, ranges, h)
                self.parts_read += 1
            out[seg] = h
        return out

    def _heal(self, tree: Tree, c: Cover, segments: list[int], keys: dict[bytes, bytes]) -> None:
        """Set the tree's leaves of whole ``segments`` to what the store holds, and work
        the parts of cut ones out again: a change the tree was not told of leaves a leaf
        wrong, which an exchange that finds no differing key would otherwise meet again."""
        actual = dict.fromkeys((s for s in segments if s in c.whole), 0)
        for objkey, d in keys.items():
            seg = tictac.segment_of(storage_key_position(objkey))
            if seg in actual:
                actual[seg] ^= tictac.key_hash(objkey, d)
        for seg, h in actual.items():
            self.healed_leaves += tree.set_leaf(seg, h)
        for seg in segments:
            if seg not in actual:
                tree.forget(seg)

    def _segment_ranges(self, c: Cover, segments: list[int]) -> list[Range]:
        parts = dict(c.parts)
        out: list[Range] = []
        for seg in segments:
            out.extend(parts.get(seg, (tictac.segment_range(seg),) if seg in c.whole else ()))
        return out

    def handle(self, body: Any, peer: str = "") -> Any:
        """A peer's step of an exchange: our hashes (or keys) over the ranges it names."""
        req = tictac.request_from_wire(body)
        if self.trees is None:
            return {"busy": True}
        self._mend()
        n = req.n_val or self.cluster.default_props().n_val
        tree = self.trees.setdefault(n, Tree())
        c = tictac.cover(req.ranges)
        parts = self._part_hashes(n, tree, c)
        if req.kind == "tree":
            # Naming the n_val back tells the asker we compared its keys: a peer from
            # before trees per n_val answers with the default n_val's, and is left alone
            reply: dict[str, Any] = {"b": tictac.branch_hashes(tree, c, parts)}
            if req.n_val is not None:
                reply["n"] = req.n_val
            return reply
        if req.kind == "leaves":
            leaves = tictac.leaf_hashes(tree, c, parts, req.extra[:MAX_BRANCHES])
            return {"l": [[s, h] for s, h in leaves.items()]}
        segments = req.extra[:MAX_SEGMENTS]
        keys = self._keys_in(n, self._segment_ranges(c, segments))
        self._heal(tree, c, segments, keys)
        return {"k": [[k, d] for k, d in keys.items()]}

    async def exchange(self, peer: str) -> int:
        """Compare the ranges shared with ``peer``, for every n_val in use; pull the
        copies that differ. Returns how many objects changed here."""
        if self.trees is None:
            return 0
        self._mend()
        default = self.cluster.default_props().n_val
        n_vals = sorted({default, *self.cluster.n_vals(), *self.trees})
        work = [(n, r) for n in n_vals if (r := self._shared(peer, n))]
        if not work:
            return 0
        self.exchanges += 1
        changed = 0
        for n, ranges in work:
            # The default n_val's step names none, so peers from before n_vals agree
            changed += await self._exchange(peer, n, None if n == default else n, ranges)
        self.repaired += changed
        if changed:
            log.info("tictac exchange with %s: %d objects repaired here", peer, changed)
        return changed

    async def _exchange(self, peer: str, n: int, named: int | None, ranges: list[Range]) -> int:
        assert self.trees is not None
        tree = self.trees.setdefault(n, Tree())
        c = tictac.cover(ranges)
        parts = self._part_hashes(n, tree, c)

        async def ask(kind: str, extra: list[int]) -> Any:
            body = tictac.request_to_wire(kind, ranges, extra, named)
            return await self.call(peer, tictac.METHOD, body)

        theirs = await ask("tree", [])
        if theirs.get("busy") or theirs.get("n") != named:
            return 0  # busy, or a peer that keeps one tree (it would compare another n_val)
        branches = tictac.differing_branches(tictac.branch_hashes(tree, c, parts), theirs.get("b"))
        if not branches:
            return 0
        self.differing_exchanges += 1
        branches = branches[:MAX_BRANCHES]
        reply = await ask("leaves", branches)
        mine = tictac.leaf_hashes(tree, c, parts, branches)
        segments = tictac.differing_leaves(mine, {int(s): int(h) for s, h in reply["l"]})
        segments = segments[:MAX_SEGMENTS]
        reply = await ask("keys", segments)
        theirs_keys = {bytes(k): bytes(d) for k, d in reply["k"]}
        mine_keys = self._keys_in(n, self._segment_ranges(c, segments))
        self._heal(tree, c, segments, mine_keys)
        want = tictac.keys_to_fetch(mine_keys, theirs_keys)
        changed = 0
        while want:
            ask_fetch = fetch_request_to_wire(FetchRequest(tuple(want), FETCH_BYTES))
            got = fetch_reply_from_wire(await self.call(peer, "aae_fetch", ask_fetch))
            self.keys_fetched += len(got.entries)
            self.bytes_in += sum(len(v) for _, v in got.entries)
            changed += await self.apply(list(got.entries))
            want = want[max(1, got.handled) :]
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
        trees = {n: t.root() for n, t in sorted((self.trees or {}).items())}
        root = functools.reduce(operator.xor, trees.values(), 0)
        return {
            "built": self.trees is not None,
            "root": f"{root:016x}",
            "roots_by_n_val": {str(n): f"{r:016x}" for n, r in trees.items()},
            "parts_read": self.parts_read,
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
