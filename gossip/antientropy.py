"""Anti-entropy as scuttlebutt over replica logs: the pure bookkeeping.

Every node's change log (``seq -> key``, one entry per key, its latest change)
is its own ordered history. A node pulls from each peer the entries after its
*watermark* for that peer, restricted to the ranges it replicates, merges
them (``sync``, so applying twice changes nothing), then advances and persists
the watermark. A round costs what changed since the last one, not what is
stored: a quiet cluster exchanges empty answers.

A watermark belongs to the pair (peer incarnation, range spec):

- a peer with another incarnation (wiped, new) is read from 0 again, never
  trusted from an old watermark;
- the spec is the set of ranges asked for, per ``n_val``; when it changes
  (membership changed, a bucket got another n_val) the watermark restarts at
  0 so newly gained ranges are filled (join bootstrap is just this).

A reply names the changed keys with a digest of each object's history, not the
objects: the requester fetches (``fetch``) only those whose digest differs from
its own copy. Writes already replicated by the coordinator cost a key and 16
bytes, not a second copy of the object.

Each pull also tells the responder how far the requester has applied the
responder's log (and for which spec): that is the proof the responder uses to
drop data it no longer replicates and to reap tombstones once every primary
has them.

Pure: no I/O, no clock. The log and the filter come in as callables.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from ring.position import storage_key_position
from ring.ring import Ring

# spec: n_val -> sorted, non-overlapping ranges (lo exclusive, hi inclusive)
Spec = Mapping[int, list[tuple[int, int]]]
Entry = tuple[bytes, bytes]  # (objects key, object bytes)
Digested = tuple[bytes, bytes]  # (objects key, digest of the object's history)
#: The node-to-node methods of an exchange: pull a log window, fetch the objects wanted.
METHOD_PULL = "aae_pull"
METHOD_FETCH = "aae_fetch"
FETCH_MAX_KEYS = 500
DEFAULT_SCAN_LIMIT = 1000
DEFAULT_MAX_OBJECT_BYTES = 63 * 1024 * 1024  # the largest object one message can carry


class AntiEntropyError(ValueError):
    """A malformed anti-entropy message from a peer."""


def range_spec(ring: Ring, node: str, n_vals: Iterable[int]) -> dict[int, list[tuple[int, int]]]:
    """The ranges ``node`` replicates, per n_val in use: what it pulls from each peer.
    Empty for a node outside the ring (it replicates nothing)."""
    if node not in ring:
        return {}
    return {n: ring.owned_ranges(node, n) for n in n_vals}


def watermark_to_bytes(incarnation: str, spec: str, watermark: int) -> bytes:
    """A peer's watermark as persisted: the peer's incarnation, the hash of the spec it
    was reached under, and the log seq up to which everything was pulled."""
    data: bytes = msgpack.packb([incarnation, spec, watermark])
    return data


def watermark_from_bytes(raw: bytes) -> tuple[str, str, int]:
    incarnation, spec, watermark = msgpack.unpackb(raw)
    if not isinstance(incarnation, str) or not isinstance(spec, str) or type(watermark) is not int:
        raise AntiEntropyError("a persisted watermark of another shape")
    return incarnation, spec, watermark


def spec_hash(spec: Spec) -> str:
    canon = sorted((int(n), [[int(a), int(b)] for a, b in rs]) for n, rs in spec.items())
    return hashlib.sha1(msgpack.packb(canon)).hexdigest()[:16]


def in_ranges(ranges: list[tuple[int, int]], pos: int) -> bool:
    """Is ``pos`` in one of the (lo, hi] ranges (sorted by lo)?"""
    i = bisect.bisect_left(ranges, (pos, -1)) - 1
    for j in (i, i + 1):
        if 0 <= j < len(ranges):
            lo, hi = ranges[j]
            if lo < pos <= hi:
                return True
    return False


def spec_covers(spec: Spec, n_val: int, pos: int) -> bool:
    ranges = spec.get(n_val)
    if ranges is None:
        return False
    return in_ranges(ranges, pos)


@dataclass(frozen=True, slots=True, kw_only=True)
class PullRequest:
    requester: str
    requester_incarnation: str
    incarnation: str  # responder incarnation the watermark refers to ("" = none known)
    after: int
    spec: dict[int, list[tuple[int, int]]]
    max_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PullReply:
    incarnation: str
    head: int
    next_after: int  # the watermark once ``entries`` are applied
    complete: bool  # nothing was left after ``next_after`` when this was built
    entries: tuple[Digested, ...]  # the requester fetches only those it does not hold alike


def request_to_wire(r: PullRequest) -> list[Any]:
    return [
        r.requester,
        r.requester_incarnation,
        r.incarnation,
        r.after,
        [[n, [list(x) for x in rs]] for n, rs in r.spec.items()],
        r.max_bytes,
    ]


def request_from_wire(x: Any) -> PullRequest:
    try:
        requester, rinc, inc, after, spec, max_bytes = x
        parsed = {int(n): [(int(a), int(b)) for a, b in rs] for n, rs in spec}
        if not all(isinstance(v, str) for v in (requester, rinc, inc)):
            raise TypeError("names must be strings")
        if not isinstance(after, int) or after < 0 or not isinstance(max_bytes, int):
            raise TypeError("after and max_bytes must be non-negative integers")
        for rs in parsed.values():
            rs.sort()
    except (TypeError, ValueError) as e:
        raise AntiEntropyError(f"malformed pull request: {e}") from e
    return PullRequest(
        requester=requester,
        requester_incarnation=rinc,
        incarnation=inc,
        after=after,
        spec=parsed,
        max_bytes=max(1024, min(max_bytes, 64 * 1024 * 1024)),
    )


def reply_to_wire(r: PullReply) -> list[Any]:
    return [r.incarnation, r.head, r.next_after, r.complete, [list(e) for e in r.entries]]


@dataclass(frozen=True, slots=True)
class FetchRequest:
    keys: tuple[bytes, ...]  # the storage keys wanted, in the order of the pull reply
    max_bytes: int  # the reply's budget (one object is skipped, not sent, above it)


def fetch_request_to_wire(r: FetchRequest) -> list[Any]:
    return [list(r.keys), r.max_bytes]


def fetch_request_from_wire(x: Any) -> FetchRequest:
    try:
        objkeys, max_bytes = x
        keys = tuple(bytes(k) for k in objkeys)
        budget = max(1024, min(int(max_bytes), 64 * 1024 * 1024))
    except (TypeError, ValueError) as e:
        raise AntiEntropyError(f"malformed fetch: {e}") from e
    return FetchRequest(keys, budget)


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchReply:
    handled: int  # how many of the keys asked for this answers (sent, gone, or skipped)
    entries: tuple[Entry, ...]
    oversized: tuple[tuple[bytes, int], ...] = ()  # (key, bytes) too large for one message


def fetch_reply_to_wire(r: FetchReply) -> list[Any]:
    """``[handled, entries]``, plus ``oversized`` only when there are any: a peer of the
    first release reads exactly two fields, so a rolling upgrade keeps working."""
    out: list[Any] = [r.handled, [list(e) for e in r.entries]]
    if r.oversized:
        out.append([list(o) for o in r.oversized])
    return out


def fetch_reply_from_wire(x: Any) -> FetchReply:
    """A fetch reply; a peer of the first release sends no ``oversized`` list."""
    try:
        handled, entries, *rest = x
        parsed = tuple((bytes(k), bytes(v)) for k, v in entries)
        oversized = tuple((bytes(k), int(n)) for k, n in rest[0]) if rest else ()
        if not isinstance(handled, int) or handled < 0:
            raise TypeError("handled must be a non-negative integer")
    except (TypeError, ValueError) as e:
        raise AntiEntropyError(f"malformed fetch reply: {e}") from e
    return FetchReply(handled=handled, entries=parsed, oversized=oversized)


def reply_from_wire(x: Any) -> PullReply:
    try:
        inc, head, nxt, complete, entries = x
        parsed = tuple((bytes(k), bytes(v)) for k, v in entries)
        if not isinstance(inc, str) or not isinstance(head, int) or not isinstance(nxt, int):
            raise TypeError("bad header")
    except (TypeError, ValueError) as e:
        raise AntiEntropyError(f"malformed pull reply: {e}") from e
    return PullReply(
        incarnation=inc, head=head, next_after=nxt, complete=bool(complete), entries=parsed
    )


@dataclass(slots=True)
class PeerProgress:
    """How far we have applied one peer's log, and how far it has applied ours."""

    incarnation: str = ""
    spec: str = ""  # hash of the spec the watermark was built with
    watermark: int = 0
    peer_head: int = 0
    complete: bool = False
    # what the peer told us of our log: (our incarnation it refers to, its spec, watermark)
    has_ours: tuple[str, dict[int, list[tuple[int, int]]], int] | None = None
    objects_in: int = 0
    bytes_in: int = 0
    rounds: int = 0
    # Health, so that an exchange that keeps failing never looks caught up:
    failures: int = 0  # consecutive failed rounds
    failed_rounds: int = 0
    last_error: str = ""
    last_success: float | None = None  # the caller's clock
    oversized: int = 0  # objects the peer could not send: too large for one message
    last_oversized: str = ""

    @property
    def lag(self) -> int:
        return max(0, self.peer_head - self.watermark)


@dataclass(slots=True)
class AntiEntropy:
    """The bookkeeping of one node's anti-entropy with all its peers."""

    node_id: str
    incarnation: str
    max_round_bytes: int = 4 * 1024 * 1024
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES
    scan_limit: int = DEFAULT_SCAN_LIMIT
    peers: dict[str, PeerProgress] = field(default_factory=dict)
    objects_out: int = 0
    bytes_out: int = 0
    oversized_out: int = 0

    def progress(self, peer: str) -> PeerProgress:
        p = self.peers.get(peer)
        if p is None:
            p = self.peers[peer] = PeerProgress()
        return p

    def load(self, peer: str, incarnation: str, spec: str, watermark: int) -> None:
        """A watermark persisted before a restart."""
        p = self.progress(peer)
        p.incarnation, p.spec, p.watermark = incarnation, spec, watermark

    # --- Requester side -----------------------------------------------------------------------

    def pull_request(self, peer: str, spec: dict[int, list[tuple[int, int]]]) -> PullRequest:
        p = self.progress(peer)
        h = spec_hash(spec)
        if p.spec != h:  # our ranges changed: fill them from the start
            p.spec, p.watermark, p.complete = h, 0, False
        return PullRequest(
            requester=self.node_id,
            requester_incarnation=self.incarnation,
            incarnation=p.incarnation,
            after=p.watermark,
            spec=spec,
            max_bytes=self.max_round_bytes,
        )

    def accept(
        self, peer: str, request: PullRequest, reply: PullReply
    ) -> tuple[str, str, int] | None:
        """After every entry of ``reply`` was merged: advance the watermark.

        Returns what to persist, ``(incarnation, spec hash, watermark)``, or None
        when the watermark did not move. A reply from an incarnation we did not
        ask about (the peer was wiped) restarts from 0: the responder already
        served it from 0.
        """
        p = self.progress(peer)
        p.rounds += 1
        p.peer_head = reply.head
        if spec_hash(request.spec) != p.spec:
            return None  # our ranges changed during the round
        if reply.incarnation != p.incarnation:
            p.incarnation = reply.incarnation
            p.watermark = 0
        start = request.after if request.incarnation == reply.incarnation else 0
        if start != p.watermark:
            return None  # another round moved it meanwhile
        p.watermark = max(p.watermark, reply.next_after)
        p.complete = reply.complete
        return p.incarnation, p.spec, p.watermark

    def succeeded(self, peer: str, now: float) -> None:
        p = self.progress(peer)
        p.failures, p.last_success = 0, now

    def failed(self, peer: str, error: str) -> int:
        """A round with ``peer`` failed; returns how many in a row have."""
        p = self.progress(peer)
        p.failures += 1
        p.failed_rounds += 1
        p.last_error = error[:500]
        return p.failures

    def skipped(self, peer: str, oversized: tuple[tuple[bytes, int], ...]) -> None:
        """Objects ``peer`` could not send us (each larger than one message)."""
        if oversized:
            p = self.progress(peer)
            p.oversized += len(oversized)
            objkey, size = oversized[-1]
            p.last_oversized = f"{objkey[8:]!r}: {size} bytes"
            p.last_error = (
                f"{len(oversized)} object(s) too large for one message, skipped;"
                f" last {p.last_oversized}"
            )

    def reset(self) -> None:
        """Forget every watermark (e.g. the node's data was dropped)."""
        for p in self.peers.values():
            p.watermark, p.complete, p.spec = 0, False, ""

    # --- Responder side -----------------------------------------------------------------------

    def serve(
        self,
        request: PullRequest,
        head: int,
        log_after: Callable[[int, int], list[tuple[int, bytes]]],
        digest_of: Callable[[bytes], bytes | None],
        n_val_of: Callable[[bytes], int],
    ) -> PullReply:
        """Keys of our log after the request's watermark in the requester's ranges,
        with digests, at most ``scan_limit`` log entries per round.

        ``head`` is our last seq, read in the same step as the log (no new entry
        can appear at or below it). Records how far the requester applied our log.
        """
        ours = request.incarnation == self.incarnation
        after = request.after if ours else 0
        progress = self.progress(request.requester)
        progress.has_ours = (self.incarnation, request.spec, after) if ours else None
        scanned = log_after(after, self.scan_limit)
        entries: list[Digested] = []
        next_after = after
        for seq, objkey in scanned:
            pos = storage_key_position(objkey)
            if spec_covers(request.spec, n_val_of(objkey), pos):
                digest = digest_of(objkey)
                if digest is not None:
                    entries.append((objkey, digest))
            next_after = seq
        complete = len(scanned) < self.scan_limit
        if complete:
            next_after = max(next_after, head)
        return PullReply(
            incarnation=self.incarnation,
            head=head,
            next_after=next_after,
            complete=complete,
            entries=tuple(entries),
        )

    def fetch(
        self, objkeys: list[bytes], get_raw: Callable[[bytes], bytes | None], max_bytes: int
    ) -> FetchReply:
        """The objects asked for, in order, until ``max_bytes`` (at least one).

        An object larger than one message can carry (``max_object_bytes``) is not
        sent but named in ``oversized``, so it cannot hold back the keys behind it;
        the requester counts and shows it. Writes keep objects below that size, so
        only one stored before the limit, or grown by merging replicas, is skipped.
        """
        out: list[Entry] = []
        oversized: list[tuple[bytes, int]] = []
        size = 0
        handled = 0
        for objkey in objkeys[:FETCH_MAX_KEYS]:
            raw = get_raw(objkey)
            if raw is not None and len(raw) + len(objkey) > self.max_object_bytes:
                oversized.append((objkey, len(raw)))
            elif raw is not None:
                if out and size + len(objkey) + len(raw) > max_bytes:
                    break
                out.append((objkey, raw))
                size += len(objkey) + len(raw)
            handled += 1
        self.objects_out += len(out)
        self.bytes_out += size
        self.oversized_out += len(oversized)
        return FetchReply(handled=handled, entries=tuple(out), oversized=tuple(oversized))

    # --- Proofs -------------------------------------------------------------------------------

    def peer_has(self, peer: str, n_val: int, pos: int, seq: int) -> bool:
        """Has ``peer`` applied our log entry ``seq`` of a key at ``pos`` (in its ranges)?"""
        p = self.peers.get(peer)
        if p is None or p.has_ours is None:
            return False
        inc, spec, watermark = p.has_ours
        return inc == self.incarnation and watermark >= seq and spec_covers(spec, n_val, pos)

    def all_have(self, peers: Iterable[str], n_val: int, pos: int, seq: int) -> bool:
        return all(self.peer_has(p, n_val, pos, seq) for p in peers)

    def forget_proofs(self) -> None:
        for p in self.peers.values():
            p.has_ours = None

    def status(self, now: float) -> dict[str, dict[str, Any]]:
        """Per peer: progress and health (``now`` on the clock ``succeeded`` was given)."""
        return {
            peer: {
                "incarnation": p.incarnation,
                "watermark": p.watermark,
                "peer_head": p.peer_head,
                "lag": p.lag,
                "complete": p.complete,
                "objects_in": p.objects_in,
                "bytes_in": p.bytes_in,
                "rounds": p.rounds,
                "consecutive_failures": p.failures,
                "failed_rounds": p.failed_rounds,
                "last_error": p.last_error,
                "last_success_age_s": None
                if p.last_success is None
                else round(max(0.0, now - p.last_success), 3),
                "oversized_skipped": p.oversized,
            }
            for peer, p in sorted(self.peers.items())
        }
