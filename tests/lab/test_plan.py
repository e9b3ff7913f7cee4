"""The commands a lab runs, as data: exact for one host, and the invariants for many."""

from __future__ import annotations

from ipaddress import IPv4Network

from dynamo.tools.lab.names import MAX_IFNAME_CHARS, LabNames
from dynamo.tools.lab.nftrules import table_script
from dynamo.tools.lab.plan import Cmd, lab_teardown_plan, netns_exec, nft_cmd, up_plan
from dynamo.tools.lab.subnet import plan_addresses

NAMES = LabNames(lab_id="dl00beef", hosts=1)
ADDRESSING = plan_addresses(IPv4Network("10.5.6.0/24"), 1)


def test_up_plan_for_one_host() -> None:
    argvs = [" ".join(c.argv) for c in up_plan(NAMES, ADDRESSING)]
    assert argvs == [
        "ip netns add dl00beef-sw",
        "ip -n dl00beef-sw link set lo up",
        "ip -n dl00beef-sw link add dl00beef-br type bridge",
        "ip -n dl00beef-sw link set dl00beef-br up",
        "ip link add dl00beef-r type veth peer name dl00beef-sr netns dl00beef-sw",
        "ip -n dl00beef-sw link set dl00beef-sr master dl00beef-br up",
        "ip addr add 10.5.6.1/24 dev dl00beef-r",
        "ip link set dl00beef-r up",
        "ip netns add dl00beef-h0",
        "ip -n dl00beef-h0 link set lo up",
        "ip -n dl00beef-h0 link add dl00beef-h0 type veth peer name dl00beef-s0 netns dl00beef-sw",
        "ip -n dl00beef-sw link set dl00beef-s0 master dl00beef-br up",
        "ip -n dl00beef-h0 addr add 10.5.6.2/24 dev dl00beef-h0",
        "ip -n dl00beef-h0 link set dl00beef-h0 up",
        "ip netns exec dl00beef-h0 nft -f -",
    ]
    last = up_plan(NAMES, ADDRESSING)[-1]
    assert last.stdin == table_script()
    assert not any(c.may_fail for c in up_plan(NAMES, ADDRESSING))  # building must not fail


def test_only_the_root_veth_is_ever_made_in_the_root_namespace() -> None:
    names = LabNames(lab_id="dl00beef", hosts=5)
    cmds = up_plan(names, plan_addresses(IPv4Network("10.5.6.0/24"), 5))
    in_root = [c.argv for c in cmds if c.argv[1] == "link" and c.argv[2] == "add"]
    assert in_root == [("ip", "link", "add", "dl00beef-r", "type", "veth", "peer", "name",
                        "dl00beef-sr", "netns", "dl00beef-sw")]  # fmt: skip
    created = [
        c.argv[c.argv.index("add") + 1] for c in cmds if "add" in c.argv and "link" in c.argv
    ]
    assert all(len(name) <= MAX_IFNAME_CHARS for name in created)


def test_teardown_removes_the_root_veth_then_hosts_then_the_switch_and_tolerates_gone() -> None:
    cmds = lab_teardown_plan(LabNames(lab_id="dl00beef", hosts=2))
    assert [" ".join(c.argv) for c in cmds] == [
        "ip link del dl00beef-r",
        "ip netns del dl00beef-h0",
        "ip netns del dl00beef-h1",
        "ip netns del dl00beef-sw",
    ]
    assert all(c.may_fail for c in cmds)


def test_commands_in_a_host_go_through_ip_netns_exec() -> None:
    assert netns_exec("dl00beef-h0", ["python", "-c", "pass"]) == (
        "ip", "netns", "exec", "dl00beef-h0", "python", "-c", "pass",
    )  # fmt: skip
    assert nft_cmd("dl00beef-h1", "list ruleset\n") == Cmd(
        argv=("ip", "netns", "exec", "dl00beef-h1", "nft", "-f", "-"), stdin="list ruleset\n"
    )
