"""The HyperLogLog: an estimate of how many distinct elements were added (riak_kv_hll).

Each element is hashed (MurmurHash3, 64 bits); the top ``p`` bits pick one of
2**p registers, and the register keeps the greatest *rank* seen there: the
position of the first 1 bit in the other 64 - p bits (65 - p when all are 0).
The merge is the maximum per register, so it is commutative, associative and
idempotent, and adding an element twice changes nothing.

Precision ``p`` (Riak's ``hll_precision``, 4..16, default 14) is fixed when the
state is made. Two states of different precisions merge as Riak does, by
reducing the finer one to the coarser precision first. The reduction is exact,
not an approximation: a register of precision p is the maximum rank over the
elements that hash to it, and the rank at a coarser precision q follows from
the old register's index bits and rank alone, so the reduced state equals the
one precision q would have built from the same elements. Hence a merge of mixed
precisions still converges. An update whose bucket now asks a coarser precision
reduces the state the same way; a finer one cannot be recovered, so the state
keeps its own.

The estimate is Ertl's improved raw estimator (*New cardinality estimation
algorithms for HyperLogLog sketches*, 2017, algorithm 6). Its sigma term is the
small-range correction: while many registers are empty it reduces to linear
counting, m ln(m / empty registers); its tau term corrects the large range. It
needs no empirical bias tables and no switch-over threshold, and its relative
standard error is about 1.04 / sqrt(2**p) over the whole range.

Ops: ``{"add": e}``, ``{"add_all": [e, ...]}`` (combinable). Value: an int.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import mmh3

from dynamo.kv.crdt import gset, wire
from dynamo.kv.crdt.errors import CrdtError
from dynamo.kv.crdt.limits import MAX_HLL_PRECISION, MIN_HLL_PRECISION, Limits
from dynamo.kv.crdt.vclock import VClock

__all__ = [
    "Hll",
    "apply",
    "clock",
    "estimate",
    "from_wire",
    "merge",
    "new",
    "reduce_precision",
    "to_wire",
    "value",
]

_ALPHA_INF: Final = 1 / (2 * math.log(2))
_DENSE: Final = 0
_SPARSE: Final = 1


@dataclass(frozen=True, slots=True)
class Hll:
    """``precision`` and 2**precision registers, one byte each (0: nothing hashed there)."""

    precision: int
    registers: bytes


def new(limits: Limits) -> Hll:
    return Hll(limits.hll_precision, bytes(1 << limits.hll_precision))


def _slot(element: str, precision: int) -> tuple[int, int]:
    """The register an element hashes to, and its rank there."""
    h: int = mmh3.hash64(element.encode("utf-8"), signed=False)[0]
    rest_bits = 64 - precision
    rest = h & ((1 << rest_bits) - 1)
    return h >> rest_bits, rest_bits - rest.bit_length() + 1


def apply(
    state: Hll, op: object, actor: str, *, context: VClock | None, now_us: int, limits: Limits
) -> Hll:
    """``state`` with the op's elements added, reduced first if the bucket's precision fell."""
    elements = gset.parse_op(op, limits, "hll")
    if limits.hll_precision < state.precision:
        state = reduce_precision(state, limits.hll_precision)
    registers = bytearray(state.registers)
    for e in elements:
        index, rank = _slot(e, state.precision)
        if rank > registers[index]:
            registers[index] = rank
    return Hll(state.precision, bytes(registers))


def reduce_precision(state: Hll, precision: int) -> Hll:
    """The state ``precision`` would have built from the same elements (a coarser one)."""
    if not MIN_HLL_PRECISION <= precision <= state.precision:
        raise CrdtError(f"cannot reduce precision {state.precision} to {precision}")
    shift = state.precision - precision
    if shift == 0:
        return state
    low_mask = (1 << shift) - 1
    out = bytearray(1 << precision)
    for old, rank in enumerate(state.registers):
        if rank:
            low = old & low_mask
            # The new rank counts from the old index's low bits, then the old rest.
            new_rank = shift - low.bit_length() + 1 if low else shift + rank
            index = old >> shift
            if new_rank > out[index]:
                out[index] = new_rank
    return Hll(precision, bytes(out))


def merge(a: Hll, b: Hll) -> Hll:
    """The maximum per register, at the coarser of the two precisions."""
    if a.precision != b.precision:
        low = min(a.precision, b.precision)
        a, b = reduce_precision(a, low), reduce_precision(b, low)
    if a.registers == b.registers:
        return a
    return Hll(a.precision, bytes(map(max, a.registers, b.registers)))


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if z == previous:
            return z


def _tau(x: float) -> float:
    if x in (0.0, 1.0):
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if z == previous:
            return z / 3


def estimate(state: Hll) -> float:
    """Ertl's improved raw estimate of the number of distinct elements added."""
    m = len(state.registers)
    q = 64 - state.precision
    counts = [state.registers.count(k) for k in range(q + 2)]
    if counts[0] == m:
        return 0.0
    z = m * _tau(1.0 - counts[q + 1] / m)
    for k in range(q, 0, -1):
        z = 0.5 * (z + counts[k])
    z += m * _sigma(counts[0] / m)
    return _ALPHA_INF * m * m / z if z > 0 else float(2**64)


def value(state: Hll) -> int:
    return round(estimate(state))


def clock(state: Hll) -> None:
    """A HyperLogLog needs no context: nothing is ever removed."""
    return None


def to_wire(state: Hll) -> list[object]:
    """``[precision, 0, registers]`` (dense: one byte per register), or, while at most a
    third of the registers are set, ``[precision, 1, entries]`` (sparse: 2 bytes of index and
    1 of rank per set register, by index). The form follows from the state: canonical."""
    regs = state.registers
    set_count = len(regs) - regs.count(0)
    if 3 * set_count >= len(regs):
        return [state.precision, _DENSE, regs]
    sparse = b"".join(i.to_bytes(2, "big") + bytes((r,)) for i, r in enumerate(regs) if r)
    return [state.precision, _SPARSE, sparse]


def from_wire(body: object) -> Hll:
    precision, form, data = wire.array(body, "hll", 3)
    p = wire.integer(precision, "hll precision", MIN_HLL_PRECISION, MAX_HLL_PRECISION)
    m, top = 1 << p, 65 - p
    if type(data) is not bytes:
        wire.fail("hll", "registers must be bytes")
    if form == _DENSE and type(form) is int:
        if len(data) != m or (data and max(data) > top):
            wire.fail("hll", f"dense registers must be {m} bytes of 0..{top}")
        return Hll(p, data)
    if form != _SPARSE or type(form) is not int or len(data) % 3:
        wire.fail("hll", "form must be 0 (dense) or 1 (sparse, 3 bytes per register)")
    registers = bytearray(m)
    last = -1
    for at in range(0, len(data), 3):
        index = int.from_bytes(data[at : at + 2], "big")
        rank = data[at + 2]
        if not last < index < m or not 0 < rank <= top:
            wire.fail("hll", f"sparse entries must have rising indexes < {m}, ranks 1..{top}")
        registers[index] = rank
        last = index
    return Hll(p, bytes(registers))
