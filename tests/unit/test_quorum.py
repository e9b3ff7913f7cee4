"""Quorum cores: every edge as a table row."""

from __future__ import annotations

import pytest

from dynamo.kv import dvvset, quorum
from dynamo.kv.object import Obj
from dynamo.kv.quorum import GetQuorum, Outcome, PutQuorum, Target
from http_api.types import Content, QuorumValue

P = [Target("a", True), Target("b", True), Target("c", True)]
WITH_FALLBACK = [Target("a", True), Target("b", True), Target("d", False, "c")]


def obj(value: bytes, actor: str = "x", base: Obj | None = None) -> Obj:
    ctx = dvvset.join(base) if base is not None else ()
    return dvvset.update(
        dvvset.new_with_context(ctx, Content(value=value, last_modified_us=1)), base, actor
    )


V1 = obj(b"v1")
V2 = obj(b"v2", base=V1)


@pytest.mark.parametrize(
    ("value", "default", "n_val", "n_eff", "want"),
    [
        ("one", "quorum", 3, 3, 1),
        ("quorum", "quorum", 3, 3, 2),
        ("all", "quorum", 3, 3, 3),
        ("default", "quorum", 3, 3, 2),
        ("default", "all", 5, 5, 5),
        ("default", 0, 3, 3, 0),
        ("default", "default", 3, 3, 2),
        (2, "quorum", 3, 3, 2),
        (0, "quorum", 3, 3, 0),
        ("quorum", "quorum", 3, 1, 1),  # a one-node cluster has one replica
        ("all", "quorum", 3, 2, 2),
        (3, "quorum", 3, 1, 1),
    ],
)
def test_resolve(
    value: QuorumValue, default: QuorumValue, n_val: int, n_eff: int, want: int
) -> None:
    assert quorum.resolve("r", value, default, n_val, n_eff) == want


def test_resolve_refuses_a_quorum_above_n_val() -> None:
    with pytest.raises(quorum.QuorumValueError, match="r=4 is above n_val 3"):
        quorum.resolve("r", 4, "quorum", 3, 3)


def feed(q: GetQuorum, replies: list[tuple[str, Obj | BaseException | None]]) -> Outcome:
    for node, result in replies:
        q.add_result(node, result)
        if q.enough():
            break
    return q.outcome()


@pytest.mark.parametrize(
    ("r", "pr", "notfound_ok", "basic_quorum", "targets", "replies", "want", "error"),
    [
        # all replies found
        (2, 0, True, False, P, [("a", V1), ("b", V1)], Outcome.OK, ""),
        # notfound counts toward r by default
        (2, 0, True, False, P, [("a", None), ("b", None)], Outcome.NOTFOUND, ""),
        (2, 0, True, False, P, [("a", None), ("b", V1)], Outcome.OK, ""),
        # notfound_ok=false: notfounds do not count, a later found answers
        (2, 0, False, False, P, [("a", None), ("b", V1), ("c", V1)], Outcome.OK, ""),
        # notfound_ok=false, everyone says notfound: notfound, not an error
        (2, 0, False, False, P, [("a", None), ("b", None), ("c", None)], Outcome.NOTFOUND, ""),
        # basic_quorum stops at a majority of notfounds
        (2, 0, False, True, P, [("a", None), ("b", None)], Outcome.NOTFOUND, ""),
        # too many failures
        (
            2,
            0,
            True,
            False,
            P,
            [("a", RuntimeError("down")), ("b", RuntimeError("down"))],
            Outcome.ERROR,
            "R-value unsatisfied: 0/2",
        ),
        (
            3,
            0,
            True,
            False,
            P,
            [("a", V1), ("b", V1), ("c", TimeoutError("t"))],
            Outcome.ERROR,
            "R-value unsatisfied: 2/3",
        ),
        # primaries versus fallbacks
        (
            2,
            3,
            True,
            False,
            WITH_FALLBACK,
            [("a", V1), ("b", V1), ("d", V1)],
            Outcome.ERROR,
            "PR-value unsatisfied: 1/3",
        ),  # fails as soon as it cannot be met
        (3, 0, True, False, WITH_FALLBACK, [("a", V1), ("b", V1), ("d", V1)], Outcome.OK, ""),
        (2, 2, True, False, WITH_FALLBACK, [("d", V1), ("a", V1), ("b", V1)], Outcome.OK, ""),
    ],
)
def test_get_quorum(
    r: int,
    pr: int,
    notfound_ok: bool,
    basic_quorum: bool,
    targets: list[Target],
    replies: list[tuple[str, Obj | BaseException | None]],
    want: Outcome,
    error: str,
) -> None:
    q = GetQuorum(tuple(targets), r=r, pr=pr, notfound_ok=notfound_ok, basic_quorum=basic_quorum)
    assert feed(q, replies) is want
    if error:
        assert q.error() == error


def test_get_merges_siblings_and_repairs_stale_replicas() -> None:
    other = obj(b"other", actor="y")
    q = GetQuorum(tuple(P), r=2, pr=0)
    q.add_result("a", V2)
    q.add_result("b", other)
    assert q.enough()
    merged = q.merged()
    assert merged is not None
    assert sorted(c.value for c in dvvset.values(merged)) == [b"other", b"v2"]
    q.add_result("c", None)
    action = q.final_action()
    assert action is not None
    assert {t.node for t in action.targets} == {"a", "b", "c"}


def test_no_read_repair_when_replicas_agree() -> None:
    q = GetQuorum(tuple(P), r=2, pr=0)
    for n in "abc":
        q.add_result(n, V2)
    assert q.final_action() is None


def test_get_with_allow_mult_off_keeps_the_newest() -> None:
    old = obj(b"old", actor="x")
    new = dvvset.update(dvvset.new(Content(value=b"new", last_modified_us=2)), None, "y")
    q = GetQuorum(tuple(P), r=2, pr=0, allow_mult=False)
    q.add_result("a", old)
    q.add_result("b", new)
    merged = q.merged()
    assert merged is not None
    assert [c.value for c in dvvset.values(merged)] == [b"new"]


def test_a_replica_answers_once() -> None:
    q = GetQuorum(tuple(P), r=2, pr=0)
    q.add_result("a", V1)
    q.add_result("a", V1)
    assert q.num_ok == 1
    assert not q.enough()


@pytest.mark.parametrize(
    ("w", "pw", "dw", "targets", "acks", "want", "error"),
    [
        (2, 0, 0, P, [("a", True, False), ("b", True, False)], Outcome.OK, ""),
        (3, 0, 0, P, [("a", True, False), ("b", True, False)], Outcome.PENDING, ""),
        (
            2,
            0,
            0,
            P,
            [("a", True, False), ("b", RuntimeError("x"), False), ("c", RuntimeError("y"), False)],
            Outcome.ERROR,
            "W-value unsatisfied: 1/2",
        ),
        # pw counts only primaries
        (
            2,
            3,
            0,
            WITH_FALLBACK,
            [("a", True, False), ("b", True, False), ("d", True, False)],
            Outcome.ERROR,
            "PW-value unsatisfied: 2/3",
        ),
        (
            3,
            0,
            0,
            WITH_FALLBACK,
            [("a", True, False), ("b", True, False), ("d", True, False)],
            Outcome.OK,
            "",
        ),
        # dw needs durable acks, and raises w to at least dw
        (1, 0, 2, P, [("a", True, True)], Outcome.PENDING, ""),
        (1, 0, 2, P, [("a", True, True), ("b", True, True)], Outcome.OK, ""),
        (
            1,
            0,
            3,
            P,
            [("a", True, True), ("b", True, False), ("c", True, False)],
            Outcome.ERROR,
            "DW-value unsatisfied: 1/3",
        ),
    ],
)
def test_put_quorum(
    w: int,
    pw: int,
    dw: int,
    targets: list[Target],
    acks: list[tuple[str, bool | BaseException, bool]],
    want: Outcome,
    error: str,
) -> None:
    q = PutQuorum(tuple(targets), w=w, pw=pw, dw=dw)
    for node, result, durable in acks:
        q.add_result(node, result, durable)
    assert q.outcome() is want
    if error:
        assert q.error() == error


@pytest.mark.parametrize(
    ("kind", "targets", "need", "need_p", "want"),
    [
        ("W", P, 2, 0, None),
        ("W", P[:1], 2, 0, "W-value unsatisfied: 1/2"),
        ("R", WITH_FALLBACK, 2, 3, "PR-value unsatisfied: 2/3"),
        ("W", [], 1, 0, "W-value unsatisfied: 0/1"),
    ],
)
def test_unreachable_quorum_answers_at_once(
    kind: str, targets: list[Target], need: int, need_p: int, want: str | None
) -> None:
    assert quorum.unreachable(kind, tuple(targets), need, need_p) == want


# --- Who coordinates a write, and the W clamp ---------------------------------------------------

P1, P2, P3 = (quorum.Target(n, True) for n in ("n1", "n2", "n3"))
F4 = quorum.Target("n4", False, "n3")


@pytest.mark.parametrize(
    ("node", "targets", "forwarded", "forward_to", "me", "writes_to"),
    [
        ("n1", (P1, P2, P3), False, (), P1, ("n1", "n2", "n3")),  # a primary coordinates
        ("n9", (P1, P2, P3), False, ("n1", "n2", "n3"), None, ("n9", "n1", "n2", "n3")),
        ("n4", (P1, P2, F4), False, ("n1", "n2"), F4, ("n1", "n2", "n4")),  # a fallback forwards
        ("n4", (F4,), False, (), F4, ("n4",)),  # only a fallback is up: it coordinates
        ("n9", (P1, P2, P3), True, (), None, ("n9", "n1", "n2", "n3")),  # never twice
        ("n9", (), False, (), None, ("n9",)),
    ],
)
def test_plan_put(
    node: str,
    targets: tuple[quorum.Target, ...],
    forwarded: bool,
    forward_to: tuple[str, ...],
    me: quorum.Target | None,
    writes_to: tuple[str, ...],
) -> None:
    plan = quorum.plan_put(node, targets, forwarded)
    assert plan.forward_to == forward_to
    assert plan.me == (me or quorum.Target(node, False, "n1" if targets else None))
    assert tuple(t.node for t in plan.targets) == writes_to


@pytest.mark.parametrize(("w", "dw", "want"), [(2, 0, 2), (1, 3, 3), (0, 0, 1), (3, 2, 3)])
def test_effective_w_counts_a_durable_ack_as_an_ack(w: int, dw: int, want: int) -> None:
    assert quorum.effective_w(w, dw) == want
    assert quorum.PutQuorum((P1, P2, P3), w=w, pw=0, dw=dw).w == want


def test_the_cores_say_when_every_reply_is_in() -> None:
    g = quorum.GetQuorum((P1, P2, P3), r=2, pr=0)
    g.add_result("n1", None)
    g.add_result("n1", None)  # a duplicate counts once
    g.add_result("n2", RuntimeError("down"))
    assert not g.all_in()
    g.add_result("n3", None)
    assert g.all_in()
    p = quorum.PutQuorum((P1, P2), w=2, pw=0, dw=0)
    p.add_result("n1", True)
    p.add_result("n2", RuntimeError("down"))
    assert p.all_in()
    p.add_target(F4)  # a stand-in asked after the failure: wait for it too
    assert not p.all_in()
    p.add_result("n4", True)
    assert p.all_in()
    assert p.outcome() is quorum.Outcome.OK
