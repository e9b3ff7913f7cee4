"""The lab: simulated hosts on one machine, each its own network namespace on a bridge.

``Lab(hosts)`` builds (see ``plan``) a switch namespace with a Linux bridge, one
namespace per host with its own IPv4 address on the bridge, and a veth from the root
namespace, so the test process reaches every host by IP. Processes run inside a host
with ``spawn`` (``processes``); a host is lost with ``kill_host`` or frozen with
``pause_host``; the network fails with ``partition``/``flap`` (silent drops, see
``nftrules`` and ``faults``) and is repaired with ``heal``. Silent drops are the one
fault a TCP proxy cannot give: packets vanish, connections hang until their timeouts.

Teardown is guaranteed in layers: ``down()`` (idempotent), context exit (whatever
the exception), a failed ``up()`` undoing itself, the atexit and SIGTERM hooks of
``lifecycle``, and, for a process that died without any of those (``kill -9``),
``cleanup_stale`` run before every new lab. ``down()`` ends by checking that no
namespace or interface with the lab id remains, and raises naming it if one does.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Network
from pathlib import Path
from types import TracebackType

from dynamo.tools.lab import lifecycle, shell
from dynamo.tools.lab.errors import LabError
from dynamo.tools.lab.faults import Faults
from dynamo.tools.lab.flap import Flap
from dynamo.tools.lab.names import PREFIX, LabNames, lab_id_of, new_lab_id
from dynamo.tools.lab.nftrules import TABLE_FAMILY, TABLE_NAME, Pair
from dynamo.tools.lab.plan import lab_teardown_plan, nft_cmd, up_plan
from dynamo.tools.lab.processes import KILL_WAIT_S, HostProcesses
from dynamo.tools.lab.subnet import (
    Addressing,
    check_free,
    choose_subnet,
    networks_in_use,
    plan_addresses,
)

log = logging.getLogger(__name__)


class Lab:
    """``hosts`` simulated hosts (indexed from 0) on one bridge; a context manager.

    ``subnet``: the lab's IPv4 subnet (refused if the machine uses any of it); by
    default a free random /24 of 10.0.0.0/8. ``prefix`` starts every name the lab
    makes. ``rng`` draws the lab id and the subnet (default: the OS's randomness).
    """

    def __init__(
        self,
        hosts: int,
        *,
        subnet: str | IPv4Network | None = None,
        prefix: str = PREFIX,
        rng: random.Random | None = None,
        lock_dir: Path = lifecycle.LOCK_DIR,
    ) -> None:
        self._rng = rng or random.SystemRandom()
        self.prefix = prefix
        self.names = LabNames(lab_id=new_lab_id(self._rng, prefix), hosts=hosts)
        self._requested = IPv4Network(subnet) if subnet is not None else None
        if self._requested is not None:
            plan_addresses(self._requested, hosts)  # a subnet too small fails now, not in up()
        self._lock_dir = lock_dir
        self._owner = lifecycle.OwnerLock(self.names.lab_id, lock_dir)
        self._hosts = [HostProcesses(ns) for ns in self.names.host_namespaces()]
        self._addressing: Addressing | None = None
        self._faults: Faults | None = None
        self._used = False
        self._owned = False

    def up(self) -> Lab:
        """Build the lab (after removing dead labs' leftovers); undone if any step fails."""
        if self._used:
            raise LabError(f"lab {self.lab_id} was brought up before: make a new Lab")
        self._used = True
        shell.require_environment()
        lifecycle.cleanup_stale(self.prefix, lock_dir=self._lock_dir)
        if not self._owner.acquire():
            raise LabError(f"lab id {self.lab_id} is held by a live lab: make a new Lab")
        self._owned = True
        lifecycle.register(self)
        try:
            if self.leftovers():
                raise LabError(f"names of {self.lab_id} exist already: make a new Lab")
            in_use = networks_in_use(
                shell.ip_json("-4", "addr", "show"),
                shell.ip_json("-4", "route", "show", "table", "all"),
            )
            if self._requested is not None:
                subnet = check_free(self._requested, in_use)
            else:
                subnet = choose_subnet(in_use, self._rng)
            addressing = plan_addresses(subnet, self.hosts)
            for cmd in up_plan(self.names, addressing):
                shell.run(cmd)
            self._addressing = addressing
            self._faults = Faults(
                self.names.host_namespaces(),
                [str(a) for a in addressing.hosts],
                label=self.lab_id,
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self.down()
            raise
        return self

    def down(self) -> None:
        """Stop flaps, kill every process, delete everything; idempotent; checks it is all gone."""
        if self._faults is not None:
            for e in self._faults.stop_flaps():
                log.warning("lab %s: a flap ended with %r", self.lab_id, e)
        if not self._owned:
            return
        try:
            for host in self._hosts:
                host.signal(signal.SIGKILL)
            deadline = time.monotonic() + KILL_WAIT_S
            for host in self._hosts:
                host.reap(deadline)
            for cmd in lab_teardown_plan(self.names):
                shell.run(cmd)
        finally:
            self._owned = False
            self._owner.release()
            lifecycle.unregister(self)
        left = self.leftovers()
        if left:
            raise LabError(
                f"lab {self.lab_id} teardown left {left}: run cleanup_stale() as root,"
                " or delete them with `ip netns del NAME` / `ip link del NAME`"
            )

    def leftovers(self) -> list[str]:
        """Namespaces and root-namespace interfaces that carry this lab's id now."""
        found = [*shell.namespaces(), *shell.root_links()]
        return [n for n in found if lab_id_of(n, self.prefix) == self.lab_id]

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.down()
        except LabError:
            if exc is None:
                raise
            log.exception("lab %s: teardown failed while handling %r", self.lab_id, exc)

    @property
    def lab_id(self) -> str:
        return self.names.lab_id

    @property
    def hosts(self) -> int:
        return self.names.hosts

    @property
    def is_up(self) -> bool:
        return self._owned and self._addressing is not None

    @property
    def subnet(self) -> IPv4Network:
        return self._addr().subnet

    @property
    def root_address(self) -> str:
        """The root namespace's address on the lab's bridge."""
        return str(self._addr().root)

    def address(self, host: int) -> str:
        """Host ``host``'s IPv4 address."""
        return str(self._addr().hosts[self._check(host)])

    def namespace(self, host: int) -> str:
        """The network namespace of ``host`` (for ``ip netns exec``)."""
        return self.names.host_ns(self._check(host))

    def processes(self, host: int) -> list[subprocess.Popen[bytes]]:
        """Every process ``spawn`` started in ``host``, running or not."""
        return list(self._host(host).spawned)

    def spawn(
        self,
        host: int,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        log_path: Path | str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside ``host`` (``env``: the whole environment, None: this one's)."""
        return self._host(host).spawn(argv, env, log_path)

    def run(
        self, host: int, argv: Sequence[str], *, timeout_s: float = 10.0, input_text: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``host`` to completion, output captured (killed at timeout)."""
        return self._host(host).run(argv, timeout_s=timeout_s, input_text=input_text)

    def kill_host(self, host: int) -> list[int]:
        """SIGKILL every process of ``host`` at once (the host is lost); returns their pids."""
        h = self._host(host)
        pids = h.signal(signal.SIGKILL)
        if not h.reap(time.monotonic() + KILL_WAIT_S):
            raise LabError(f"host {host} still has processes {sorted(h.pids())} after SIGKILL")
        return pids

    def pause_host(self, host: int) -> list[int]:
        """SIGSTOP every process of ``host`` (its kernel still answers: TCP ACKs, ARP)."""
        return self._host(host).signal(signal.SIGSTOP)

    def resume_host(self, host: int) -> list[int]:
        """SIGCONT every process of ``host``."""
        return self._host(host).signal(signal.SIGCONT)

    def partition(
        self, side_a: Iterable[int], side_b: Iterable[int], symmetric: bool = True
    ) -> None:
        """Drop packets from A to B (and B to A when ``symmetric``) silently, until ``heal``."""
        self._fault().partition(side_a, side_b, symmetric=symmetric)

    def flap(
        self,
        side_a: int | Iterable[int],
        side_b: int | Iterable[int],
        *,
        period_s: float,
        duration_s: float,
        symmetric: bool = True,
    ) -> Flap:
        """Cut A-B for half of each ``period_s`` during ``duration_s``, then heal and stop."""
        a = {side_a} if isinstance(side_a, int) else side_a
        b = {side_b} if isinstance(side_b, int) else side_b
        return self._fault().flap(
            a, b, period_s=period_s, duration_s=duration_s, symmetric=symmetric
        )

    def heal(self) -> None:
        """Stop every flap and remove every drop rule."""
        self._fault().heal()

    def cut_pairs(self) -> frozenset[Pair]:
        """The (src, dst) host pairs whose packets are dropped now."""
        return self._fault().cut_pairs()

    def nft_table(self, host: int) -> str:
        """The kernel's view of ``host``'s lab table (``nft list table``)."""
        script = f"list table {TABLE_FAMILY} {TABLE_NAME}\n"
        return shell.run(nft_cmd(self.namespace(host), script))

    def _addr(self) -> Addressing:
        if self._addressing is None or not self._owned:
            raise LabError(f"lab {self.lab_id} is not up: call up() or use it in a `with`")
        return self._addressing

    def _fault(self) -> Faults:
        self._addr()
        assert self._faults is not None  # set with _addressing
        return self._faults

    def _check(self, host: int) -> int:
        if not 0 <= host < self.hosts:
            raise ValueError(f"host {host}: use an index from 0 to {self.hosts - 1}")
        return host

    def _host(self, host: int) -> HostProcesses:
        self._addr()
        return self._hosts[self._check(host)]

    def __repr__(self) -> str:
        where = f" on {self._addressing.subnet}" if self._addressing else ""
        return f"Lab({self.lab_id}, hosts={self.hosts}{where}, {'up' if self.is_up else 'down'})"
