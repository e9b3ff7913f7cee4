"""Sloppy quorum: which node stands in for a replica that failed during a write.

The Dynamo paper's hinted handoff: when a primary does not acknowledge, the write
goes to the next node of the preference list beyond the N it already uses, with a
hint naming the primary it stands in for. The ring computes the fallbacks in
order (``ring.Ring.fallbacks``); the quorum cores only track the targets they are
given; this is the one place the choice is made. Pure.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence


def choose_stand_in(fallbacks: Sequence[str], taken: Collection[str]) -> str | None:
    """The first fallback not already a target of the write (None: there is none left).

    ``fallbacks`` are in the order the ring gives them (nearest first); ``taken``
    holds every node the write already uses, stand-ins chosen before included.
    """
    return next((n for n in fallbacks if n not in taken), None)
