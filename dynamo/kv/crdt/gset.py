"""The grow-only set (riak_dt_gset): elements are added and never removed.

With no removes there is nothing to tell apart, so the state is the elements
alone and the merge is their union: commutative, associative, idempotent, and
no clock, no context, no precondition.

Ops: ``{"add": e}``, ``{"add_all": [e, ...]}`` (combinable). Value: the sorted
list of elements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dynamo.kv.crdt import wire
from dynamo.kv.crdt.errors import CrdtError, LimitError
from dynamo.kv.crdt.limits import Limits, check_text
from dynamo.kv.crdt.vclock import VClock

__all__ = ["GSet", "apply", "clock", "from_wire", "merge", "new", "parse_op", "to_wire", "value"]

_OP_HELP = 'send {"add": e} or {"add_all": [..]} (it never removes)'


@dataclass(frozen=True, slots=True)
class GSet:
    """A grow-only set of strings."""

    elements: frozenset[str] = frozenset()


def new(limits: Limits) -> GSet:
    return GSet()


def parse_op(op: object, limits: Limits, kind: str = "gset") -> list[str]:
    """The elements an ``add``/``add_all`` op adds (shared with the HyperLogLog)."""
    if not isinstance(op, Mapping) or not op or not set(op) <= {"add", "add_all"}:
        raise CrdtError(f"bad {kind} op {op!r:.80}: {_OP_HELP}")
    out: list[str] = []
    if "add" in op:
        out.append(check_text(op["add"], "an element"))
    if "add_all" in op:
        many = op["add_all"]
        if not isinstance(many, list):
            raise CrdtError(f"'add_all' takes a list of strings: {_OP_HELP}")
        if len(many) > limits.max_elements:
            raise LimitError(
                f"max_elements: 'add_all' names {len(many)} elements, above the limit of "
                f"{limits.max_elements}"
            )
        out.extend(check_text(e, "an element") for e in many)
    return out


def apply(
    state: GSet, op: object, actor: str, *, context: VClock | None, now_us: int, limits: Limits
) -> GSet:
    added = parse_op(op, limits)
    elements = state.elements.union(added)
    if len(elements) > limits.max_elements:
        raise LimitError(
            f"max_elements: the gset would hold {len(elements)} elements, above the limit of "
            f"{limits.max_elements}"
        )
    return GSet(elements)


def merge(a: GSet, b: GSet) -> GSet:
    return a if a.elements >= b.elements else GSet(a.elements | b.elements)


def value(state: GSet) -> list[str]:
    return sorted(state.elements)


def clock(state: GSet) -> None:
    """A gset needs no context: nothing is ever removed."""
    return None


def to_wire(state: GSet) -> list[str]:
    """``[element, ...]`` sorted."""
    return sorted(state.elements)


def from_wire(body: object) -> GSet:
    items = wire.array(body, "gset")
    elements = frozenset(wire.text(e, "gset element") for e in items)
    if len(elements) != len(items):
        wire.fail("gset", "an element appears twice")
    return GSet(elements)
