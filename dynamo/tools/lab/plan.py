"""The commands that build and tear down a lab, as data: argv lists, nothing run here.

Building is ``up_plan``: the switch namespace and its bridge, the root namespace's
veth (its peer created straight inside the switch namespace), then per host a
namespace, ``lo`` up, a veth created inside the host namespace with its peer inside
the switch namespace (``ip -n NS link add ... peer ... netns SW``), so no host's
interface ever appears in the root namespace, even for a moment, and each host's nft
table. Tearing down is ``teardown_plan``: the root veth first (deleting it deletes
its peer, and it is the one name a leftover namespace could keep alive in the root
namespace), then every namespace (which deletes its interfaces and nft table).
Teardown commands may fail (the thing is already gone) and the shell goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dynamo.tools.lab.names import LabNames
from dynamo.tools.lab.nftrules import table_script
from dynamo.tools.lab.subnet import Addressing


@dataclass(frozen=True, slots=True, kw_only=True)
class Cmd:
    """One command: its argv, what it reads on stdin, and whether failing is tolerated."""

    argv: tuple[str, ...]
    stdin: str | None = None
    may_fail: bool = False


def _ip(*args: str, may_fail: bool = False) -> Cmd:
    return Cmd(argv=("ip", *args), may_fail=may_fail)


def _veth(where: tuple[str, ...], name: str, peer: str, peer_ns: str) -> Cmd:
    """Veth ``name`` where ``where`` says (``-n NS``, or the root), ``peer`` in ``peer_ns``."""
    return _ip(*where, "link", "add", name, "type", "veth", "peer", "name", peer, "netns", peer_ns)


def netns_exec(ns: str, argv: Sequence[str]) -> tuple[str, ...]:
    """The argv that runs ``argv`` inside namespace ``ns``."""
    return ("ip", "netns", "exec", ns, *argv)


def nft_cmd(ns: str, script: str) -> Cmd:
    """Apply an nft script inside ``ns`` as one transaction (``nft -f -``)."""
    return Cmd(argv=netns_exec(ns, ("nft", "-f", "-")), stdin=script)


def up_plan(names: LabNames, addressing: Addressing) -> list[Cmd]:
    """Every command that builds the lab, in order."""
    sw, br = names.switch_ns, names.bridge
    plen = str(addressing.subnet.prefixlen)
    cmds = [
        _ip("netns", "add", sw),
        _ip("-n", sw, "link", "set", "lo", "up"),
        _ip("-n", sw, "link", "add", br, "type", "bridge"),
        _ip("-n", sw, "link", "set", br, "up"),
        _veth((), names.root_veth, names.switch_root_veth, sw),
        _ip("-n", sw, "link", "set", names.switch_root_veth, "master", br, "up"),
        _ip("addr", "add", f"{addressing.root}/{plen}", "dev", names.root_veth),
        _ip("link", "set", names.root_veth, "up"),
    ]
    for i in range(names.hosts):
        ns, veth, port = names.host_ns(i), names.host_veth(i), names.switch_veth(i)
        cmds += [
            _ip("netns", "add", ns),
            _ip("-n", ns, "link", "set", "lo", "up"),
            _veth(("-n", ns), veth, port, sw),
            _ip("-n", sw, "link", "set", port, "master", br, "up"),
            _ip("-n", ns, "addr", "add", f"{addressing.hosts[i]}/{plen}", "dev", veth),
            _ip("-n", ns, "link", "set", veth, "up"),
            nft_cmd(ns, table_script()),
        ]
    return cmds


def teardown_plan(namespaces: Sequence[str], root_links: Sequence[str]) -> list[Cmd]:
    """Delete ``root_links``, then ``namespaces``; each may already be gone."""
    return [
        *(_ip("link", "del", link, may_fail=True) for link in root_links),
        *(_ip("netns", "del", ns, may_fail=True) for ns in namespaces),
    ]


def lab_teardown_plan(names: LabNames) -> list[Cmd]:
    """Everything one lab created, hosts before the switch."""
    return teardown_plan(names.namespaces(), [names.root_veth])
