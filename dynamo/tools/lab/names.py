"""Names of everything a lab creates, derived from one short lab id.

Every namespace and interface name starts with the lab id (``dl`` and 6 hex
digits, e.g. ``dl3f09a2``), so two labs, or the leftovers of a crashed run, never
collide, and ``cleanup_stale`` can find a lab's leftovers by name alone and touch
nothing else. Interface names must fit Linux's IFNAMSIZ (15 characters and a NUL):
with a prefix of at most 4 characters the longest name, ``<id>-h<index>``, fits for
every host index a /24 allows. Names are checked here, before any command runs.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

PREFIX = "dl"
ID_HEX_DIGITS = 6
MAX_PREFIX_CHARS = 4
MAX_IFNAME_CHARS = 15  # IFNAMSIZ (16) minus the terminating NUL

_PREFIX_RE = re.compile(rf"[a-z][a-z0-9]{{0,{MAX_PREFIX_CHARS - 1}}}")


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can start lab ids; ``ValueError`` saying what a prefix must be."""
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(
            f"lab prefix {prefix!r}: use 1-{MAX_PREFIX_CHARS} lowercase letters or digits,"
            " starting with a letter, so that every interface name fits 15 characters"
        )
    return prefix


def new_lab_id(rng: random.Random, prefix: str = PREFIX) -> str:
    """A fresh lab id: ``prefix`` and 6 hex digits drawn from ``rng``."""
    return f"{check_prefix(prefix)}{rng.getrandbits(4 * ID_HEX_DIGITS):0{ID_HEX_DIGITS}x}"


def lab_id_of(name: str, prefix: str = PREFIX) -> str | None:
    """The lab id a namespace or interface name belongs to, or None if no lab of ``prefix``'s."""
    pattern = rf"({re.escape(check_prefix(prefix))}[0-9a-f]{{{ID_HEX_DIGITS}}})-[a-z0-9]+"
    m = re.fullmatch(pattern, name)
    return m.group(1) if m else None


@dataclass(frozen=True, slots=True, kw_only=True)
class LabNames:
    """The names of one lab's namespaces and interfaces (hosts are indexed from 0).

    The switch namespace ``<id>-sw`` holds the bridge ``<id>-br``; host ``i`` is the
    namespace ``<id>-h<i>`` whose veth ``<id>-h<i>`` is paired with ``<id>-s<i>`` on the
    bridge; the root namespace's veth ``<id>-r`` is paired with ``<id>-sr``.
    """

    lab_id: str
    hosts: int

    def __post_init__(self) -> None:
        if self.hosts < 1:
            raise ValueError(f"hosts={self.hosts}: a lab needs at least 1 host")
        longest = self.host_veth(self.hosts - 1)
        if len(longest) > MAX_IFNAME_CHARS:
            raise ValueError(
                f"interface name {longest!r} is {len(longest)} characters, Linux allows"
                f" {MAX_IFNAME_CHARS}: use fewer hosts or a shorter prefix"
            )

    @property
    def switch_ns(self) -> str:
        return f"{self.lab_id}-sw"

    @property
    def bridge(self) -> str:
        return f"{self.lab_id}-br"

    @property
    def root_veth(self) -> str:
        return f"{self.lab_id}-r"

    @property
    def switch_root_veth(self) -> str:
        return f"{self.lab_id}-sr"

    def host_ns(self, i: int) -> str:
        return f"{self.lab_id}-h{i}"

    def host_veth(self, i: int) -> str:
        return f"{self.lab_id}-h{i}"

    def switch_veth(self, i: int) -> str:
        return f"{self.lab_id}-s{i}"

    def host_namespaces(self) -> tuple[str, ...]:
        return tuple(self.host_ns(i) for i in range(self.hosts))

    def namespaces(self) -> tuple[str, ...]:
        """Every namespace of the lab: the hosts', then the switch's."""
        return (*self.host_namespaces(), self.switch_ns)
