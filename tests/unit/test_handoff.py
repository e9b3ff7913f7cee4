"""Hint delivery and leave transfer: batches bounded in bytes, expired hints dropped."""

from __future__ import annotations

import asyncio
import random

import pytest

from dynamo.kv import dvvset
from dynamo.kv import object as objects
from dynamo.storage.memory import MemStore
from handoff.delivery import Batch, HintDeliveryService, reroute, take_batch
from handoff.standin import choose_stand_in
from handoff.transfer import LeaveTransfer, TransferProgress, chunks, new_holders
from http_api.types import Content
from ring.ring import Ring

MIB = 1024 * 1024


def obj(value: bytes) -> objects.Obj:
    return dvvset.update(dvvset.new(Content(value=value, last_modified_us=1)), None, "n9/1")


def key(i: int) -> bytes:
    return i.to_bytes(8, "big") + b"\x00\x01b" + str(i).encode()


def store_with_hints(n: int, size: int, target: str = "n2", stored_at_ms: int = 0) -> MemStore:
    s = MemStore("n1", rng=random.Random(1))
    for i in range(n):
        s.put_hint(target, key(i), obj(bytes([i % 256]) * size), stored_at_ms)
    return s


def test_a_batch_stops_before_the_hint_that_would_pass_the_byte_limit() -> None:
    hints = [(key(i), b"x" * 400) for i in range(10)]
    send, drop, last = take_batch(hints, 1000, lambda raw: False)
    assert len(send) == 2
    assert not drop
    assert last == key(1)
    send, _, last = take_batch(hints[:1], 10, lambda raw: False)  # one at least
    assert len(send) == 1
    assert last == key(0)


def test_expired_hints_are_dropped_from_a_batch_not_sent() -> None:
    hints = [(key(i), b"old" if i % 2 else b"new") for i in range(6)]
    send, drop, last = take_batch(hints, 10_000, lambda raw: raw == b"old")
    assert [k for k, _ in send] == [key(0), key(2), key(4)]
    assert [k for k, _ in drop] == [key(1), key(3), key(5)]
    assert last == key(5)


async def test_65_hints_of_1_mib_reach_their_target_in_batches_that_fit_a_message() -> None:
    """Issue 18: 200 hints per message, counted not sized: 65 of 1 MiB passed the 64 MiB
    message limit, every delivery failed, and a leaving node waited forever."""
    store = store_with_hints(65, MIB)
    got: list[Batch] = []

    async def deliver(target: str, batch: Batch) -> None:
        assert sum(len(k) + len(v) for k, v in batch) <= 4 * MIB + MIB  # one may pass alone
        got.append(batch)

    service = HintDeliveryService(
        store, deliver, lambda t: True, batch=200, batch_bytes=4 * MIB, rate_per_s=10**9
    )
    assert await service.deliver_to("n2") == 65
    assert store.hint_counts() == {}
    assert sum(len(b) for b in got) == 65
    assert len(got) >= 65 // 4
    assert service.stats.delivered == 65


async def test_expired_hints_are_dropped_and_counted_even_while_their_target_is_down() -> None:
    store = store_with_hints(5, 100, stored_at_ms=0)
    for i in range(5, 8):
        store.put_hint("n2", key(i), obj(b"fresh"), 10**12)
    sent: list[Batch] = []

    async def deliver(target: str, batch: Batch) -> None:
        sent.append(batch)

    service = HintDeliveryService(
        store,
        deliver,
        lambda t: False,  # down
        expired=lambda raw: objects.stored_seq(raw) < 10**12,
        batch=2,
    )
    assert await service.expire("n2") == 5
    assert store.hint_counts() == {"n2": 3}
    assert service.stats.expired == 5
    assert not sent
    # The sweep runs from the service loop too, whatever the target's state.
    store.put_hint("n2", key(20), obj(b"old"), 1)
    task = asyncio.ensure_future(service.run())
    try:
        async with asyncio.timeout(5):
            while service.stats.expired < 6:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert store.hint_counts() == {"n2": 3}
    assert not sent


def test_chunks_keep_order_and_bound_bytes_with_one_item_at_least() -> None:
    items = [(key(i), b"x" * size) for i, size in enumerate([10, 10, 50, 10, 200, 10])]
    got = list(chunks(items, 60))
    assert [k for c in got for k, _ in c] == [k for k, _ in items]
    assert all(sum(len(k) + len(v) for k, v in c) <= 60 or len(c) == 1 for c in got)
    assert list(chunks([], 10)) == []


async def test_a_leave_transfer_of_large_objects_sends_batches_that_fit_a_message() -> None:
    source = MemStore("n1", rng=random.Random(1))
    for i in range(20):
        source.put(key(i), obj(b"v" * MIB), None)
    sent: list[tuple[str, int]] = []

    async def send(node: str, batch: Batch) -> None:
        size = sum(len(k) + len(v) for k, v in batch)
        assert size <= 3 * MIB or len(batch) == 1
        sent.append((node, len(batch)))

    t = LeaveTransfer(
        source,
        new_holders=lambda k: ["n2", "n3"],
        send=send,
        save=lambda p: None,
        progress=TransferProgress(),
        batch=200,
        batch_bytes=3 * MIB,
    )
    await t.run()
    assert t.progress.phase == "done"
    assert sum(n for node, n in sent if node == "n2") == 20
    assert sum(n for node, n in sent if node == "n3") == 20


@pytest.mark.parametrize("size", [10, 4 * MIB])
def test_take_batch_never_returns_nothing_while_live_hints_remain(size: int) -> None:
    hints = [(key(i), b"x" * size) for i in range(3)]
    send, _, _ = take_batch(hints, 1, lambda raw: False)
    assert len(send) == 1


def test_a_stand_in_is_the_nearest_fallback_not_already_used() -> None:
    assert choose_stand_in(("n4", "n5", "n6"), {"n1", "n2", "n3"}) == "n4"
    assert choose_stand_in(("n4", "n5", "n6"), {"n1", "n4"}) == "n5"
    assert choose_stand_in(("n4",), {"n4"}) is None
    assert choose_stand_in((), set()) is None
    # With locations: n4 shares zone a with the live n1, n5 is in a zone no live target
    # is in; the failed n2's own zone (b) counts as free.
    zones = {"n1": "a", "n2": "b", "n3": "c", "n4": "a", "n5": "d", "n6": "b"}
    taken = {"n1", "n2", "n3"}
    assert choose_stand_in(("n4", "n5"), taken, failed={"n2"}, location=zones) == "n5"
    assert choose_stand_in(("n4", "n6"), taken, failed={"n2"}, location=zones) == "n6"
    assert choose_stand_in(("n4",), taken, failed={"n2"}, location=zones) == "n4"


def test_a_leaving_node_hands_each_key_to_the_primaries_the_future_ring_adds() -> None:
    ring = Ring({f"n{i}": 1.0 for i in range(1, 6)}, 16)
    future = ring.without("n1")
    assert "n1" not in future.members
    assert len(future) == 4
    moved = 0
    for pos in range(0, 2**64, 2**58):
        holders = new_holders(ring, future, "n1", pos, 3)
        now = ring.primaries(pos, 3)
        if "n1" not in now:
            assert holders == []
        else:
            assert len(holders) == 1  # exactly the one node that replaces n1
            assert holders[0] not in now
            assert holders[0] in future.primaries(pos, 3)
            moved += 1
    assert moved > 0


def test_hints_for_a_departed_node_go_to_every_live_primary_of_their_key() -> None:
    batch = [(key(1), b"a"), (key(2), b"b")]
    got = reroute(
        batch, lambda k: ["n2", "n3"] if k == key(1) else ["n3", "n4"], lambda n: n != "n4"
    )
    assert got == {"n2": [(key(1), b"a")], "n3": [(key(1), b"a"), (key(2), b"b")]}
    assert reroute(batch, lambda k: ["n4"], lambda n: False) == {}
