"""The shopping-cart workload of the Dynamo paper, and the checker of its history.

Clients run read-modify-write cycles on a few keys whose values are JSON sets of
unique ids: read (siblings and context), take the union of the siblings, add a
new id, write it back with the context. An id whose write was acknowledged must
be in the key's final value; an id whose write failed or timed out may or may
not be (indeterminate).

Each value also names the write that made it (``{"ids": [...], "w": id}``), and
the history keeps what every write had read. So the sibling check is exact:
siblings that come back together must be truly concurrent writes (neither had
read the other). That is the bound DVVSet promises: the sibling count never
exceeds the number of concurrent writes. Under partitions a single client's
successive writes can be concurrent (it could not read its own last write), so
the count itself may exceed the number of clients without anything being wrong.

Used by ``dynamo chaos`` (over HTTP) and by the simulation (calling the node
directly): the transport comes in as two callables.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


class Indeterminate(Exception):
    """The write may or may not have been applied (503, timeout, connection lost)."""


class Refused(Exception):
    """The write was certainly not applied (a 4xx, or the read failed)."""


class ServerBug(Exception):
    """The server answered 500: never acceptable."""


Get = Callable[
    [str], Awaitable[tuple[list[bytes], bytes | None]]
]  # -> (live sibling values, context)
Put = Callable[[str, bytes, bytes | None], Awaitable[None]]


def decode_cart(value: bytes) -> tuple[set[str], str | None]:
    """(ids, the write that made this value)."""
    try:
        data = json.loads(value)
    except ValueError:
        return set(), None
    if isinstance(data, list):
        return {str(x) for x in data}, None
    if isinstance(data, dict) and isinstance(data.get("ids"), list):
        w = data.get("w")
        return {str(x) for x in data["ids"]}, w if isinstance(w, str) else None
    return set(), None


def decode_set(value: bytes) -> set[str]:
    return decode_cart(value)[0]


def encode_cart(ids: set[str], writer: str) -> bytes:
    return json.dumps({"ids": sorted(ids), "w": writer}).encode()


@dataclass
class History:
    """What the clients saw."""

    acked: dict[str, set[str]] = field(default_factory=dict)
    indeterminate: dict[str, set[str]] = field(default_factory=dict)
    ops: int = 0
    reads_failed: int = 0
    refused: int = 0
    bugs: list[str] = field(default_factory=list)
    max_siblings: int = 0
    saw: dict[str, frozenset[str]] = field(default_factory=dict)  # write id -> ids it had read
    sibling_sets: list[tuple[str, ...]] = field(default_factory=list)  # writers seen together

    @property
    def acknowledged(self) -> int:
        return sum(len(v) for v in self.acked.values())

    @property
    def indeterminate_count(self) -> int:
        return sum(len(v) for v in self.indeterminate.values())


async def cart_client(
    history: History,
    client: int,
    keys: list[str],
    rng: random.Random,
    get: Get,
    put: Put,
    keep_going: Callable[[], bool],
    pause: Callable[[], Awaitable[None]],
) -> None:
    """Run cycles until ``keep_going()`` is false."""
    n = 0
    while keep_going():
        key = rng.choice(keys)
        n += 1
        new_id = f"c{client}-{n}"
        history.ops += 1
        try:
            siblings, context = await get(key)
        except ServerBug as e:
            history.bugs.append(f"read {key}: {e}")
            continue
        except (Indeterminate, Refused):
            history.reads_failed += 1
            await pause()
            continue
        history.max_siblings = max(history.max_siblings, len(siblings))
        merged: set[str] = set()
        writers = []
        for value in siblings:
            ids, writer = decode_cart(value)
            merged |= ids
            if writer is not None:
                writers.append(writer)
        if len(writers) > 1:
            history.sibling_sets.append(tuple(writers))
        history.saw[new_id] = frozenset(merged)
        merged.add(new_id)
        try:
            await put(key, encode_cart(merged, new_id), context)
        except ServerBug as e:
            history.bugs.append(f"write {key}: {e}")
            history.indeterminate.setdefault(key, set()).add(new_id)
        except Indeterminate:
            history.indeterminate.setdefault(key, set()).add(new_id)
            await pause()
        except Refused:
            history.refused += 1
        else:
            history.acked.setdefault(key, set()).add(new_id)
        await pause()


@dataclass
class Verdict:
    lost: dict[str, set[str]] = field(default_factory=dict)  # acked ids missing at the end
    divergent: list[str] = field(default_factory=list)  # keys whose primaries differ
    not_concurrent: list[tuple[str, str]] = field(default_factory=list)  # siblings, one saw other
    bugs: list[str] = field(default_factory=list)

    @property
    def siblings_ok(self) -> bool:
        return not self.not_concurrent

    @property
    def lost_count(self) -> int:
        return sum(len(v) for v in self.lost.values())

    @property
    def passed(self) -> bool:
        return not self.lost and not self.divergent and self.siblings_ok and not self.bugs


def check(history: History, final: dict[str, set[str]], divergent: list[str]) -> Verdict:
    """Every acknowledged id is in its key's final value; replicas agree; siblings
    are only ever truly concurrent writes; nothing answered 500."""
    lost = {}
    for key, ids in history.acked.items():
        missing = ids - final.get(key, set())
        if missing:
            lost[key] = missing
    not_concurrent = []
    for writers in history.sibling_sets:
        for i, a in enumerate(writers):
            for b in writers[i + 1 :]:
                if a in history.saw.get(b, ()) or b in history.saw.get(a, ()):
                    not_concurrent.append((a, b))
    return Verdict(
        lost=lost,
        divergent=sorted(divergent),
        not_concurrent=not_concurrent,
        bugs=list(history.bugs),
    )
