"""Sloppy quorum: which node stands in for a replica that failed during a write.

The Dynamo paper's hinted handoff: when a primary does not acknowledge, the write
goes to the next node of the preference list beyond the N it already uses, with a
hint naming the primary it stands in for. The ring computes the fallbacks in
order (``ring.Ring.fallbacks``); the quorum cores only track the targets they are
given; this is the one place the choice is made. Pure.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence


def choose_stand_in(
    fallbacks: Sequence[str],
    taken: Collection[str],
    *,
    failed: Collection[str] = (),
    location: Mapping[str, str] | None = None,
) -> str | None:
    """The first fallback not already a target of the write (None: there is none left),
    preferring one from a location none of the write's live targets is in.

    ``fallbacks`` are in the order the ring gives them (nearest first); ``taken``
    holds every node the write already uses, stand-ins chosen before included;
    ``failed`` those of them that failed; ``location`` each node's failure domain (a
    node missing from it is its own).
    """
    free = [n for n in fallbacks if n not in taken]
    if location:
        held = {location.get(n, n) for n in taken if n not in failed}
        apart = next((n for n in free if location.get(n, n) not in held), None)
        if apart is not None:
            return apart
    return free[0] if free else None
