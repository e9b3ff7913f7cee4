"""The limits a data type is held to: the bucket's (passed in) and the format's (fixed).

:class:`Limits` is the policy a bucket type sets; the node passes it to every
call that can grow a state, never the data types reading it themselves. The
``MAX_*`` constants bound what any encoded state may hold whatever the bucket
says, so that decoding a stored or received state is bounded too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from dynamo.kv.crdt.errors import CrdtError

__all__ = [
    "MAX_ACTOR_CHARS",
    "MAX_CLOCK_ENTRIES",
    "MAX_COUNT",
    "MAX_DEPTH",
    "MAX_HLL_PRECISION",
    "MAX_STATE_BYTES",
    "MIN_HLL_PRECISION",
    "Limits",
    "check_actor",
    "check_text",
]

#: An actor is a node (or vnode) id, as gossip bounds node ids.
MAX_ACTOR_CHARS: Final = 255
#: Most actors a clock (or a client's context) may name: far above any cluster's nodes.
MAX_CLOCK_ENTRIES: Final = 4096
#: Counters, clock counters and timestamps are int64 on the wire.
MAX_COUNT: Final = 2**63 - 1
#: Deepest nesting of maps any state may hold; a bucket's ``max_depth`` may not exceed it.
MAX_DEPTH: Final = 32
#: Largest encoded state decode accepts (the object size limit normally binds far earlier).
MAX_STATE_BYTES: Final = 64 * 1024 * 1024
#: HyperLogLog precisions Riak allows (``hll_precision``): 2**4 to 2**16 registers.
MIN_HLL_PRECISION: Final = 4
MAX_HLL_PRECISION: Final = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """What a bucket type allows a data type to grow to. Bad values fail at construction."""

    #: Most elements of one set (or gset), fields of one map, or pending (deferred)
    #: removes: bounds a state's size and the work of one operation; too low refuses
    #: legitimate writes.
    max_elements: int = 100_000
    #: Deepest nesting of maps (the top map is depth 1): deep maps cost recursion on
    #: every read and merge.
    max_depth: int = 8
    #: HyperLogLog registers are 2**hll_precision bytes; the standard error is
    #: 1.04 / sqrt(2**hll_precision) (0.81% at the default 14).
    hll_precision: int = 14

    def __post_init__(self) -> None:
        if type(self.max_elements) is not int or self.max_elements < 1:
            raise ValueError(f"max_elements must be an int >= 1, got {self.max_elements!r}")
        if type(self.max_depth) is not int or not 1 <= self.max_depth <= MAX_DEPTH:
            raise ValueError(f"max_depth must be an int in 1..{MAX_DEPTH}, got {self.max_depth!r}")
        if type(self.hll_precision) is not int or not (
            MIN_HLL_PRECISION <= self.hll_precision <= MAX_HLL_PRECISION
        ):
            raise ValueError(
                f"hll_precision must be an int in {MIN_HLL_PRECISION}..{MAX_HLL_PRECISION}, "
                f"got {self.hll_precision!r}"
            )


def check_text(value: object, what: str) -> str:
    """``value`` if it is a str that encodes as UTF-8 (elements, field names, register values)."""
    if type(value) is not str:
        raise CrdtError(f"{what} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise CrdtError(f"{what} must be valid Unicode text (it holds a lone surrogate)")
    return value


def check_actor(actor: object) -> str:
    """``actor`` if it is a str of 1..MAX_ACTOR_CHARS chars."""
    if type(actor) is not str or not 0 < len(actor) <= MAX_ACTOR_CHARS:
        raise CrdtError(f"actor must be a str of 1..{MAX_ACTOR_CHARS} chars, got {actor!r:.80}")
    return check_text(actor, "actor")
