"""``dynamo start --processes K``: what each process of a host is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamo.tools.cli import _passed_on
from dynamo.tools.supervisor import HostLayout, parse_processes


def layout(**kw: object) -> HostLayout:
    base: dict[str, object] = dict(
        node_id="h1", processes=3, host="10.0.0.5", http_port=8098, pb_port=8087,
        peer_port=8099, admin_port=9098, data_dir=Path("/var/lib/dynamo"), location="rack-2",
    )  # fmt: skip
    base.update(kw)
    return HostLayout(**base)  # type: ignore[arg-type]


def flags(args: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in zip(args[::2], args[1::2], strict=False):
        out[name if name != "--set" else value.split("=")[0]] = value
    return out


def test_each_process_has_its_own_id_ports_and_data_and_shares_the_client_ports() -> None:
    lay = layout(seeds=("10.0.0.6:8099",))
    seen_ports: set[str] = set()
    for i in (1, 2, 3):
        args = lay.child_args(i)
        f = flags(args)
        assert f["--node-id"] == f"h1-{i}"
        assert f["--http-port"] == str(9097 + i)  # its own admin address
        assert f["--peer-port"] == str(8098 + i)
        assert f["--pb-port"] == "8087"  # shared...
        assert f["shared_http_port"] == "shared_http_port=8098"  # ...as is the HTTP port
        assert f["pb_reuse_port"] == "pb_reuse_port=true"
        assert f["--data-dir"] == f"/var/lib/dynamo/p{i}"
        assert f["--location"] == "rack-2"
        seeds = f["--seeds"].split(",")
        assert seeds[0] == "10.0.0.6:8099"
        assert sorted(seeds[1:]) == sorted(f"10.0.0.5:{8098 + j}" for j in (1, 2, 3) if j != i)
        seen_ports |= {f["--http-port"], f["--peer-port"]}
        assert "--new-cluster" not in args
    assert len(seen_ports) == 6
    assert lay.child_args(2) == layout(seeds=("10.0.0.6:8099",)).child_args(2)  # stable


def test_a_new_cluster_is_founded_by_the_first_process_only() -> None:
    lay = layout(new_cluster=True)
    assert "--new-cluster" in lay.child_args(1)
    assert "--seeds" not in lay.child_args(1)
    assert "--new-cluster" not in lay.child_args(2)
    assert flags(lay.child_args(2))["--seeds"] == "10.0.0.5:8099,10.0.0.5:8101"


def test_the_supervisors_own_flags_pass_on_but_the_per_process_ones() -> None:
    argv = [
        "--node-id", "h1", "--processes", "4", "--seeds=a:1", "--new-cluster",
        "--admin-port", "9000", "--set", "n_val=2", "--config", "c.toml",
    ]  # fmt: skip
    assert _passed_on(argv) == ["--node-id", "h1", "--set", "n_val=2", "--config", "c.toml"]


@pytest.mark.parametrize(("value", "want"), [("1", 1), ("16", 16)])
def test_processes_parse(value: str, want: int) -> None:
    assert parse_processes(value) == want
    assert parse_processes("auto") >= 1
    with pytest.raises(ValueError, match="auto"):
        parse_processes("0")
    with pytest.raises(ValueError, match="auto"):
        parse_processes("lots")
