"""Whole-cluster gossip in a seeded simulation: convergence, loss, partitions, failures.

Every assertion message carries the seed: rerun with ``SimConfig(seed=...)`` to replay.
"""

from __future__ import annotations

import math

import pytest

from gossip.membership import KEY_ADDR, bucket_props, set_bucket_props
from gossip.sim import SimConfig, Simulation

pytestmark = pytest.mark.sim

SEEDS = (1, 2, 3)


def log_bound(nodes: int, slack: int) -> int:
    return math.ceil(math.log2(nodes)) + slack


def converged(nodes: int, seed: int, **config: float) -> Simulation:
    sim = Simulation(SimConfig(nodes=nodes, seed=seed, **config))  # type: ignore[arg-type]
    rounds = sim.run_until(Simulation.all_know_all, 100)
    assert rounds is not None, f"never converged (seed {seed})"
    return sim


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("nodes", [10, 100])
def test_every_node_learns_every_member_in_log_n_rounds(nodes: int, seed: int) -> None:
    sim = Simulation(SimConfig(nodes=nodes, seed=seed))
    assert [len(n.sb) for n in sim.nodes.values()] == [1] * nodes  # only themselves
    rounds = sim.run_until(Simulation.all_know_all, 100)
    assert rounds is not None, f"never converged (seed {seed})"
    assert rounds <= log_bound(nodes, 3), f"{rounds} rounds (seed {seed})"
    assert sim.network.dropped == 0, f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_ten_percent_message_loss_slows_but_does_not_stop_convergence(seed: int) -> None:
    nodes = 100
    sim = Simulation(SimConfig(nodes=nodes, seed=seed, loss=0.1))
    rounds = sim.run_until(Simulation.all_know_all, 100)
    assert rounds is not None, f"never converged (seed {seed})"
    assert rounds <= 2 * log_bound(nodes, 1), f"{rounds} rounds (seed {seed})"
    assert sim.network.dropped > 0, f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_killed_node_is_suspected_everywhere_within_bounded_time(seed: int) -> None:
    sim = converged(100, seed)
    for _ in range(5):
        sim.run_round()
    victim = "n0042"
    sim.kill(victim)
    rounds = sim.run_until(lambda s: s.suspected_everywhere(victim), 60)
    assert rounds is not None, f"never suspected everywhere (seed {seed})"
    assert rounds * sim.config.round_s <= 25.0, f"{rounds} s (seed {seed})"
    assert sim.false_suspicions() == [], f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_no_live_node_is_suspected_once_detectors_have_warmed_up(seed: int) -> None:
    sim = converged(50, seed)
    for _ in range(20):
        sim.run_round()
    for _ in range(40):
        sim.run_round()
        assert sim.false_suspicions() == [], f"round {sim.rounds} (seed {seed})"


@pytest.mark.parametrize("seed", SEEDS)
def test_bucket_props_set_on_one_node_reach_all(seed: int) -> None:
    sim = converged(50, seed)
    origin = sim.nodes["n0007"].sb
    set_bucket_props(origin, "users", {"n_val": 5, "allow_mult": False}, sim.clock.now())
    want = {"users": {"n_val": 5, "allow_mult": False}}
    rounds = sim.run_until(lambda s: all(bucket_props(n.sb) == want for n in s.live_nodes()), 30)
    assert rounds is not None, f"seed {seed}"
    assert rounds <= log_bound(50, 4), f"{rounds} rounds (seed {seed})"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_healed_partition_exchanges_what_changed_on_both_sides(seed: int) -> None:
    sim = converged(20, seed)
    for _ in range(20):
        sim.run_round()  # detectors learn the rhythm
    left, right = sim.ids[:10], sim.ids[10:]
    sim.partition(left, right)
    set_bucket_props(sim.nodes[left[3]].sb, "left", {"n_val": 1}, sim.clock.now())
    set_bucket_props(sim.nodes[right[3]].sb, "right", {"n_val": 2}, sim.clock.now())
    for _ in range(20):
        sim.run_round()
    now = sim.clock.now()
    for side, other, bucket in ((left, right, "right"), (right, left, "left")):
        for node_id in side:
            node = sim.nodes[node_id]
            assert bucket not in bucket_props(node.sb), f"seed {seed}"
            assert node.detector.split(other, now) == ([], other), f"seed {seed}"
            up = [n for n in side if n != node_id]
            assert node.detector.split(side, now)[0] == up, f"seed {seed}"

    sim.heal()
    want = {"left": {"n_val": 1}, "right": {"n_val": 2}}
    rounds = sim.run_until(
        lambda s: (
            all(bucket_props(n.sb) == want for n in s.live_nodes()) and not s.false_suspicions()
        ),
        40,
    )
    assert rounds is not None, f"partition never healed (seed {seed})"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("generation", "want"), [(5, 5), (0, 2)])
def test_a_restarted_node_replaces_its_old_state_everywhere(
    seed: int, generation: int, want: int
) -> None:
    """Generation 0 < 1 stands for a restart with a stale clock: it moves above 1."""
    sim = converged(30, seed)
    sim.nodes["n0013"].sb.set_local("old", "from the first life")
    for _ in range(10):
        sim.run_round()
    node = sim.restart("n0013", generation, addr="10.9.9.9:7000")
    assert node.sb.nodes() == ["n0013"]

    def replaced(s: Simulation) -> bool:
        return all(
            n.sb.generation("n0013") == want
            and n.sb.get("n0013", KEY_ADDR) == "10.9.9.9:7000"
            and n.sb.get("n0013", "old") is None
            for n in s.live_nodes()
        )

    rounds = sim.run_until(replaced, 40)
    assert rounds is not None, f"old state survived (seed {seed})"
    assert node.sb.own_generation_bumps == (1 if generation == 0 else 0), f"seed {seed}"
    for _ in range(5):
        sim.run_round()
    assert sim.false_suspicions() == [], f"seed {seed}"


def test_the_same_seed_gives_the_same_run_with_or_without_decoding() -> None:
    def run(decode: bool) -> tuple[int | None, int, dict[str, tuple[int, int]]]:
        sim = Simulation(SimConfig(nodes=40, seed=9, loss=0.05, decode=decode))
        rounds = sim.run_until(Simulation.all_know_all, 50)
        for _ in range(5):
            sim.run_round()
        total = sum(sim.network.bytes_sent.values())
        return rounds, total, dict(sim.nodes["n0000"].sb.make_syn().digest)

    first = run(decode=True)
    assert run(decode=True) == first
    assert run(decode=False) == first


@pytest.mark.timeout(450)  # 6x its run on a slowish day: a slow day is 2x
def test_a_thousand_nodes_know_every_member_within_25_rounds() -> None:
    """The issue's bound, from one seed each (messages are encoded, not decoded: the same
    run, faster; ``test_the_same_seed_gives_the_same_run_with_or_without_decoding``)."""
    sim = Simulation(SimConfig(nodes=1000, seed=1, decode=False))
    rounds = sim.run_until(Simulation.all_know_all, 25)
    assert rounds is not None, "not converged within 25 rounds (seed 1)"
    assert rounds <= 25
