"""Issue 18 at the replica: hints expire before markers do, reads honour markers,
and a stored object has a size cap. Run on both stores (RocksDB and memory)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from dynamo.kv import dvvset
from dynamo.kv import object as objects
from dynamo.kv.object import Obj
from dynamo.kv.replica import Replica, TooLarge
from dynamo.storage.contract import StoreAPI
from dynamo.storage.memory import MemStore
from dynamo.storage.rocksdb import Store
from http_api.types import Content

KEY = b"\x00" * 8 + b"\x00\x01bk"
TTL_S = 100.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "rocksdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreAPI]:
    s: StoreAPI = (
        MemStore("n1", rng=random.Random(1))
        if request.param == "memory"
        else Store(tmp_path / "db", "n1")
    )
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def replica(store: StoreAPI, clock: Clock) -> Replica:
    return Replica(store, random.Random(2), wallclock=clock, hint_ttl_s=TTL_S)


def write(r: Replica, value: bytes, context: dvvset.VersionVector = (), **kw: object) -> Obj:
    return r.coordinate(
        KEY,
        Content(value=value, last_modified_us=1, deleted=value == b""),
        context,
        hint_for=kw.get("hint_for"),  # type: ignore[arg-type]
        allow_mult=True,
        last_write_wins=False,
        max_bytes=kw.get("max_bytes", 0),  # type: ignore[arg-type]
    )


def values(obj: Obj | None) -> list[bytes]:
    return [] if obj is None else sorted(c.value for c in dvvset.values(obj))


# --- Hints expire -----------------------------------------------------------------------------


def test_a_hint_is_served_and_delivered_within_its_lifetime_and_never_after(
    replica: Replica, store: StoreAPI, clock: Clock
) -> None:
    write(replica, b"old", hint_for="n2")
    assert values(replica.read(KEY, "n2")) == [b"old"]
    clock.now += TTL_S - 1
    raw = replica.read_raw(KEY, "n2")
    assert raw is not None
    assert values(objects.decode(raw)[0]) == [b"old"]
    clock.now += 2
    assert replica.read(KEY, "n2") is None
    assert replica.read_raw(KEY, "n2") is None
    assert replica.local_copy(KEY) is None
    ((_, stored),) = store.hints_for("n2", b"", 10)
    assert replica.hint_expired(objects.stored_seq(stored))


def test_a_hint_ages_from_when_it_was_first_stored_not_from_its_last_merge(
    replica: Replica, store: StoreAPI, clock: Clock
) -> None:
    first = write(replica, b"a", hint_for="n2")
    clock.now += TTL_S / 2
    replica.write(KEY, write(Replica(MemStore("n3")), b"b"), "n2", allow_mult=True)
    got = store.get_hint("n2", KEY)
    assert got is not None
    assert values(got[0]) == [b"a", b"b"]
    assert got[1] == int((clock.now - TTL_S / 2) * 1000)
    clock.now += TTL_S / 2 + 1
    assert replica.read(KEY, "n2") is None
    # What arrives for an expired hint starts a new one; the expired values stay out.
    replica.write(KEY, first, "n2", allow_mult=True)
    assert values(replica.read(KEY, "n2")) == [b"a"]


# --- Reads honour reaped markers --------------------------------------------------------------


def reap(replica: Replica, store: StoreAPI, clock: Clock) -> Obj:
    live = write(replica, b"v")
    tomb = write(replica, b"", dvvset.join(live))
    got = store.get(KEY)
    assert got is not None
    assert store.reap(KEY, got[1], objects.encode_marker(tomb, clock()))
    return live


def test_a_primary_holding_only_a_marker_answers_with_its_history_not_notfound(
    replica: Replica, store: StoreAPI, clock: Clock
) -> None:
    live = reap(replica, store, clock)
    raw = replica.read_raw(KEY)
    assert raw is not None
    marker = objects.decode(raw)[0]
    assert dvvset.size(marker) == 0
    # A coordinator merging it with a stand-in's old copy drops the covered value.
    merged = objects.merge(marker, live, allow_mult=True)
    assert dvvset.size(merged) == 0
    assert not objects.to_fetch_result(merged).found
    assert objects.to_fetch_result(merged).context == objects.encode_context(dvvset.join(marker))


def test_read_repair_with_a_reaped_history_leaves_markers_where_values_were_covered(
    replica: Replica, store: StoreAPI, clock: Clock
) -> None:
    other = Replica(MemStore("n3", rng=random.Random(4)), random.Random(5), wallclock=clock)
    live = write(other, b"v")
    tomb = write(other, b"", dvvset.join(live))
    history = objects.marker_history(objects.encode_marker(tomb, clock()))
    # A primary with no copy keeps the history as a marker (not an empty object).
    replica.write(KEY, history, None, allow_mult=True)
    assert store.get(KEY) is None
    assert store.marker(KEY) is not None
    assert replica.write(KEY, live, None, allow_mult=True)[1] is False  # cannot come back
    # A stand-in's hint of the old value loses it.
    replica.write(KEY, live, "n2", allow_mult=True)
    replica.write(KEY, history, "n2", allow_mult=True)
    assert values(replica.read(KEY, "n2")) == []


def test_a_primary_still_holding_a_covered_value_turns_it_into_a_marker(
    replica: Replica, store: StoreAPI, clock: Clock
) -> None:
    live = write(replica, b"v")
    other = Replica(MemStore("n3"), random.Random(5), wallclock=clock)
    other.write(KEY, live, None, allow_mult=True)
    tomb = write(other, b"", dvvset.join(live))
    replica.write(KEY, objects.marker_history(objects.encode_marker(tomb, clock())), None, True)
    assert store.get(KEY) is None
    assert store.marker(KEY) is not None
    assert store.log_after(0, 10) == []


# --- The stored-object cap ---------------------------------------------------------------------


def test_a_write_that_would_make_the_stored_object_too_large_is_refused_and_not_stored(
    replica: Replica, store: StoreAPI
) -> None:
    limit = 10_000
    write(replica, b"x" * 4_000, max_bytes=limit)
    write(replica, b"y" * 4_000, max_bytes=limit)  # a sibling: 8,000 and some
    with pytest.raises(TooLarge) as e:
        write(replica, b"z" * 4_000, max_bytes=limit)
    assert e.value.size > limit
    assert values(replica.read(KEY)) == [b"x" * 4_000, b"y" * 4_000]
    # Resolving (writing with the context of a read) is always possible.
    current = replica.read(KEY)
    assert current is not None
    write(replica, b"z" * 4_000, dvvset.join(current), max_bytes=limit)
    assert values(replica.read(KEY)) == [b"z" * 4_000]


def test_the_estimated_size_is_close_to_the_encoded_size() -> None:
    r = Replica(MemStore("n1"), random.Random(1))
    obj = write(r, b"a" * 1000)
    obj = dvvset.sync(obj, write(Replica(MemStore("n2")), b"b" * 5000))
    encoded = len(objects.encode(obj))
    assert encoded <= objects.stored_size(obj) <= encoded + 200


def test_hints_from_before_hints_carried_a_time_are_dated_on_upgrade_not_dropped(
    store: StoreAPI, clock: Clock
) -> None:
    """An earlier release stored hints with a 0 in their time field: read as a time,
    that is 1970, and the first start after an upgrade would drop every one."""
    legacy = write(Replica(MemStore("n3")), b"held")
    store.put_hint("n2", KEY, legacy, 0)  # as the earlier release wrote it
    upgraded = Replica(store, random.Random(3), wallclock=clock, hint_ttl_s=TTL_S)
    assert values(upgraded.read(KEY, "n2")) == [b"held"]
    got = store.get_hint("n2", KEY)
    assert got is not None
    assert got[1] == int(clock() * 1000)
    clock.now += TTL_S + 1
    assert upgraded.read(KEY, "n2") is None  # and it expires from then on
