"""Riak-style convergent data types: pure cores the node calls (riak_dt's semantics).

A bucket type's ``datatype`` is one of :data:`KINDS`; an object of that bucket
stores one state of the kind, which replicas, read repair, anti-entropy and
handoff merge (never keep as siblings). Each kind lives in its own module:

========  =====================  ==========================================
kind      module                 decides
========  =====================  ==========================================
counter   :mod:`.counter`        PN counter: the sum of every increment
set       :mod:`.orset`          ORSWOT: an add the remover had not seen wins
gset      :mod:`.gset`           grow-only set: union
map       :mod:`.map`            fields of embedded types, observed-remove per field
hll       :mod:`.hll`            HyperLogLog estimate of distinct elements
flag      :mod:`.flag`           enable wins (Riak: only inside maps)
register  :mod:`.register`       last writer wins by (timestamp_us, actor)
========  =====================  ==========================================

``flag`` and ``register`` are accepted by every function here too, so they can
be stored and tested alone, but are not bucket datatypes (as in Riak). A map's
counter fields are :mod:`.emcounter`'s (a counter a field remove can reset);
:mod:`.vclock` holds the clocks and dots the observed-remove types share,
:mod:`.codec` the tagged encoding, :mod:`.limits` the bounds.

Every function is pure: no I/O, no clock (time comes in as ``now_us``), no
randomness. States are immutable values (frozen dataclasses over read-only
mappings, frozensets and tuples): :func:`apply` and :func:`merge` return new
states and never change their inputs. :func:`merge` is commutative,
associative and idempotent, so replicas that exchanged states in any order,
any number of times, hold equal states and encode them to equal bytes.

Errors (see :mod:`.errors`)::

    ValueError
     +-- CrdtError              a bad operation: the text says what to send instead
     |    +-- PreconditionError  e.g. removing what is not there (HTTP 412)
     |    +-- LimitError         the text names the limit passed
     +-- CrdtFormatError        bytes that are not a state or a context of ours
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from dynamo.kv.crdt import codec, counter, flag, gset, hll, orset, register, vclock
from dynamo.kv.crdt import map as crdt_map
from dynamo.kv.crdt.errors import CrdtError, CrdtFormatError, LimitError, PreconditionError
from dynamo.kv.crdt.limits import MAX_COUNT, Limits, check_actor

__all__ = [
    "KINDS",
    "CrdtError",
    "CrdtFormatError",
    "LimitError",
    "Limits",
    "PreconditionError",
    "apply",
    "context",
    "decode",
    "decode_context",
    "encode",
    "is_crdt",
    "merge",
    "new",
    "size_of",
    "value",
]

#: The bucket-type datatypes.
KINDS: Final = ("counter", "set", "gset", "map", "hll")
DEFAULT_LIMITS: Final = Limits()


class _Type(Protocol):
    """What every kind's module offers (mypy holds each to it)."""

    def new(self, limits: Limits) -> Any: ...
    def apply(
        self,
        state: Any,
        op: object,
        actor: str,
        *,
        context: vclock.VClock | None,
        now_us: int,
        limits: Limits,
    ) -> Any: ...
    def merge(self, a: Any, b: Any) -> Any: ...
    def value(self, state: Any) -> Any: ...
    def clock(self, state: Any) -> vclock.VClock | None: ...
    def to_wire(self, state: Any) -> object: ...
    def from_wire(self, body: object) -> Any: ...


#: Each kind's state class and module.
_TYPES: Final[dict[str, tuple[type, _Type]]] = {
    "counter": (counter.Counter, counter),
    "set": (orset.ORSwot, orset),
    "gset": (gset.GSet, gset),
    "map": (crdt_map.MapState, crdt_map),
    "hll": (hll.Hll, hll),
    "flag": (flag.Flag, flag),
    "register": (register.Register, register),
}


def _kind(kind: str) -> _Type:
    found = _TYPES.get(kind)
    if found is None:
        raise CrdtError(f"unknown datatype {kind!r:.40}: one of {', '.join(KINDS)}")
    return found[1]


def _state(kind: str, state: Any) -> _Type:
    module = _kind(kind)
    cls = _TYPES[kind][0]
    if type(state) is not cls:
        raise TypeError(f"a {kind} state is a {cls.__name__}, got {type(state).__name__}")
    return module


def new(kind: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """The empty state of ``kind`` (an HLL takes ``limits.hll_precision``)."""
    return _kind(kind).new(limits)


def apply(
    kind: str,
    state: Any,
    op: Any,
    actor: str,
    *,
    context: Any | None = None,
    now_us: int = 0,
    limits: Limits = DEFAULT_LIMITS,
) -> Any:
    """A new state: ``state`` with ``op`` (Riak's HTTP JSON for the kind) applied by ``actor``.

    ``context`` is what :func:`context` handed out (bytes), or what
    :func:`decode_context` made of it; only removes use it. ``now_us`` stamps
    register assignments. Raises CrdtError (or its PreconditionError, LimitError),
    and CrdtFormatError for context bytes that are not ours; the input is untouched.
    """
    k = _state(kind, state)
    check_actor(actor)
    if type(now_us) is not int or not 0 <= now_us <= MAX_COUNT:
        raise CrdtError(f"now_us must be an int in 0..{MAX_COUNT}, got {now_us!r:.40}")
    if isinstance(context, bytes):
        ctx = codec.decode_context(context)
    elif context is None:
        ctx = None
    elif isinstance(context, tuple | list):
        pairs = [list(p) if isinstance(p, tuple | list) else p for p in context]
        ctx = vclock.from_wire(pairs, "context")
    else:
        raise CrdtFormatError(f"context must be bytes or a clock, got {type(context).__name__}")
    return k.apply(state, op, actor, context=ctx, now_us=now_us, limits=limits)


def merge(kind: str, a: Any, b: Any) -> Any:
    """The state that has seen all ``a`` and ``b`` have: commutative, associative, idempotent."""
    k = _state(kind, a)
    _state(kind, b)
    return k.merge(a, b)


def value(kind: str, state: Any) -> Any:
    """The value as Riak's HTTP API shows it: int, sorted list, dict, bool or str."""
    return _state(kind, state).value(state)


def context(kind: str, state: Any) -> bytes:
    """The opaque causal context a fetch hands out (``b""`` for kinds that need none)."""
    return codec.encode_context(_state(kind, state).clock(state))


def decode_context(data: bytes) -> Any:
    """The clock context bytes carry (``None`` for ``b""``); CrdtFormatError if not ours."""
    return codec.decode_context(data)


def encode(kind: str, state: Any) -> bytes:
    """Canonical msgpack with the kind's tag and the format version."""
    return codec.pack(kind, _state(kind, state).to_wire(state))


def decode(data: bytes) -> tuple[str, Any]:
    """``(kind, state)`` of bytes :func:`encode` made; CrdtFormatError for anything else."""
    kind, body = codec.unpack(data)
    return kind, _TYPES[kind][1].from_wire(body)


def is_crdt(data: bytes) -> bool:
    """Whether stored bytes hold a data type state (a cheap check of the tag)."""
    return codec.is_crdt(data)


def size_of(kind: str, state: Any) -> int:
    """Bytes of the state's encoding, for the storage layer's size limit."""
    return len(encode(kind, state))
