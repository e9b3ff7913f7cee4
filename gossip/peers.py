"""Whom to gossip with this round: a pure policy shared by the service and the simulator.

Mostly a random live peer. Sometimes a seed, with probability ``1 / (live + 1)``: a
newcomer (no live peer yet) always asks a seed, and in a large cluster seeds are
asked rarely, which keeps them from becoming hot spots while still stitching
together clusters that formed separately. Sometimes a peer we believe down, with
probability ``down / (live + 1)`` capped at :data:`DOWN_PROBE_MAX`: that is how a
healed partition or a restarted node is noticed without wasting many rounds on
nodes that are really dead.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Final

__all__ = ["DOWN_PROBE_MAX", "choose_peer"]

#: Highest probability of spending a round on a peer believed down.
DOWN_PROBE_MAX: Final = 0.1


def choose_peer(
    rng: random.Random,
    live: Sequence[str],
    down: Sequence[str],
    seeds: Sequence[str],
    self_id: str,
) -> str | None:
    """Pick the peer for this round, or None when there is nobody to talk to.

    ``live`` and ``down`` are the known peers by the caller's failure detector;
    ``seeds`` are configured seeds (ids or addresses, whatever the caller dials).
    Entries equal to ``self_id`` are skipped everywhere. Deterministic for a given
    ``rng`` state and argument order.
    """
    live_peers = _without(live, self_id)
    down_peers = _without(down, self_id)
    seed_peers = _without(seeds, self_id)
    if not live_peers:
        if seed_peers and (not down_peers or rng.random() < 0.5):
            return rng.choice(seed_peers)
        return rng.choice(down_peers) if down_peers else None
    draw = rng.random()
    p_down = min(DOWN_PROBE_MAX, len(down_peers) / (len(live_peers) + 1))
    if draw < p_down:
        return rng.choice(down_peers)
    if seed_peers and draw < p_down + 1.0 / (len(live_peers) + 1):
        return rng.choice(seed_peers)
    return rng.choice(live_peers)


def _without(peers: Sequence[str], self_id: str) -> Sequence[str]:
    return [p for p in peers if p != self_id] if self_id in peers else peers
