"""Replica writes on the in-memory store: dots are never issued twice."""

from __future__ import annotations

import random

from dynamo.kv import dvvset
from dynamo.kv.replica import Replica
from dynamo.storage.memory import MemStore
from http_api.types import Content

KEY = b"\x00" * 8 + b"\x00\x01bk"


def content(v: bytes) -> Content:
    return Content(value=v, last_modified_us=1)


def test_an_actor_is_reused_across_a_clean_restart() -> None:
    store = MemStore("n1", rng=random.Random(1))
    r = Replica(store, random.Random(2))
    first = r.coordinate(
        KEY, content(b"a"), (), hint_for=None, allow_mult=True, last_write_wins=False
    )
    store.close()
    r2 = Replica(MemStore("n1", store.disk), random.Random(3))
    second = r2.coordinate(
        KEY,
        content(b"b"),
        dvvset.join(first),
        hint_for=None,
        allow_mult=True,
        last_write_wins=False,
    )
    assert [a for a, _, _ in second.entries] == [a for a, _, _ in first.entries]


def test_after_a_power_loss_a_lost_write_cannot_be_stamped_again() -> None:
    """A coordinator sends its new version to replicas, then loses it unsynced: its
    next write must not reuse the same dot for another value."""
    store = MemStore("n1", rng=random.Random(1))
    r = Replica(store, random.Random(2))
    v1 = r.coordinate(
        KEY, content(b"v1"), (), hint_for=None, allow_mult=True, last_write_wins=False
    )
    store.put_meta(b"x", b"sync", sync=True)
    v2 = r.coordinate(
        KEY, content(b"v2"), dvvset.join(v1), hint_for=None, allow_mult=True, last_write_wins=False
    )
    replica_copy = v2  # a replica got v2 before the coordinator lost it
    disk = store.crash(power_loss=True)
    r2 = Replica(MemStore("n1", disk), random.Random(3))
    v3 = r2.coordinate(
        KEY, content(b"v3"), dvvset.join(v1), hint_for=None, allow_mult=True, last_write_wins=False
    )
    merged = dvvset.sync(v3, replica_copy)
    assert sorted(c.value for c in dvvset.values(merged)) == [b"v2", b"v3"]
    dots = [d for d, _ in dvvset.values_with_dots(merged)]
    assert len(set(dots)) == len(dots)


def test_a_reaped_key_ignores_an_older_copy_and_accepts_a_new_write() -> None:
    from dynamo.kv import object as objects

    store = MemStore("n1", rng=random.Random(1))
    r = Replica(store, random.Random(2))
    old = r.coordinate(
        KEY, content(b"old"), (), hint_for=None, allow_mult=True, last_write_wins=False
    )
    tomb = r.coordinate(
        KEY,
        Content(value=b"", deleted=True, last_modified_us=2),
        dvvset.join(old),
        hint_for=None,
        allow_mult=True,
        last_write_wins=False,
    )
    got = store.get(KEY)
    assert got is not None
    assert store.reap(KEY, got[1], objects.encode_marker(tomb, 100.0))
    _, changed = r.write(KEY, old, None, allow_mult=True)  # a late hint
    assert not changed
    assert store.get(KEY) is None
    new = r.coordinate(
        KEY, content(b"new"), (), hint_for=None, allow_mult=True, last_write_wins=False
    )
    assert [c.value for c in dvvset.values(new)] == [b"new"]
    assert store.marker(KEY) is None
    _, changed = r.write(KEY, old, None, allow_mult=True)
    assert not changed


def test_stamping_a_write_keeps_every_other_field() -> None:
    """The coordinator stamps writes with ``stamped`` rather than ``dataclasses.replace``
    (it is cheaper): a field added to ``Content`` must be carried there too."""
    import dataclasses

    from dynamo.kv.object import stamped

    values: dict[str, object] = {}
    for f in dataclasses.fields(Content):
        values[f.name] = {
            "value": b"v",
            "content_type": "text/plain",
            "charset": "utf-8",
            "content_encoding": "gzip",
            "user_meta": (("a", "b"),),
            "links": (("b", "k", "t"),),
            "indexes": (("i_bin", "x"),),
            "last_modified_us": 1,
            "deleted": True,
        }[f.name]
    c = Content(**values)  # type: ignore[arg-type]
    assert stamped(c, 99) == dataclasses.replace(c, last_modified_us=99)
