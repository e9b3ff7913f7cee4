"""Sibling resolvers: pure functions that choose or merge the live siblings into one content.

A resolver is ``Callable[[list[Sibling]], Content]``; it is only called with two or more
live siblings (tombstones are left out). The client picks one per read: the call's
``resolver=`` argument, else the bucket's (``client.set_resolver(bucket, fn)``), else the
client's (``resolver=`` of the constructor).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import TypeAlias

from http_api.client_wire import KVObject
from http_api.types import Content, Sibling

Resolver: TypeAlias = Callable[[list[Sibling]], Content]

__all__ = ["Resolver", "Resolvers", "json_set_union", "last_write_wins", "resolve"]


def last_write_wins(siblings: list[Sibling]) -> Content:
    """The sibling written last (largest ``last_modified_us``; a tie goes to the larger vtag)."""
    if not siblings:
        raise ValueError("last_write_wins needs at least one sibling")
    return max(siblings, key=lambda s: (s.content.last_modified_us, s.vtag)).content


def _canonical(item: object) -> str:
    return json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _order(item: object, canonical: str) -> tuple[int, int | float | str, str]:
    """A total order over JSON values: null < booleans < numbers < strings < the rest."""
    if item is None:
        return (0, 0, canonical)
    if isinstance(item, bool):
        return (1, int(item), canonical)
    if isinstance(item, int | float) and math.isfinite(item):
        return (2, item, canonical)
    if isinstance(item, str):
        return (3, item, canonical)
    return (4, canonical, canonical)


def json_set_union(siblings: list[Sibling]) -> Content:
    """Each value is a JSON array read as a set: the result is their sorted union, as JSON.

    Elements are compared by their canonical JSON (object keys sorted), so ``1`` and
    ``1.0`` stay distinct, as do ``true`` and ``1``.
    """
    if not siblings:
        raise ValueError("json_set_union needs at least one sibling")
    union: dict[str, object] = {}
    for s in siblings:
        try:
            items = json.loads(s.content.value)
        except ValueError as e:
            raise ValueError(
                f"sibling {s.vtag!r} is not JSON ({e}): json_set_union merges JSON arrays only"
            )
        if not isinstance(items, list):
            raise ValueError(
                f"sibling {s.vtag!r} holds a JSON {type(items).__name__}, not an array: "
                "json_set_union merges JSON arrays only"
            )
        for item in items:
            union.setdefault(_canonical(item), item)
    ordered = sorted(union, key=lambda canonical: _order(union[canonical], canonical))
    return Content(
        value=("[" + ",".join(ordered) + "]").encode(),
        content_type="application/json",
        last_modified_us=max(s.content.last_modified_us for s in siblings),
    )


def resolve(obj: KVObject, resolver: Resolver) -> KVObject:
    """``obj`` with its live siblings replaced by one: the resolver's content.

    The context is kept (it covers every sibling read), so writing the result back
    supersedes all of them. With no live sibling ``obj`` is returned as it is; with one,
    tombstones are dropped and the resolver is not called. The resolved sibling keeps the
    vtag of the sibling it equals, else its vtag is ``""``.
    """
    live = obj.live
    if not live:
        return obj
    content = live[0].content if len(live) == 1 else resolver(live)
    vtag = next((s.vtag for s in live if s.content == content), "")
    return dataclasses.replace(obj, siblings=[Sibling(vtag=vtag, content=content)])


class Resolvers:
    """Which resolver a client applies to a read: the call's ``resolver=``, else the
    bucket's (``set_resolver``), else the client's. With none, several live siblings
    are returned as they are. Shared by every client flavour (HTTP and PB)."""

    def __init__(self, resolver: Resolver | None = None) -> None:
        self.resolver = resolver
        self._bucket_resolvers: dict[str, Resolver] = {}

    def set_resolver(self, bucket: str, resolver: Resolver | None) -> None:
        """Resolve this bucket's siblings with ``resolver`` (None: back to the client's)."""
        if resolver is None:
            self._bucket_resolvers.pop(bucket, None)
        else:
            self._bucket_resolvers[bucket] = resolver

    def resolver_for(self, bucket: str, resolver: Resolver | None = None) -> Resolver | None:
        if resolver is not None:
            return resolver
        return self._bucket_resolvers.get(bucket, self.resolver)

    def resolved(self, obj: KVObject, resolver: Resolver | None = None) -> KVObject:
        """``obj`` resolved by the resolver that applies, when it has several live siblings."""
        chosen = self.resolver_for(obj.bucket, resolver)
        return resolve(obj, chosen) if chosen is not None and obj.has_siblings else obj
