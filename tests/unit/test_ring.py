"""Ring tables: positions, construction, preference lists, ranges, balance."""

from __future__ import annotations

import ast
import itertools
import math
import sys
from collections import Counter
from pathlib import Path

import mmh3
import pytest

import ring
from ring import (
    RING_SIZE,
    PreflistEntry,
    Ring,
    Role,
    decode_bkey,
    encode_bkey,
    key_position,
    moved_share,
    position_bytes,
)

MAX = RING_SIZE - 1
FIVE = Ring([f"node{i}" for i in range(1, 6)])


def primary(node: str) -> PreflistEntry:
    return PreflistEntry(node, Role.PRIMARY, None)


def fallback(node: str, hint_for: str) -> PreflistEntry:
    return PreflistEntry(node, Role.FALLBACK, hint_for)


# -- public surface and dependency direction ---------------------------------------------


def test_public_names_are_pinned() -> None:
    assert sorted(ring.__all__) == [
        "Balance",
        "DEFAULT_TOKENS_PER_NODE",
        "MAX_BUCKET_BYTES",
        "PreflistEntry",
        "RING_SIZE",
        "Ring",
        "Role",
        "decode_bkey",
        "encode_bkey",
        "key_position",
        "moved_share",
        "position_bytes",
        "storage_key",
        "storage_key_bkey",
        "storage_key_position",
    ]


def test_ring_imports_only_stdlib_mmh3_and_sortedcontainers() -> None:
    allowed = set(sys.stdlib_module_names) | {"mmh3", "sortedcontainers", "ring"}
    for path in Path(ring.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            assert set(roots) <= allowed, f"{path.name} imports {roots}"


# -- positions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bucket", "key", "encoded"),
    [
        (b"", b"", b"\x00\x00"),
        (b"b", b"k", b"\x00\x01bk"),
        (b"users", b"", b"\x00\x05users"),
        (b"", b"\x00\x01", b"\x00\x00\x00\x01"),
        (b"x" * 300, b"key", b"\x01\x2c" + b"x" * 300 + b"key"),
    ],
)
def test_encode_bkey_table(bucket: bytes, key: bytes, encoded: bytes) -> None:
    assert encode_bkey(bucket, key) == encoded
    assert decode_bkey(encoded) == (bucket, key)


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x05abcd", b"\xff\xff"])
def test_decode_bkey_rejects_malformed_input(data: bytes) -> None:
    with pytest.raises(ValueError, match="encoded key"):
        decode_bkey(data)


def test_encode_bkey_rejects_bucket_beyond_length_prefix() -> None:
    with pytest.raises(ValueError, match="bucket is 65536 bytes"):
        encode_bkey(b"b" * 65536, b"k")


def test_key_position_is_pinned() -> None:
    # Every node must place a key at the same position, across versions too.
    assert key_position(b"bucket", b"key") == 16045692019951987585
    assert key_position(b"", b"") == 3478107235931676136
    assert key_position(b"b", b"k") == mmh3.hash64(b"\x00\x01bk", signed=False)[0]


def test_position_bytes_keep_ring_order() -> None:
    assert position_bytes(0) == b"\x00" * 8
    assert position_bytes(MAX) == b"\xff" * 8
    assert position_bytes(256) == b"\x00\x00\x00\x00\x00\x00\x01\x00"
    assert position_bytes(5) < position_bytes(256) < position_bytes(MAX)


@pytest.mark.parametrize("pos", [-1, RING_SIZE])
def test_position_bytes_rejects_positions_off_the_ring(pos: int) -> None:
    with pytest.raises(ValueError, match="outside the ring"):
        position_bytes(pos)


# -- construction and identity ------------------------------------------------------------


def test_tokens_follow_the_node_slash_index_rule() -> None:
    one = Ring(["node1"], tokens_per_node=4)
    expected = {mmh3.hash64(f"node1/{i}".encode(), signed=False)[0] for i in range(4)}
    assert set(one.tokens) == expected
    assert set(one.tokens.values()) == {"node1"}


def test_ring_hash_is_equal_for_equal_inputs() -> None:
    a = Ring({"node1": 1.0, "node2": 1.0, "node3": 1.0})
    b = Ring(["node3", "node1", "node2"])
    assert a == b
    assert hash(a) == hash(b)
    assert a.ring_hash == b.ring_hash == "0a54efd163f6658b"  # pinned: nodes compare hashes


@pytest.mark.parametrize(
    "other",
    [
        Ring(["node1", "node2"]),
        Ring(["node1", "node2", "node4"]),
        Ring({"node1": 2.0, "node2": 1.0, "node3": 1.0}),
        Ring(["node1", "node2", "node3"], tokens_per_node=32),
    ],
)
def test_ring_hash_differs_for_different_members_weights_or_tokens(other: Ring) -> None:
    base = Ring(["node1", "node2", "node3"])
    assert other != base
    assert other.ring_hash != base.ring_hash


@pytest.mark.parametrize(
    ("members", "tokens_per_node", "message"),
    [
        ({"a": 0.0}, 64, "weight of 'a' must be finite and > 0"),
        ({"a": -1.0}, 64, "weight of 'a'"),
        ({"a": math.nan}, 64, "weight of 'a'"),
        ({"a": math.inf}, 64, "weight of 'a'"),
        ({"": 1.0}, 64, "non-empty"),
        ({"a": 1.0}, 0, "tokens_per_node must be >= 1"),
    ],
)
def test_ring_rejects_bad_input(
    members: dict[str, float], tokens_per_node: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Ring(members, tokens_per_node=tokens_per_node)


def test_ring_rejects_a_bare_string_as_members() -> None:
    with pytest.raises(TypeError, match="not a str"):
        Ring("node1")


def test_members_weights_len_contains() -> None:
    r = Ring({"b": 2.0, "a": 1.0})
    assert r.members == ("a", "b")
    assert r.weights == {"a": 1.0, "b": 2.0}
    assert len(r) == 2
    assert "a" in r
    assert "c" not in r
    r.weights["a"] = 5.0  # a copy: the ring does not change
    assert r.weights["a"] == 1.0
    assert "ring_hash=" in repr(r)


def test_weight_two_gives_twice_the_tokens_and_about_twice_the_share() -> None:
    r = Ring({"node1": 2.0, "node2": 1.0, "node3": 1.0, "node4": 1.0})
    counts = Counter(r.tokens.values())
    assert counts == {"node1": 128, "node2": 64, "node3": 64, "node4": 64}
    shares = r.ownership()
    others = (shares["node2"] + shares["node3"] + shares["node4"]) / 3
    assert 1.5 <= shares["node1"] / others <= 2.7  # measured 2.20


def test_tiny_weight_still_gets_one_token() -> None:
    assert Counter(Ring({"a": 0.001, "b": 1.0}).tokens.values())["a"] == 1


# -- empty and one-node rings -------------------------------------------------------------


def test_empty_ring_returns_empty_results() -> None:
    empty = Ring()
    assert len(empty) == 0
    assert empty.members == ()
    assert empty.walk(0) == ()
    assert empty.primaries(123, 3) == ()
    assert empty.preflist(123, 3) == []
    assert empty.preflist(123, 3, down={"x"}) == []
    assert empty.fallbacks(123, 3) == ()
    assert not empty.replicates("x", 123, 3)
    assert empty.owned_ranges("x", 3) == []
    assert empty.ownership() == {}
    assert empty.balance().max_over_mean == 0.0
    assert moved_share(empty, Ring()) == 0.0
    assert moved_share(empty, Ring(["a"])) == 1.0


def test_one_node_owns_everything() -> None:
    one = Ring(["solo"])
    for pos in (0, 1, 2**63, MAX):
        assert one.primaries(pos, 3) == ("solo",)
        assert one.preflist(pos, 3) == [primary("solo")]
        assert one.preflist(pos, 3, down={"solo"}) == []
        assert one.fallbacks(pos, 3) == ()
    assert one.owned_ranges("solo", 1) == [(-1, MAX)]
    assert one.ownership() == {"solo": 1.0}
    assert one.balance().max_over_mean == 1.0


# -- preference lists ---------------------------------------------------------------------

POS = key_position(b"bucket", b"key")
W = FIVE.walk(POS)


def test_walk_is_every_node_once() -> None:
    assert sorted(W) == list(FIVE.members)
    assert FIVE.primaries(POS, 3) == W[:3]
    assert FIVE.fallbacks(POS, 3) == W[3:]


@pytest.mark.parametrize(
    ("down", "expected"),
    [
        ((), [primary(W[0]), primary(W[1]), primary(W[2])]),
        ((W[0],), [primary(W[1]), primary(W[2]), fallback(W[3], W[0])]),
        ((W[1],), [primary(W[0]), primary(W[2]), fallback(W[3], W[1])]),
        ((W[0], W[2]), [primary(W[1]), fallback(W[3], W[0]), fallback(W[4], W[2])]),
        ((W[0], W[3]), [primary(W[1]), primary(W[2]), fallback(W[4], W[0])]),
        ((W[3], W[4]), [primary(W[0]), primary(W[1]), primary(W[2])]),
        ((W[0], W[1], W[3]), [primary(W[2]), fallback(W[4], W[0])]),
        (W, []),
    ],
)
def test_preflist_with_primaries_down(down: tuple[str, ...], expected: list[PreflistEntry]) -> None:
    assert FIVE.preflist(POS, 3, down=down) == expected
    assert FIVE.preflist(POS, 3, down=set(down)) == expected


def test_fallbacks_skip_down_nodes() -> None:
    assert FIVE.fallbacks(POS, 3, down={W[3]}) == (W[4],)
    assert FIVE.fallbacks(POS, 2, down={W[0]}) == (W[2], W[3], W[4])


def test_n_larger_than_the_cluster() -> None:
    three = Ring(["a", "b", "c"])
    walk = three.walk(POS)
    assert three.primaries(POS, 10) == walk
    assert three.preflist(POS, 10) == [primary(node) for node in walk]
    assert three.preflist(POS, 10, down={walk[1]}) == [primary(walk[0]), primary(walk[2])]
    assert three.fallbacks(POS, 10) == ()
    assert three.owned_ranges("a", 10) == [(-1, MAX)]
    assert three.primaries(POS, 0) == ()


@pytest.mark.parametrize("pos", [-1, RING_SIZE])
def test_lookups_reject_positions_off_the_ring(pos: int) -> None:
    with pytest.raises(ValueError, match="outside the ring"):
        FIVE.preflist(pos, 3)


def test_lookups_reject_negative_n() -> None:
    with pytest.raises(ValueError, match="n must be >= 0"):
        FIVE.primaries(0, -1)


# -- wraparound ---------------------------------------------------------------------------


def test_wraparound_positions_belong_to_the_lowest_token() -> None:
    tokens = list(FIVE.tokens.items())
    lowest_token, lowest_node = tokens[0]
    highest_token, highest_node = tokens[-1]
    assert highest_token < MAX
    assert FIVE.walk(0)[0] == lowest_node
    assert FIVE.walk(MAX) == FIVE.walk(0)
    assert FIVE.walk(highest_token + 1) == FIVE.walk(0)
    assert FIVE.walk(highest_token)[0] == highest_node
    assert FIVE.walk(lowest_token) == FIVE.walk(0)
    assert FIVE.walk(lowest_token + 1)[0] == tokens[1][1]


def test_owned_ranges_split_the_wrapping_range() -> None:
    owner = FIVE.walk(0)[0]
    ranges = FIVE.owned_ranges(owner, 1)
    assert ranges[0][0] == -1  # starts at position 0
    assert ranges[-1][1] == MAX  # and the same range continues up to 2**64 - 1
    assert FIVE.replicates(owner, 0, 1)
    assert FIVE.replicates(owner, MAX, 1)


def test_owned_ranges_match_replicates() -> None:
    for node in FIVE.members:
        ranges = FIVE.owned_ranges(node, 3)
        assert ranges == sorted(ranges)
        for (_, hi), (lo, _) in itertools.pairwise(ranges):
            assert hi < lo  # merged: no two ranges touch
        for lo, hi in ranges:
            assert FIVE.replicates(node, lo + 1, 3)
            assert FIVE.replicates(node, hi, 3)
            if hi < MAX:
                assert not FIVE.replicates(node, hi + 1, 3)
            if lo >= 0:
                assert not FIVE.replicates(node, lo, 3)


def test_owned_ranges_cover_the_ring_n_times() -> None:
    for n in (1, 3):
        total = sum(hi - lo for node in FIVE.members for lo, hi in FIVE.owned_ranges(node, n))
        assert total == n * RING_SIZE


def test_owned_ranges_of_a_stranger_are_empty() -> None:
    assert FIVE.owned_ranges("stranger", 3) == []


# -- balance and moved share --------------------------------------------------------------


def test_ownership_sums_to_one() -> None:
    shares = FIVE.ownership()
    assert set(shares) == set(FIVE.members)
    assert math.isclose(sum(shares.values()), 1.0)
    balance = FIVE.balance()
    assert balance.shares == shares
    assert balance.mean_share == 0.2
    assert balance.max_share == max(shares.values())
    assert math.isclose(balance.max_over_mean, balance.max_share / 0.2)


def test_moved_share_of_identical_rings_is_zero_and_symmetric() -> None:
    six = Ring([f"node{i}" for i in range(1, 7)])
    assert moved_share(FIVE, Ring(FIVE.members)) == 0.0
    assert moved_share(FIVE, six) == moved_share(six, FIVE)
    assert 0.0 < moved_share(FIVE, six, n=1) < moved_share(FIVE, six, n=3) <= 1.0


def test_a_storage_key_starts_with_its_position_and_gives_back_bucket_and_key() -> None:
    from ring.position import key_position, storage_key, storage_key_bkey, storage_key_position

    pos, skey = storage_key(b"bucket", b"k/1")
    assert pos == key_position(b"bucket", b"k/1")
    assert storage_key_position(skey) == pos
    assert storage_key_bkey(skey) == (b"bucket", b"k/1")
    assert sorted([storage_key(b"b", b"x")[1], storage_key(b"b", b"y")[1]]) == sorted(
        [storage_key(b"b", b"y")[1], storage_key(b"b", b"x")[1]],
        key=storage_key_position,
    )
