"""The network faults in force in a lab, as layers, and the nft changes that apply them.

Each ``partition`` call and each flap is a named layer of cut (src, dst) pairs; what
the hosts drop is the union of the layers, so a flap healing its link never heals a
partition made beside it, and ``heal`` removes them all. After every change each
host's whole drop script is recomputed (``nftrules``) and only the hosts whose
script changed get an ``nft -f``. One lock orders the flap threads' changes with the
caller's, so the kernel's rules always match the layers of some moment.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence

from dynamo.tools.lab import shell
from dynamo.tools.lab.flap import Flap, flap_schedule
from dynamo.tools.lab.nftrules import Pair, drops_script, host_scripts, partition_pairs, union
from dynamo.tools.lab.plan import nft_cmd

log = logging.getLogger(__name__)


class Faults:
    """The fault layers of the hosts whose namespaces and addresses are given (by index)."""

    def __init__(self, namespaces: Sequence[str], addresses: Sequence[str], *, label: str) -> None:
        if len(namespaces) != len(addresses):
            raise ValueError("one address per namespace: the lists must have the same length")
        self.namespaces = tuple(namespaces)
        self.addresses = tuple(addresses)
        self.label = label
        self.flaps: list[Flap] = []
        self._layers: dict[str, frozenset[Pair]] = {}
        self._applied = [drops_script(())] * len(namespaces)  # the chains up_plan made: empty
        self._lock = threading.RLock()
        self._seq = 0

    def partition(self, side_a: Iterable[int], side_b: Iterable[int], *, symmetric: bool) -> None:
        pairs = self._pairs(side_a, side_b, symmetric)
        self.set_layer(self._next_name("partition"), pairs)

    def flap(
        self,
        side_a: Iterable[int],
        side_b: Iterable[int],
        *,
        period_s: float,
        duration_s: float,
        symmetric: bool,
    ) -> Flap:
        pairs = self._pairs(side_a, side_b, symmetric)
        schedule = flap_schedule(period_s, duration_s)
        name = self._next_name("flap")
        flap = Flap(
            schedule,
            lambda cut: self.set_layer(name, pairs if cut else None),
            name=f"{self.label}-{name}",
        )
        self.flaps.append(flap)
        return flap.start()

    def stop_flaps(self) -> list[Exception]:
        """Stop every flap (each heals its own layer); returns the errors they ended with."""
        errors: list[Exception] = []
        for flap in list(self.flaps):
            try:
                flap.stop()
            except Exception as e:
                errors.append(e)
        self.flaps.clear()
        return errors

    def heal(self) -> None:
        """Stop every flap and remove every layer: no host drops anything."""
        for e in self.stop_flaps():
            log.warning("%s: a flap had failed before heal: %r", self.label, e)
        with self._lock:
            for name in list(self._layers):
                self.set_layer(name, None)

    def cut_pairs(self) -> frozenset[Pair]:
        with self._lock:
            return union(self._layers)

    def set_layer(self, name: str, pairs: frozenset[Pair] | None) -> None:
        """Set (or with None remove) one layer and bring every host's rules in line."""
        with self._lock:
            if pairs is None:
                self._layers.pop(name, None)
            else:
                self._layers[name] = pairs
            scripts = host_scripts(union(self._layers), self.addresses)
            for i, script in enumerate(scripts):
                if script != self._applied[i]:
                    shell.run(nft_cmd(self.namespaces[i], script))
                    self._applied[i] = script

    def _pairs(
        self, side_a: Iterable[int], side_b: Iterable[int], symmetric: bool
    ) -> frozenset[Pair]:
        hosts = len(self.namespaces)
        return partition_pairs(set(side_a), set(side_b), symmetric=symmetric, hosts=hosts)

    def _next_name(self, kind: str) -> str:
        with self._lock:
            self._seq += 1
            return f"{kind}-{self._seq}"
