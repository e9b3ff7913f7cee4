"""The bytes of a quiet tictac exchange, COMPUTED, not measured (``/stats`` counts
node-to-node calls, not their bytes): the ring rebuilt from ``/admin/ring`` (its hash
checked), each pair's shared ranges at the default n_val give the "tree" request, and
the reply is 256 branch hashes; both encoded as the RPC frames them (msgpack ``[kind,
id, method, body]``). TCP/IP headers are not counted."""

from __future__ import annotations

from typing import Any

import msgpack

from dynamo.net.session import REPLY, REQUEST
from dynamo.tools.localcluster import LocalCluster
from gossip import tictac
from http_api.admin import get_json
from ring.ring import Ring

HASH_ON_WIRE = 2**63 + 12345  # a typical 64-bit hash: msgpack uint64, 9 bytes
RID_ON_WIRE = 2**20  # a request id after some calls: msgpack uint32, 5 bytes


def frame_bytes(kind: int, method: str, body: Any) -> int:
    pack = msgpack.Packer(use_bin_type=True).pack
    return len(pack([kind, RID_ON_WIRE, method, body]))


def exchange_wire(ring: Ring, me: str, peer: str, n_val: int) -> dict[str, Any]:
    """One quiet exchange from ``me`` with ``peer``: its tree request and reply in bytes,
    and what the shared ranges cost besides (segments cut by a boundary)."""
    shared = tictac.intersect(ring.owned_ranges(me, n_val), ring.owned_ranges(peer, n_val))
    c = tictac.cover(shared)
    request = {"k": "tree", "r": [list(r) for r in shared]}
    reply = {"b": [HASH_ON_WIRE] * tictac.BRANCHES}
    return {
        "shared_ranges": len(shared),
        "whole_segments": len(c.whole),
        "cut_segments": len(c.parts),
        "request_bytes": frame_bytes(REQUEST, tictac.METHOD, request),
        "reply_bytes": frame_bytes(REPLY, "", reply),
    }


def wire_model(cluster: LocalCluster) -> dict[str, Any]:
    """The cluster's ring rebuilt here (hash checked) and every ordered pair's exchange."""
    r = get_json(cluster.nodes[0].url + "/admin/ring")
    ring = Ring(r["members"], r["tokens_per_node"], r.get("locations") or None)
    pairs = {
        f"{a}->{b}": exchange_wire(ring, a, b, int(r["n_val"]))
        for a in r["members"]
        for b in r["members"]
        if a != b
    }
    return {
        "ring_hash_matches": ring.ring_hash == r["ring_hash"],
        "n_val": r["n_val"],
        "tokens_per_node": r["tokens_per_node"],
        "pairs": pairs,
    }


def bigger_ring_note(objects: int) -> dict[str, Any]:
    """For scale (computed only): a 5-node ring at n_val 3 cuts segments at range
    boundaries. A cut segment's keys are read from the store once, then the tree keeps
    their hash (before 2026-12-05 they were read in every exchange: O(keys), ~1.2 ms of
    CPU a side at 1M keys)."""
    ring = Ring([f"n{i}" for i in range(1, 6)])
    w = exchange_wire(ring, "n1", "n2", 3)
    w["keys_in_cut_segments_per_side"] = round(w["cut_segments"] * objects / tictac.SEGMENTS, 1)
    return w
