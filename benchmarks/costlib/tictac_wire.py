"""The bytes of a quiet tictac exchange, COMPUTED, not measured (``/stats`` counts
node-to-node calls, not their bytes): the ring rebuilt from ``/admin/ring`` (its hash
checked); for every ordered pair of members, their shared ranges at the default n_val
give the "tree" request (``tictac.request_to_wire``, as the node sends it) and the reply
is 256 branch hashes; both encoded as the RPC frames them (msgpack ``[kind, id, method,
body]``). A branch the shared ranges do not reach is 0 on the wire (1 byte), and so is
one they reach holding no key: with fewer keys than branches' slivers (more nodes than
n_val) the reply is shorter than 256 full hashes, so its EXPECTED size is given, each
branch nonzero with probability ``1 - exp(-objects * share of the ring it holds)``
(positions are uniform hashes). TCP/IP headers are not counted.

Segments a shared-range boundary cuts (none on 3 nodes at n_val 3) are hashed from their
keys, read from the store the first time an exchange (started or served) asks for them
and then kept by the tree (``tictac.parts_read`` in ``/admin/aae``): the distinct parts
each node holds over all its peers are what its ``parts_read`` should reach and stay at."""

from __future__ import annotations

import math
from typing import Any

import msgpack

from dynamo.net.session import REPLY, REQUEST
from dynamo.tools.localcluster import LocalCluster
from gossip import tictac
from http_api.admin import get_json
from ring.ring import Ring

HASH_ON_WIRE = 2**63 + 12345  # a typical 64-bit hash: msgpack uint64, 9 bytes
RID_ON_WIRE = 2**20  # a request id after some calls: msgpack uint32, 5 bytes
ZERO_SAVES = 8  # a 0 hash is one byte on the wire, a typical one 9


def frame_bytes(kind: int, method: str, body: Any) -> int:
    pack = msgpack.Packer(use_bin_type=True).pack
    return len(pack([kind, RID_ON_WIRE, method, body]))


def branch_shares(c: tictac.Cover) -> list[float]:
    """Per branch, the share of the whole ring's positions it holds inside ``c``."""
    share = [0.0] * tictac.BRANCHES
    per = tictac.LEAVES_PER_BRANCH
    for a, b in c.runs:
        while a < b:
            br = tictac.branch_of(a)
            end = min(b, (br + 1) * per)
            share[br] += (end - a) / tictac.SEGMENTS
            a = end
    for seg, ranges in c.parts:
        share[tictac.branch_of(seg)] += sum(hi - lo for lo, hi in ranges) / 2**64
    return share


def shared_ranges(ring: Ring, me: str, peer: str, n_val: int) -> list[tictac.Range]:
    """What ``dynamo.node.tictac`` compares between ``me`` and ``peer``."""
    return tictac.intersect(ring.owned_ranges(me, n_val), ring.owned_ranges(peer, n_val))


def exchange_wire(ring: Ring, me: str, peer: str, n_val: int, objects: int) -> dict[str, Any]:
    """One quiet exchange from ``me`` with ``peer``: its tree request and reply in bytes,
    and what the shared ranges cost besides (segments cut by a boundary). No shared
    range: no exchange (the node counts none and sends nothing)."""
    shared = shared_ranges(ring, me, peer, n_val)
    c = tictac.cover(shared)
    request = tictac.request_to_wire("tree", shared, [], None)
    full = frame_bytes(REPLY, "", {"b": [HASH_ON_WIRE] * tictac.BRANCHES})
    shares = branch_shares(c)
    zeros = sum(math.exp(-objects * s) for s in shares)  # expected 0 branches
    return {
        "shared_ranges": len(shared),
        "ring_share": round(sum(shares), 4),
        "branches_reached": sum(1 for s in shares if s > 0),
        "whole_segments": len(c.whole),
        "cut_segments": len(c.parts),
        "request_bytes": frame_bytes(REQUEST, tictac.METHOD, request) if shared else 0,
        "reply_bytes_all_nonzero": full if shared else 0,
        "reply_bytes": round(full - ZERO_SAVES * zeros) if shared else 0,
    }


def parts_held(ring: Ring, me: str, peers: list[str], n_val: int) -> int:
    """Distinct cut-segment parts ``me`` works out once it has exchanged with every peer
    (either side): a part the same for two peers is read and kept once."""
    held: set[tuple[int, tuple[tictac.Range, ...]]] = set()
    for peer in peers:
        if peer != me:
            held.update(tictac.cover(shared_ranges(ring, me, peer, n_val)).parts)
    return len(held)


def wire_model(cluster: LocalCluster, objects: int) -> dict[str, Any]:
    """The cluster's ring rebuilt here (hash checked), every ordered pair's exchange, and
    each node's cut-segment parts."""
    r = get_json(cluster.nodes[0].url + "/admin/ring")
    ring = Ring(r["members"], r["tokens_per_node"], r.get("locations") or None)
    n_val = int(r["n_val"])
    members = list(r["members"])
    pairs = {
        f"{a}->{b}": exchange_wire(ring, a, b, n_val, objects)
        for a in members
        for b in members
        if a != b
    }
    return {
        "ring_hash_matches": ring.ring_hash == r["ring_hash"],
        "n_val": n_val,
        "members": len(members),
        "tokens_per_node": r["tokens_per_node"],
        "pairs": pairs,
        "parts_expected": {m: parts_held(ring, m, members, n_val) for m in members},
    }


def exchanging_pairs(wire: dict[str, Any]) -> list[dict[str, Any]]:
    """The pairs that share ranges (an exchange with any other is none)."""
    return [p for p in wire["pairs"].values() if p["shared_ranges"]]


def bigger_ring_note(objects: int) -> dict[str, Any]:
    """For scale (computed only, shown when the measured ring has no cut segment): a
    5-node ring at n_val 3 cuts segments at range boundaries. A cut segment's keys are
    read from the store once, then the tree keeps their hash (before 2026-12-05 they were
    read in every exchange: O(keys), ~1.2 ms of CPU a side at 1M keys)."""
    ring = Ring([f"n{i}" for i in range(1, 6)])
    w = exchange_wire(ring, "n1", "n2", 3, objects)
    w["keys_in_cut_segments_per_side"] = round(w["cut_segments"] * objects / tictac.SEGMENTS, 1)
    return w
