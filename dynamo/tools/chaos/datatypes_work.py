"""``dynamo chaos --workload counters|sets``: data type workloads and their checks.

- ``counters``: clients add a random amount (1 to 3, now and then minus 1) to counters
  of a ``counter`` bucket type. At the end a counter must equal the sum of the
  acknowledged amounts plus some subset of the indeterminate ones (a timed-out
  update may or may not have been applied): below the lowest such sum an
  acknowledged increment was lost, above the highest one was counted twice.
- ``sets``: clients add unique elements to sets of a ``set`` bucket type and later
  remove some of their own, with the context of a fetch that saw them. An element
  whose add was acknowledged must be there at the end unless its remove was
  acknowledged too; an element whose remove was acknowledged must be gone (nobody
  adds it again, so it coming back is a resurrection).

The same ``carts.History`` and ``carts.Verdict`` as the cart workload carry the outcome.
Used by ``dynamo chaos`` (over HTTP) and the simulation (calling nodes directly): the
transport comes in as two callables, ``update`` and ``fetch``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from dynamo.tools import carts
from http_api.types import Datatype

WORKLOADS = ("carts", "counters", "sets")
TYPES = {"counters": ("counters", "counter"), "sets": ("sets", "set")}
BUCKET = "chaos"


@dataclass
class Ledger:
    """Amounts per key: acknowledged, and indeterminate (positive and negative apart)."""

    acked: dict[str, int] = field(default_factory=dict)
    maybe_up: dict[str, int] = field(default_factory=dict)
    maybe_down: dict[str, int] = field(default_factory=dict)
    removed: dict[str, set[str]] = field(default_factory=dict)  # sets: acked removes


#: Send an operation: (bucket type, key, operation, context) -> None, or raise as carts does.
Update = Callable[[str, str, dict[str, Any], bytes | None], Awaitable[None]]
#: Fetch a data type: (bucket type, key) -> its value and context.
Fetch = Callable[[str, str], Awaitable[Datatype]]


async def counter_client(
    history: carts.History,
    ledger: Ledger,
    client: int,
    keys: list[str],
    rng: random.Random,
    update: Update,
    keep_going: Callable[[], bool],
    pause: Callable[[], Awaitable[None]],
) -> None:
    btype = TYPES["counters"][0]
    n = 0
    while keep_going():
        key = rng.choice(keys)
        n += 1
        amount = -1 if rng.random() < 0.1 else rng.randint(1, 3)
        op_id = f"c{client}-{n}"
        history.ops += 1
        try:
            await update(btype, key, {"increment": amount}, None)
        except carts.ServerBug as e:
            history.bugs.append(f"increment {key}: {e}")
            _maybe(ledger, key, amount)
        except carts.Indeterminate:
            history.indeterminate.setdefault(key, set()).add(op_id)
            _maybe(ledger, key, amount)
        except carts.Refused:
            history.refused += 1
        else:
            history.acked.setdefault(key, set()).add(op_id)
            ledger.acked[key] = ledger.acked.get(key, 0) + amount
        await pause()


def _maybe(ledger: Ledger, key: str, amount: int) -> None:
    book = ledger.maybe_up if amount > 0 else ledger.maybe_down
    book[key] = book.get(key, 0) + abs(amount)


async def set_client(
    history: carts.History,
    ledger: Ledger,
    client: int,
    keys: list[str],
    rng: random.Random,
    update: Update,
    fetch: Fetch,
    keep_going: Callable[[], bool],
    pause: Callable[[], Awaitable[None]],
) -> None:
    btype = TYPES["sets"][0]
    mine: list[tuple[str, str]] = []  # (key, element) whose add was acknowledged
    n = 0
    while keep_going():
        history.ops += 1
        if mine and rng.random() < 0.25:
            key, element = mine.pop(rng.randrange(len(mine)))
            await _remove(history, ledger, btype, key, element, update, fetch)
        else:
            key = rng.choice(keys)
            n += 1
            element = f"c{client}-{n}"
            try:
                await update(btype, key, {"add": element}, None)
            except carts.ServerBug as e:
                history.bugs.append(f"add to {key}: {e}")
                history.indeterminate.setdefault(key, set()).add(element)
            except carts.Indeterminate:
                history.indeterminate.setdefault(key, set()).add(element)
            except carts.Refused:
                history.refused += 1
            else:
                history.acked.setdefault(key, set()).add(element)
                mine.append((key, element))
        await pause()


async def _remove(
    history: carts.History,
    ledger: Ledger,
    btype: str,
    key: str,
    element: str,
    update: Update,
    fetch: Fetch,
) -> None:
    try:
        got = await fetch(btype, key)
    except carts.ServerBug as e:
        history.bugs.append(f"fetch {key}: {e}")
        return
    except (carts.Indeterminate, carts.Refused):
        history.reads_failed += 1
        return
    if element not in (got.value or []):
        # A quorum read may miss an add acknowledged by other replicas: try it later.
        history.reads_failed += 1
        return
    try:
        await update(btype, key, {"remove": element}, got.context)
    except carts.ServerBug as e:
        history.bugs.append(f"remove from {key}: {e}")
    except (carts.Indeterminate, carts.Refused):
        # The element may be gone or not: no longer an acknowledged add to look for.
        history.acked[key].discard(element)
        history.indeterminate.setdefault(key, set()).add(element)
    else:
        history.acked[key].discard(element)
        ledger.removed.setdefault(key, set()).add(element)


def check(
    workload: str,
    history: carts.History,
    ledger: Ledger,
    final: dict[str, Any],
    divergent: list[str],
) -> carts.Verdict:
    """The verdict on the final values (the module docstring says what must hold)."""
    verdict = carts.Verdict(divergent=sorted(divergent), bugs=list(history.bugs))
    keys = set(history.acked) | set(history.indeterminate) | set(ledger.removed)
    for key in sorted(keys):
        if key not in final:
            continue  # its final read failed: already a bug
        value = final[key]
        if workload == "counters":
            low = ledger.acked.get(key, 0) - ledger.maybe_down.get(key, 0)
            high = ledger.acked.get(key, 0) + ledger.maybe_up.get(key, 0)
            if value < low:
                verdict.lost[key] = {f"{low - value} acknowledged (of {value}, want >= {low})"}
            elif value > high:
                verdict.bugs.append(f"counter {key} is {value}, above the most possible {high}")
        else:
            present = set(value or [])
            missing = history.acked.get(key, set()) - present
            if missing:
                verdict.lost[key] = missing
            back = ledger.removed.get(key, set()) & present
            if back:
                verdict.bugs.append(f"removed from {key} but back: {sorted(back)[:10]}")
    return verdict
