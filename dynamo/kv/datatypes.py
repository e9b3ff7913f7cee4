"""Data types on the data path: how a CRDT rides in an object, and how an operation
becomes a new state at the replica that coordinates it.

A data type's object is an ordinary stored object whose values hold tagged CRDT states
(content type ``CRDT_TYPE``). So every path that moves objects (replication, read
repair, anti-entropy, hints, transfers) moves them unchanged. Concurrent states stay
side by side, each at the dot of the update that made it, as Riak keeps them (its data
type buckets have ``allow_mult`` on): a fetch merges them with the type's merge, and
the next update applies its operation to their merge and supersedes them all. Folding
them into one value on a replica would pin the merge to one dot, and a replica that
had seen that dot but not the others would drop it as old: an operation lost.

An update travels to a primary as an operation (content type ``CRDT_OP_TYPE``: the
kind, the operation, the context of the fetch it was built from), so a forwarded
update is applied exactly where it is coordinated, on that replica's state, with that
replica's actor: the DVVSet rule of fresh actors after an unclean stop holds for data
types too, so no operation's dot is ever issued twice.
"""

from __future__ import annotations

from typing import Any

import msgpack

from dynamo.kv import crdt, dvvset
from dynamo.kv.dvvset import Clock
from http_api.types import Content

CRDT_TYPE = "application/x-dynamo-crdt"
CRDT_OP_TYPE = "application/x-dynamo-crdt-op"
OP_FORMAT = 1


class DatatypeError(ValueError):
    """A data type operation cannot be done; the message says why."""


def is_op(c: Content) -> bool:
    return c.content_type == CRDT_OP_TYPE


def op_content(kind: str, op: dict[str, Any], context: bytes | None, precision: int) -> Content:
    """An update as the content of a write (stamped by the coordinator like any write)."""
    value = msgpack.packb(
        [OP_FORMAT, kind, op, context, precision], use_bin_type=True, datetime=False
    )
    return Content(value=value, content_type=CRDT_OP_TYPE)


def _op_of(c: Content) -> tuple[str, dict[str, Any], bytes | None, int]:
    try:
        fmt, kind, op, context, precision = msgpack.unpackb(c.value, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise DatatypeError(f"a malformed data type operation ({e})") from e
    if fmt != OP_FORMAT or kind not in crdt.KINDS or not isinstance(op, dict):
        raise DatatypeError("a malformed data type operation")
    if context is not None and not isinstance(context, bytes):
        raise DatatypeError("a malformed data type context")
    return kind, op, context, int(precision)


def states(contents: list[Content]) -> tuple[str, Any] | None:
    """The merged state of an object's live data type siblings, or None if it holds none."""
    out: tuple[str, Any] | None = None
    for c in contents:
        if c.deleted or c.content_type != CRDT_TYPE:
            continue
        kind, state = crdt.decode(c.value)
        if out is None:
            out = (kind, state)
        elif out[0] != kind:
            raise DatatypeError(f"a {kind} and a {out[0]} under one key: refusing to merge them")
        else:
            out = (kind, crdt.merge(kind, out[1], state))
    return out


def state_content(kind: str, state: Any, last_modified_us: int) -> Content:
    return Content(
        value=crdt.encode(kind, state), content_type=CRDT_TYPE, last_modified_us=last_modified_us
    )


def apply(local: Clock[Content] | None, c: Content, actor: str, limits: crdt.Limits) -> Content:
    """The new state an operation makes of the local copy (``local``), as content."""
    kind, op, context, precision = _op_of(c)
    current = states(dvvset.values(local)) if local is not None else None
    if current is not None and current[0] != kind:
        raise DatatypeError(f"the key holds a {current[0]}, not a {kind}")
    lim = crdt.Limits(
        max_elements=limits.max_elements, max_depth=limits.max_depth, hll_precision=precision
    )
    state = current[1] if current is not None else crdt.new(kind, lim)
    ctx = crdt.decode_context(context) if context else None
    new = crdt.apply(kind, state, op, actor, context=ctx, now_us=c.last_modified_us, limits=lim)
    return state_content(kind, new, c.last_modified_us)


def holds_states(obj: Clock[Content]) -> bool:
    """Whether any value of ``obj`` is a data type state (never dropped as a sibling)."""
    return any(v.content_type == CRDT_TYPE for v in dvvset.values(obj))
