"""The peer-selection policy (``gossip.peers``): whom a node gossips with."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gossip.peers import DOWN_PROBE_MAX, choose_peer

# -- peer selection ----------------------------------------------------------------


def test_nobody_to_talk_to() -> None:
    assert choose_peer(random.Random(1), [], [], [], "me") is None
    assert choose_peer(random.Random(1), ["me"], ["me"], ["me"], "me") is None


def test_a_newcomer_asks_a_seed() -> None:
    rng = random.Random(1)
    assert {choose_peer(rng, [], [], ["s1", "me"], "me") for _ in range(50)} == {"s1"}


def test_with_only_down_peers_it_probes_them_and_the_seeds() -> None:
    rng = random.Random(2)
    picks = Counter(choose_peer(rng, [], ["d"], ["s"], "me") for _ in range(1000))
    assert set(picks) == {"d", "s"}
    assert choose_peer(rng, [], ["d"], [], "me") == "d"


def test_mostly_a_live_peer_sometimes_a_seed_rarely_a_down_one() -> None:
    seed = 3
    rng = random.Random(seed)
    live = [f"n{i}" for i in range(9)]
    trials = 20_000
    picks = Counter(choose_peer(rng, live, ["dead"], ["seed"], "me") for _ in range(trials))
    assert picks["seed"] / trials == pytest.approx(1 / 10, abs=0.01), seed
    assert picks["dead"] / trials == pytest.approx(1 / 10, abs=0.01), seed
    assert "me" not in picks
    assert all(picks[n] > 0 for n in live)


def test_down_probes_are_capped() -> None:
    rng = random.Random(4)
    down = [f"d{i}" for i in range(100)]
    picks = [choose_peer(rng, ["a", "b"], down, [], "me") for _ in range(10_000)]
    share = sum(p in down for p in picks) / len(picks)
    assert share == pytest.approx(DOWN_PROBE_MAX, abs=0.01)


def test_choice_is_deterministic_for_a_seed() -> None:
    def run() -> list[str | None]:
        rng = random.Random(5)
        return [choose_peer(rng, ["a", "b", "c"], ["d"], ["s"], "me") for _ in range(100)]

    assert run() == run()
