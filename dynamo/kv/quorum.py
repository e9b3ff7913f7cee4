"""Quorum decisions as pure values, after Riak's ``riak_kv_get_core`` and put FSM.

A core is built per request from the resolved quorum values and the annotated
preference list; the coordinator feeds it replies (``add_result``), asks
``enough()`` after each, answers with ``response()``, and once every reply is
in (or the timeout passed) carries out ``final_action()`` (read repair).
Errors carry their numbers: ``R-value unsatisfied: 1/2`` means 1 of the 2
needed replies arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from dynamo.kv import dvvset
from dynamo.kv import object as objects
from dynamo.kv.object import Obj
from http_api.types import QuorumValue


class QuorumValueError(ValueError):
    """A quorum parameter that cannot be met by the bucket's n_val."""


def resolve(name: str, value: QuorumValue, default: QuorumValue, n_val: int, n_eff: int) -> int:
    """A quorum value as a count of replicas.

    Words resolve against ``n_eff``, the effective replica count
    ``min(n_val, cluster size)``; integers above ``n_val`` are refused, and
    integers above ``n_eff`` are capped to it (a cluster smaller than n_val
    has only n_eff replicas of anything).
    """
    if value == "default":
        value = default
        if value == "default":
            value = "quorum"
    if value == "one":
        return 1
    if value == "quorum":
        return n_eff // 2 + 1
    if value == "all":
        return n_eff
    if isinstance(value, int) and not isinstance(value, bool):
        if value > n_val:
            raise QuorumValueError(
                f"{name}={value} is above n_val {n_val}: lower it to {n_val} or less"
            )
        return min(value, n_eff)
    raise QuorumValueError(f"{name}={value!r} is not a quorum: use an integer, one, quorum or all")


def effective_w(w: int, dw: int) -> int:
    """W as a write counts it: a durable ack is an ack, so at least DW, and at least 1.
    The one place this clamp is written (the put core and the reachability check)."""
    return max(w, dw, 1)


class Outcome(Enum):
    PENDING = "pending"
    OK = "ok"
    NOTFOUND = "notfound"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Target:
    """One replica asked: a node, whether it is a primary, and whose hint it holds."""

    node: str
    primary: bool
    hint_for: str | None = None


@dataclass(frozen=True, slots=True)
class ReadRepair:
    """Send ``obj`` to these replicas after answering the client."""

    targets: tuple[Target, ...]
    obj: Obj


@dataclass(slots=True)
class GetQuorum:
    """The decision of one quorum read."""

    targets: tuple[Target, ...]
    r: int
    pr: int
    notfound_ok: bool = True
    basic_quorum: bool = False
    allow_mult: bool = True
    replies: dict[str, Obj | None] = field(default_factory=dict)  # None = notfound
    failed: dict[str, str] = field(default_factory=dict)
    num_ok: int = 0
    num_pok: int = 0
    num_notfound: int = 0
    _merged: Obj | None = None

    @property
    def n(self) -> int:
        return len(self.targets)

    def _target(self, node: str) -> Target:
        for t in self.targets:
            if t.node == node:
                return t
        raise KeyError(node)

    def add_result(self, node: str, result: Obj | BaseException | None) -> None:
        """A replica's answer: its copy, ``None`` for notfound, or the error it failed with."""
        t = self._target(node)
        if node in self.replies or node in self.failed:
            return
        if isinstance(result, BaseException):
            self.failed[node] = str(result) or type(result).__name__
            return
        self.replies[node] = result
        self._merged = None
        if result is None:
            self.num_notfound += 1
            if not self.notfound_ok:
                return
        self.num_ok += 1
        if t.primary:
            self.num_pok += 1

    @property
    def received(self) -> int:
        return len(self.replies) + len(self.failed)

    def all_in(self) -> bool:
        """Every target answered or failed: read repair may be decided."""
        return self.received >= self.n

    def _remaining_primaries(self) -> int:
        return sum(
            1
            for t in self.targets
            if t.primary and t.node not in self.replies and t.node not in self.failed
        )

    def outcome(self) -> Outcome:
        if self.num_ok >= self.r and self.num_pok >= self.pr:
            return Outcome.NOTFOUND if self.merged() is None else Outcome.OK
        remaining = self.n - self.received
        fails = len(self.failed) + (0 if self.notfound_ok else self.num_notfound)
        if self.basic_quorum and not self.notfound_ok and fails >= self.n // 2 + 1:
            return self._failed_outcome()
        if self.num_ok + remaining < self.r or self.num_pok + self._remaining_primaries() < self.pr:
            return self._failed_outcome()
        return Outcome.PENDING

    def _failed_outcome(self) -> Outcome:
        # Not enough to answer, but what did answer says "not found" (before the PR
        # check, as in Riak: a key that is nowhere is a 404, not a 503).
        if self.num_notfound and self.num_notfound + self.num_ok >= self.r:
            return Outcome.NOTFOUND if self.merged() is None else Outcome.ERROR
        return Outcome.ERROR

    def enough(self) -> bool:
        return self.outcome() is not Outcome.PENDING

    def merged(self) -> Obj | None:
        """``sync`` of every copy received; ``None`` when none was found."""
        if self._merged is None:
            found = [o for o in self.replies.values() if o is not None]
            if not found:
                return None
            acc = found[0]
            for o in found[1:]:
                acc = objects.merge(acc, o, self.allow_mult)
            self._merged = acc
        return self._merged

    def error(self) -> str:
        if self.num_pok < self.pr:
            return f"PR-value unsatisfied: {self.num_pok}/{self.pr}"
        return f"R-value unsatisfied: {self.num_ok}/{self.r}"

    def final_action(self) -> ReadRepair | None:
        """Repair every replica that answered with less than the merged copy."""
        merged = self.merged()
        if merged is None:
            return None
        vv = dvvset.join(merged)
        stale = tuple(
            self._target(node)
            for node, obj in self.replies.items()
            if obj is None or (obj is not merged and dvvset.join(obj) != vv)
        )
        return ReadRepair(stale, merged) if stale else None


@dataclass(slots=True)
class PutQuorum:
    """The decision of one quorum write (the coordinator's own write included)."""

    targets: tuple[Target, ...]
    w: int
    pw: int
    dw: int
    acked: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    num_w: int = 0
    num_pw: int = 0
    num_dw: int = 0

    def __post_init__(self) -> None:
        self.w = effective_w(self.w, self.dw)

    @property
    def n(self) -> int:
        return len(self.targets)

    def add_target(self, target: Target) -> None:
        """A stand-in asked after a target failed (it may still make the quorum)."""
        self.targets = (*self.targets, target)

    def add_result(self, node: str, result: bool | BaseException, durable: bool = False) -> None:
        """A replica's ack (``True``), or the error it failed with."""
        t = next(t for t in self.targets if t.node == node)
        if node in self.acked or node in self.failed:
            return
        if isinstance(result, BaseException) or not result:
            self.failed[node] = str(result) or "refused"
            return
        self.acked.add(node)
        self.num_w += 1
        if t.primary:
            self.num_pw += 1
        if durable:
            self.num_dw += 1

    def outcome(self) -> Outcome:
        if self.num_w >= self.w and self.num_pw >= self.pw and self.num_dw >= self.dw:
            return Outcome.OK
        remaining = [
            t for t in self.targets if t.node not in self.acked and t.node not in self.failed
        ]
        if (
            self.num_w + len(remaining) < self.w
            or self.num_pw + sum(1 for t in remaining if t.primary) < self.pw
            or self.num_dw + len(remaining) < self.dw
        ):
            return Outcome.ERROR
        return Outcome.PENDING

    def enough(self) -> bool:
        return self.outcome() is not Outcome.PENDING

    def all_in(self) -> bool:
        """Every target (stand-ins included) acked or failed."""
        return len(self.acked) + len(self.failed) >= self.n

    def error(self) -> str:
        if self.num_pw < self.pw:
            return f"PW-value unsatisfied: {self.num_pw}/{self.pw}"
        if self.num_w < self.w:
            return f"W-value unsatisfied: {self.num_w}/{self.w}"
        return f"DW-value unsatisfied: {self.num_dw}/{self.dw}"


def unreachable(
    kind: str, targets: tuple[Target, ...], need: int, need_primaries: int
) -> str | None:
    """The error to answer at once when the live targets cannot make the quorum.

    ``kind`` is ``"R"`` or ``"W"``; returns ``None`` when the quorum is reachable.
    """
    primaries = sum(1 for t in targets if t.primary)
    if primaries < need_primaries:
        return f"P{kind}-value unsatisfied: {primaries}/{need_primaries}"
    if len(targets) < need:
        return f"{kind}-value unsatisfied: {len(targets)}/{need}"
    return None


@dataclass(frozen=True, slots=True)
class PutPlan:
    """Who coordinates a write: forward it to ``forward_to`` in turn (the first primary
    that can be reached coordinates; one that cannot be connected to certainly did not
    get it), and if that list is empty or none can be reached, coordinate it here with
    ``me`` among ``targets``."""

    forward_to: tuple[str, ...]
    me: Target
    targets: tuple[Target, ...]


def plan_put(node_id: str, targets: tuple[Target, ...], forwarded: bool) -> PutPlan:
    """Only a live primary coordinates (its clock entries stay bounded by the replicas);
    a write forwarded here is never forwarded again. A node outside the preference list
    that must coordinate (every primary unreachable, or a ring that differs from the
    forwarder's) keeps its copy as a hint for the first primary and writes to all."""
    me = next((t for t in targets if t.node == node_id), None)
    first_primary = next((t for t in targets if t.primary), None)
    forward_to: tuple[str, ...] = ()
    if not forwarded and (me is None or (not me.primary and first_primary is not None)):
        forward_to = tuple(t.node for t in targets if t.primary) or tuple(
            t.node for t in targets[:1]
        )
    if me is None:
        me = Target(node_id, False, first_primary.node if first_primary else None)
        return PutPlan(forward_to, me, (me, *targets))
    return PutPlan(forward_to, me, targets)
