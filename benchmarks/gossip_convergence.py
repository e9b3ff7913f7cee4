"""Scuttlebutt gossip convergence, failure detection and traffic at 10, 100, 1,000 nodes.

Run: ``.venv/bin/python benchmarks/gossip_convergence.py [--nodes 10 100 1000] [--seed 1]
[--loss 0.0]``

For each cluster size N, in one seeded simulation (``gossip.sim``: 1 round = 1 s, each
live node gossips once a round, each node starts knowing only itself and seed n0000):

* ``known``: rounds until every node knows every member;
* ``suspect``: then the last node is killed; rounds (= simulated seconds) until every
  other node's phi for it is at or above 8;
* ``B/node/round``: mean msgpack-encoded bytes of gossip messages sent per live node
  per round, while joining (the ``known`` rounds) and afterwards (the ``suspect``
  rounds, heartbeats flowing);
* ``false``: (observer, live node) pairs wrongly suspected at the end;
* ``wall``: seconds of real time for that N.

Messages are encoded for the byte count but not decoded (``SimConfig.decode=False``):
the same run as with decoding, faster. The target is ``known <= 25`` at 1,000 nodes.
"""

from __future__ import annotations

import argparse
import time

from gossip.sim import SimConfig, Simulation

MAX_ROUNDS = 200


def measure(nodes: int, seed: int, loss: float) -> tuple[str, ...]:
    start = time.perf_counter()
    sim = Simulation(SimConfig(nodes=nodes, seed=seed, loss=loss, decode=False))

    def sent() -> int:
        return sum(sim.network.bytes_sent.values())

    known = sim.run_until(Simulation.all_know_all, MAX_ROUNDS)
    join_bytes = sent() / nodes / max(1, sim.rounds)

    victim = sim.ids[-1]
    sim.kill(victim)
    before, rounds_before = sent(), sim.rounds
    suspect = sim.run_until(lambda s: s.suspected_everywhere(victim), MAX_ROUNDS)
    steady_rounds = max(1, sim.rounds - rounds_before)
    steady_bytes = (sent() - before) / (nodes - 1) / steady_rounds
    suspect_s = None if suspect is None else suspect * sim.config.round_s
    return (
        str(nodes),
        "never" if known is None else str(known),
        "never" if suspect is None else f"{suspect} ({suspect_s:g} s)",
        f"{join_bytes:,.0f}",
        f"{steady_bytes:,.0f}",
        str(len(sim.false_suspicions())),
        f"{time.perf_counter() - start:.1f}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--loss", type=float, default=0.0, help="message loss probability")
    args = parser.parse_args()
    header = (
        "N",
        "known (rounds)",
        "suspect (rounds)",
        "B/node/round join",
        "B/node/round steady",
        "false",
        "wall s",
    )
    widths = [len(h) for h in header]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)), flush=True)
    for nodes in args.nodes:
        row = measure(nodes, args.seed, args.loss)
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)), flush=True)


if __name__ == "__main__":
    main()
