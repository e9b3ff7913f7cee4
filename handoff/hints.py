"""The hint record: what a node holds for a replica that could not take a write, how
it is keyed, merged and aged, and the store Protocol that keeps it. Pure.

A hint is the object a stand-in took for ``target``, stored under
``len(target)(1) + target + objects key`` (so one target's hints are one key range),
with the time it was *first* stored: merging later writes into it keeps that time, so
a hint ages from the write that made it, never younger. A hint past ``hint_ttl_s``
is never served or delivered (it must expire before the reaped-tombstone markers
that guard against it). A delivered hint is merged at its target as a primary copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
MAX_TARGET_BYTES = 255


def hint_key(target: str, objkey: bytes) -> bytes:
    """The store key of ``target``'s hint for ``objkey``."""
    t = target.encode()
    if len(t) > MAX_TARGET_BYTES:
        raise ValueError(f"node id longer than {MAX_TARGET_BYTES} bytes")
    return bytes((len(t),)) + t + objkey


def split_hint_key(hk: bytes) -> tuple[str, bytes]:
    """``(target, objects key)`` of a hint's store key."""
    n = hk[0]
    return hk[1 : 1 + n].decode(), hk[1 + n :]


def expired(stored_at_ms: int, now_ms: float, ttl_s: float) -> bool:
    """Is a hint first stored at ``stored_at_ms`` past its lifetime at ``now_ms``?"""
    return now_ms - stored_at_ms > ttl_s * 1000


def merge_into(
    held: tuple[T, int] | None, incoming: T, now_ms: int, merge: Callable[[T, T], T]
) -> tuple[T, int] | None:
    """The hint record to store after a write ``incoming`` for a target: ``(object,
    first stored at)``; None if the held hint already covers it. A new hint is
    stored now; a merged one keeps the time it was first stored."""
    if held is None:
        return incoming, now_ms
    hint, stored_at_ms = held
    merged = merge(hint, incoming)
    if merged == hint:
        return None
    return merged, stored_at_ms


class HintQueue(Protocol):
    """What delivery needs of the hints a node holds."""

    def hints_for(self, target: str, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` of ``target``'s hints after objects key ``after``, in order."""
        ...

    def delete_hints_if_unchanged(self, target: str, sent: list[tuple[bytes, bytes]]) -> int:
        """Drop the delivered hints still holding what was sent; how many were dropped."""
        ...

    def hint_counts(self) -> dict[str, int]:
        """Hints held, per target."""
        ...


class HintStore(HintQueue, Protocol):
    """What hinted handoff needs of a node's store (``dynamo.storage`` implements it)."""

    def get_hint_raw(self, target: str, objkey: bytes) -> bytes | None: ...
    def put_hint(self, target: str, objkey: bytes, obj: Any, stored_at_ms: int) -> None: ...
