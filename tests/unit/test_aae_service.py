"""The anti-entropy shell over two memory stores, wired call to handler (no sockets)."""

from __future__ import annotations

import random
from typing import Any

from dynamo.kv import dvvset
from dynamo.kv import object as objects
from dynamo.storage.memory import MemStore
from gossip.aae_service import AntiEntropyService
from gossip.antientropy import AntiEntropy, Entry
from http_api.types import Content
from ring.position import storage_key

EVERYTHING = {3: [(-1, 2**64 - 1)]}


class Pair:
    """Node a pulls from node b; ``broken`` makes every call to b fail."""

    def __init__(self, max_object_bytes: int = 63 * 1024 * 1024) -> None:
        self.stores = {n: MemStore(n, rng=random.Random(i)) for i, n in enumerate("ab")}
        self.now = 0.0
        self.broken: Exception | None = None
        self.services = {
            n: AntiEntropyService(
                AntiEntropy(n, s.incarnation, max_object_bytes=max_object_bytes),
                s,
                peers=lambda n=n: ["b" if n == "a" else "a"],  # type: ignore[misc]
                spec=lambda: EVERYTHING,
                n_val_of=lambda k: 3,
                call=self.call,
                apply=self.applier(s),
                persist=lambda *a: None,
                clock=lambda: self.now,
            )
            for n, s in self.stores.items()
        }

    async def call(self, peer: str, method: str, body: Any) -> Any:
        if self.broken is not None:
            raise self.broken
        svc = self.services[peer]
        return svc.handle_pull(body) if method == "aae_pull" else svc.handle_fetch(body)

    @staticmethod
    def applier(store: MemStore) -> Any:
        async def apply(entries: tuple[Entry, ...]) -> int:
            for objkey, raw in entries:
                store.put(objkey, objects.decode(raw)[0], None)
            return len(entries)

        return apply

    def write(self, node: str, key: bytes, value: bytes) -> bytes:
        _, objkey = storage_key(b"b", key)
        c = Content(value=value, last_modified_us=1)
        self.stores[node].put(objkey, dvvset.update(dvvset.new(c), None, f"{node}/1"), None)
        return objkey


async def test_a_round_fetches_what_differs_and_records_a_success() -> None:
    pair = Pair()
    keys = [pair.write("b", f"k{i}".encode(), b"v") for i in range(5)]
    a = pair.services["a"]
    pair.now = 7.0
    assert await a.round("b")  # caught up
    assert all(pair.stores["a"].get(k) is not None for k in keys)
    status = a.status()["b"]
    assert status["consecutive_failures"] == 0
    assert status["last_success_age_s"] == 0.0
    assert status["objects_in"] == 5


async def test_failing_rounds_are_counted_in_a_row_and_show_the_last_error() -> None:
    pair = Pair()
    pair.write("b", b"k", b"v")
    a = pair.services["a"]
    pair.broken = ConnectionError("frame of 70000000 bytes is above the limit")
    for _ in range(3):
        await a.round("b")
    status = a.status()["b"]
    assert status["consecutive_failures"] == 3
    assert "above the limit" in status["last_error"]
    assert status["last_success_age_s"] is None
    assert a.failed_rounds == 3
    pair.broken = None
    pair.now = 5.0
    await a.round("b")
    assert a.status()["b"]["consecutive_failures"] == 0


async def test_an_object_too_large_for_a_message_is_skipped_and_the_rest_arrive() -> None:
    pair = Pair(max_object_bytes=4_000)
    small = [pair.write("b", f"s{i}".encode(), b"v") for i in range(3)]
    huge = pair.write("b", b"huge", b"x" * 10_000)
    a = pair.services["a"]
    assert await a.round("b")
    assert all(pair.stores["a"].get(k) is not None for k in small)
    assert pair.stores["a"].get(huge) is None
    status = a.status()["b"]
    assert status["oversized_skipped"] == 1
    assert "too large" in status["last_error"]
    assert status["lag"] == 0  # the watermark moved past it: nothing behind it waits
    assert a.oversized == 1
