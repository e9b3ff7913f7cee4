"""Checks the decoders of the data types share: each raises CrdtFormatError naming the place.

Every body a type decodes went through msgpack with ``raw=False``, so it holds
only lists, strs, bytes, ints, bools, floats, None and ext values: these checks
admit exactly the shapes our encoders write.
"""

from __future__ import annotations

from typing import NoReturn

from dynamo.kv.crdt.errors import CrdtFormatError
from dynamo.kv.crdt.limits import MAX_ACTOR_CHARS, MAX_COUNT

__all__ = ["actor", "array", "fail", "integer", "text", "unique"]


def fail(where: str, what: str) -> NoReturn:
    raise CrdtFormatError(f"{where}: {what}")


def array(obj: object, where: str, length: int | None = None) -> list[object]:
    """``obj`` if it is an array (of exactly ``length`` items when given)."""
    if type(obj) is not list:
        fail(where, f"must be an array, got {type(obj).__name__}")
    if length is not None and len(obj) != length:
        fail(where, f"must have {length} items, got {len(obj)}")
    return obj


def integer(obj: object, where: str, low: int = 0, high: int = MAX_COUNT) -> int:
    """``obj`` if it is an int (not a bool) in ``low..high``."""
    if type(obj) is not int or not low <= obj <= high:
        fail(where, f"must be an int in {low}..{high}, got {obj!r:.40}")
    return obj


def text(obj: object, where: str) -> str:
    """``obj`` if it is a str (msgpack already checked it is UTF-8)."""
    if type(obj) is not str:
        fail(where, f"must be a string, got {type(obj).__name__}")
    return obj


def actor(obj: object, where: str) -> str:
    """``obj`` if it is an actor id: a str of 1..MAX_ACTOR_CHARS chars."""
    if type(obj) is not str or not 0 < len(obj) <= MAX_ACTOR_CHARS:
        fail(where, f"actor must be a str of 1..{MAX_ACTOR_CHARS} chars")
    return obj


def unique(keys: list[str], where: str) -> None:
    """Fail if a key appears twice (a dict built from them would silently drop one)."""
    if len(set(keys)) != len(keys):
        fail(where, "a key appears twice")
