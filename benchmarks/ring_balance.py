"""Ring balance, moved share and lookup cost for S = 3, 5, 10, 20 nodes.

Run: ``.venv/bin/python benchmarks/ring_balance.py [--tokens 64] [--sets 200] [--seed 1]``

For each cluster size S it prints, for the members ``node1 .. nodeS``:

* ``max/mean``: the largest first-primary share over the mean share (1.0 is perfect);
* ``add``/``remove``: the exact share of the keyspace whose first primary moves when a
  node joins (``node{S+1}``) or ``nodeS`` leaves, as a multiple of the ideal 1/(S+1)
  (resp. 1/S); ``add n=3`` is the share whose replica set (n_val 3) changes, as a
  multiple of the ideal 3/(S+1);
* over ``--sets`` random member sets (seeded): the median and worst max/mean and the
  range of the add factor, which is what the property tests' bounds are drawn from;
* ``preflist``: microseconds per ``Ring.preflist(position, 3)``, no node down and one
  primary down.
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import timeit

from ring import Ring, key_position, moved_share

SIZES = (3, 5, 10, 20)
ALPHABET = string.ascii_lowercase + string.digits


def random_members(rng: random.Random, count: int) -> set[str]:
    members: set[str] = set()
    while len(members) < count:
        length = rng.randint(1, 12)
        members.add(
            "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(length))
        )
    return members


def preflist_us(ring: Ring, down: tuple[str, ...]) -> float:
    positions = [key_position(b"bench", str(i).encode()) for i in range(1000)]

    def run() -> None:
        for position in positions:
            ring.preflist(position, 3, down)

    best = min(timeit.repeat(run, number=20, repeat=5))
    return best / (20 * len(positions)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64, help="tokens per node")
    parser.add_argument("--sets", type=int, default=200, help="random member sets per size")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random member sets")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(
        f"tokens per node {args.tokens}, {args.sets} random member sets per size, seed {args.seed}"
    )
    print(
        f"{'S':>3} {'max/mean':>8} {'add':>6} {'remove':>6} {'add n=3':>8} "
        f"{'rand p50':>8} {'rand max':>8} {'add range':>12} {'preflist us':>14}"
    )
    for size in SIZES:
        members = [f"node{i}" for i in range(1, size + 1)]
        ring = Ring(members, args.tokens)
        grown = Ring([*members, f"node{size + 1}"], args.tokens)
        shrunk = Ring(members[:-1], args.tokens)
        add = moved_share(ring, grown) * (size + 1)
        remove = moved_share(ring, shrunk) * size
        add3 = moved_share(ring, grown, n=3) * (size + 1) / min(3, size + 1)

        ratios: list[float] = []
        add_factors: list[float] = []
        for _ in range(args.sets):
            sample = sorted(random_members(rng, size + 1))  # sorted: reproducible per seed
            newcomer = sample.pop(rng.randrange(size + 1))
            before = Ring(sample, args.tokens)
            ratios.append(before.balance().max_over_mean)
            after = Ring([*sample, newcomer], args.tokens)
            add_factors.append(moved_share(before, after) * (size + 1))

        up = preflist_us(ring, ())
        one_down = preflist_us(ring, (members[0],))
        print(
            f"{size:>3} {ring.balance().max_over_mean:>8.3f} "
            f"{add:>6.3f} {remove:>6.3f} {add3:>8.3f} "
            f"{statistics.median(ratios):>8.3f} {max(ratios):>8.3f} "
            f"{min(add_factors):>5.2f}..{max(add_factors):<5.2f} {up:>6.2f} / {one_down:<5.2f}"
        )


if __name__ == "__main__":
    main()
