"""Anti-entropy bookkeeping over in-memory logs: watermarks, resync, bounds, proofs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.antientropy import (
    AntiEntropy,
    AntiEntropyError,
    FetchReply,
    PullReply,
    fetch_reply_from_wire,
    fetch_reply_to_wire,
    in_ranges,
    range_spec,
    reply_from_wire,
    reply_to_wire,
    request_from_wire,
    request_to_wire,
    spec_hash,
    watermark_from_bytes,
    watermark_to_bytes,
)
from ring.ring import Ring

EVERYTHING = {3: [(-1, 2**64 - 1)]}


@dataclass
class MemLog:
    """A replica log: one entry per key, its latest change."""

    objects: dict[bytes, bytes] = field(default_factory=dict)
    seq_of: dict[bytes, int] = field(default_factory=dict)
    seq: int = 0

    def write(self, pos: int, name: str, value: bytes) -> bytes:
        objkey = pos.to_bytes(8, "big") + name.encode()
        self.seq += 1
        self.objects[objkey] = value
        self.seq_of[objkey] = self.seq
        return objkey

    def log_after(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        entries = sorted((s, k) for k, s in self.seq_of.items() if s > after)
        return entries[:limit]

    def get_raw(self, objkey: bytes) -> bytes | None:
        return self.objects.get(objkey)


def three(_: bytes) -> int:
    return 3


def digest(value: bytes) -> bytes:
    return hashlib.sha1(value).digest()[:16]


def pull(
    a: AntiEntropy,
    b: AntiEntropy,
    b_log: MemLog,
    spec: dict[int, list[tuple[int, int]]],
    applied: dict[bytes, bytes],
    fetched: list[bytes] | None = None,
) -> PullReply:
    """One round: a pulls digests from b, fetches what differs, applies, accepts."""
    req = a.pull_request("b", spec)
    req = request_from_wire(request_to_wire(req))  # through the wire form

    def digest_of(k: bytes) -> bytes | None:
        v = b_log.get_raw(k)
        return None if v is None else digest(v)

    served = b.serve(req, b_log.seq, b_log.log_after, digest_of, three)
    reply = reply_from_wire(reply_to_wire(served))
    wanted = [k for k, d in reply.entries if k not in applied or digest(applied[k]) != d]
    while wanted:
        got = fetch_reply_from_wire(
            fetch_reply_to_wire(b.fetch(wanted, b_log.get_raw, a.max_round_bytes))
        )
        assert got.handled > 0
        wanted = wanted[got.handled :]
        applied.update(got.entries)
        if fetched is not None:
            fetched.extend(k for k, _ in got.entries)
    a.accept("b", req, reply)
    return reply


def test_pull_until_caught_up_then_rounds_are_empty() -> None:
    a, b = AntiEntropy("a", "inc-a", scan_limit=10), AntiEntropy("b", "inc-b", scan_limit=10)
    log = MemLog()
    for i in range(35):
        log.write(i * 1000, f"k{i}", b"v%d" % i)
    got: dict[bytes, bytes] = {}
    rounds = 0
    while True:
        rounds += 1
        r = pull(a, b, log, EVERYTHING, got)
        if r.complete:
            break
    assert rounds == 4
    assert got == log.objects
    assert a.progress("b").watermark == 35
    assert a.progress("b").lag == 0
    quiet = pull(a, b, log, EVERYTHING, got)
    assert quiet.entries == ()
    assert quiet.complete


def test_only_changes_after_the_watermark_are_sent() -> None:
    a, b = AntiEntropy("a", "ia"), AntiEntropy("b", "ib")
    log = MemLog()
    for i in range(100):
        log.write(i, f"k{i}", b"x")
    got: dict[bytes, bytes] = {}
    pull(a, b, log, EVERYTHING, got)
    k5 = log.write(5, "k5", b"new")
    fetched: list[bytes] = []
    r = pull(a, b, log, EVERYTHING, got, fetched)
    assert fetched == [k5]
    assert got[k5] == b"new"
    assert r.next_after == 101


def test_copies_the_requester_already_holds_are_not_fetched() -> None:
    a, b = AntiEntropy("a", "ia"), AntiEntropy("b", "ib")
    log = MemLog()
    got: dict[bytes, bytes] = {}
    for i in range(20):
        k = log.write(i, f"k{i}", b"v")
        got[k] = b"v"  # replicated by the coordinator already
    k7 = log.write(7, "k7", b"changed")
    fetched: list[bytes] = []
    r = pull(a, b, log, EVERYTHING, got, fetched)
    assert fetched == [k7]
    assert len(r.entries) == 20


def test_only_the_requesters_ranges_are_sent() -> None:
    a, b = AntiEntropy("a", "ia"), AntiEntropy("b", "ib")
    log = MemLog()
    inside = log.write(50, "in", b"x")
    log.write(500, "out", b"y")
    got: dict[bytes, bytes] = {}
    pull(a, b, log, {3: [(0, 100)]}, got)
    assert list(got) == [inside]
    assert a.progress("b").watermark == 2  # the skipped entry is passed too


def test_a_spec_change_restarts_from_zero_to_fill_new_ranges() -> None:
    a, b = AntiEntropy("a", "ia"), AntiEntropy("b", "ib")
    log = MemLog()
    log.write(50, "in", b"x")
    later = log.write(500, "later-ours", b"y")
    got: dict[bytes, bytes] = {}
    pull(a, b, log, {3: [(0, 100)]}, got)
    got.clear()
    pull(a, b, log, {3: [(0, 1000)]}, got)  # we gained (100, 1000]
    assert later in got


def test_a_wiped_peer_is_read_from_zero_not_trusted() -> None:
    a, b = AntiEntropy("a", "ia"), AntiEntropy("b", "ib-1")
    log = MemLog()
    for i in range(10):
        log.write(i, f"k{i}", b"old")
    got: dict[bytes, bytes] = {}
    pull(a, b, log, EVERYTHING, got)
    assert a.progress("b").watermark == 10
    # b is wiped: new incarnation, a fresh log with fewer entries
    b2, log2 = AntiEntropy("b", "ib-2"), MemLog()
    log2.write(3, "fresh", b"new")
    got.clear()
    r = pull(a, b2, log2, EVERYTHING, got)
    assert list(got.values()) == [b"new"]
    assert a.progress("b").incarnation == "ib-2"
    assert a.progress("b").watermark == r.next_after == 1


def test_fetches_are_bounded_in_bytes() -> None:
    b = AntiEntropy("b", "ib")
    log = MemLog()
    keys = [log.write(i, f"k{i}", b"x" * 1000) for i in range(50)]
    got = b.fetch(keys, log.get_raw, 10_000)
    assert 1 <= got.handled == len(got.entries) <= 10
    got = b.fetch(keys, log.get_raw, 10)  # always at least one
    assert (got.handled, len(got.entries)) == (1, 1)


def test_an_object_larger_than_a_message_is_skipped_and_named_not_a_stall() -> None:
    """Issue 18: one object too big for a message made every fetch fail, forever, and
    every key behind it waited. Now it is named, and the rest is carried."""
    b = AntiEntropy("b", "ib", max_object_bytes=5_000)
    log = MemLog()
    keys = [log.write(1, "small1", b"x" * 100), log.write(2, "huge", b"x" * 6_000)]
    keys += [log.write(3, "small2", b"x" * 100)]
    got = b.fetch(keys, log.get_raw, 1_000_000)
    assert got.handled == 3
    assert [k for k, _ in got.entries] == [keys[0], keys[2]]
    assert [k for k, _ in got.oversized] == [keys[1]]
    assert b.oversized_out == 1
    # Just under the limit is carried (alone if it must).
    b2 = AntiEntropy("b", "ib", max_object_bytes=len(keys[1]) + len(log.get_raw(keys[1]) or b""))
    got = b2.fetch([keys[1]], log.get_raw, 10)
    assert (got.handled, [k for k, _ in got.entries], got.oversized) == (1, [keys[1]], ())


def test_a_fetch_reply_without_oversized_objects_keeps_the_first_releases_two_fields() -> None:
    reply = FetchReply(handled=1, entries=((b"k", b"v"),))
    assert fetch_reply_to_wire(reply) == [1, [[b"k", b"v"]]]
    handled, entries = fetch_reply_to_wire(reply)  # what a first-release peer does
    assert (handled, entries) == (1, [[b"k", b"v"]])
    oversized = FetchReply(handled=1, entries=(), oversized=((b"k", 9),))
    assert fetch_reply_from_wire(fetch_reply_to_wire(oversized)) == oversized


def test_a_fetch_reply_of_the_first_release_still_decodes() -> None:
    old = [2, [[b"k1", b"v1"], [b"k2", b"v2"]]]  # [handled, entries]: no oversized list
    got = fetch_reply_from_wire(old)
    assert (got.handled, got.entries, got.oversized) == (2, ((b"k1", b"v1"), (b"k2", b"v2")), ())


def test_a_peer_that_keeps_failing_shows_its_failures_not_a_healthy_lag() -> None:
    a = AntiEntropy("a", "ia")
    a.succeeded("b", now=10.0)
    assert a.failed("b", "RpcError: frame too large") == 1
    assert a.failed("b", "RpcError: frame too large") == 2
    s = a.status(now=25.0)["b"]
    assert s["consecutive_failures"] == 2
    assert s["failed_rounds"] == 2
    assert s["last_error"] == "RpcError: frame too large"
    assert s["last_success_age_s"] == 15.0
    a.succeeded("b", now=30.0)
    s = a.status(now=30.0)["b"]
    assert (s["consecutive_failures"], s["failed_rounds"], s["last_success_age_s"]) == (0, 2, 0.0)
    assert a.status(now=0.0).get("c") is None
    assert AntiEntropy("x", "ix").status(now=1.0) == {}


def test_proofs_come_from_the_peers_requests() -> None:
    a, b = AntiEntropy("a", "ia"), AntiEntropy("b", "ib")
    b_log = MemLog()
    k = b_log.write(42, "k", b"tomb")
    seq = b_log.seq_of[k]
    assert not b.peer_has("a", 3, 42, seq)
    got: dict[bytes, bytes] = {}
    pull(a, b, b_log, EVERYTHING, got)  # a applied it; b learns that on a's next request
    assert not b.peer_has("a", 3, 42, seq)
    pull(a, b, b_log, EVERYTHING, got)
    assert b.peer_has("a", 3, 42, seq)
    assert not b.peer_has("a", 5, 42, seq)  # another n_val: other ranges
    assert b.all_have(["a"], 3, 42, seq)
    assert not b.all_have(["a", "c"], 3, 42, seq)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 30)), min_size=1, max_size=120),
    st.integers(1, 25),
    st.integers(200, 5000),
)
def test_any_interleaving_of_writes_and_rounds_converges(
    writes: list[tuple[int, int]], scan_limit: int, budget: int
) -> None:
    """Writes and rounds interleaved: once rounds run to completion, a holds b's latest."""
    a = AntiEntropy("a", "ia", max_round_bytes=budget, scan_limit=scan_limit)
    b = AntiEntropy("b", "ib", scan_limit=scan_limit)
    log = MemLog()
    got: dict[bytes, bytes] = {}
    for n, (pos, name) in enumerate(writes):
        log.write(pos, f"k{name}", b"v%d" % n)
        if n % 7 == 0:
            pull(a, b, log, EVERYTHING, got)
    for _ in range(10_000):
        if pull(a, b, log, EVERYTHING, got).complete:
            break
    assert got == log.objects


def test_ranges_and_spec_hash() -> None:
    ranges = [(-1, 10), (20, 30), (100, 2**64 - 1)]
    assert in_ranges(ranges, 0)
    assert in_ranges(ranges, 10)
    assert not in_ranges(ranges, 11)
    assert not in_ranges(ranges, 20)
    assert in_ranges(ranges, 25)
    assert in_ranges(ranges, 2**64 - 1)
    assert spec_hash({3: ranges}) == spec_hash({3: list(ranges)})
    assert spec_hash({3: ranges}) != spec_hash({2: ranges})


def test_a_watermark_round_trips_and_a_foreign_record_is_refused() -> None:
    raw = watermark_to_bytes("inc1", "spec9", 42)
    assert watermark_from_bytes(raw) == ("inc1", "spec9", 42)
    with pytest.raises(AntiEntropyError):
        watermark_from_bytes(msgpack.packb(["inc1", 7, "x"]))


def test_the_range_spec_is_what_the_node_replicates_per_n_val() -> None:
    ring = Ring(["a", "b", "c", "d"], 16)
    spec = range_spec(ring, "a", [1, 3])
    assert set(spec) == {1, 3}
    assert spec[3] == ring.owned_ranges("a", 3)
    assert range_spec(ring, "z", [3]) == {}
