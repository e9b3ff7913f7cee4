"""Offline checks of the systemd unit and its environment file, as one node per machine
and as ``dynamo start --processes`` (one node process per core)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from dynamo.node import config as config_mod
from dynamo.tools import supervisor
from dynamo.tools.cli import _passed_on, load_config
from tests.support.deploy import (
    CLOSE_S,
    ENV_EXAMPLE,
    FIELDS,
    HTTP_DRAIN_S,
    SUBPROCESS_TIMEOUT_S,
    SYSUSERS,
    UNIT,
    _clear_dynamo_env,
    _container_port,
    _dockerfile_lines,
    _exec_start,
    _parse_start,
    _statefulsets,
    _unit,
)

# Processes of one host under `dynamo start --processes`: a large host's cores.
HOST_PROCESSES = 64

# --- systemd ----------------------------------------------------------------------------------


def _unit_values(key: str) -> list[str]:
    """Every value of a key systemd accumulates (configparser keeps only the last)."""
    return [
        line.partition("=")[2].strip()
        for line in UNIT.read_text().splitlines()
        if line.partition("=")[0].strip() == key
    ]


def _seconds(span: str) -> float:
    """A systemd time span: "90", "90s", "1min 30s"."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "ms": 1e-3}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span)
    assert parts, span
    assert "".join(n + u for n, u in parts) == span.replace(" ", ""), span
    for number, unit in parts:
        assert unit in units, f"unit {unit} in {span}"
        total += float(number) * units[unit]
    return total


def _env_example() -> tuple[dict[str, str], set[str]]:
    """(variables set, names of every variable shown, commented out or not)."""
    values: dict[str, str] = {}
    shown: set[str] = set()
    for n, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        m = re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", stripped)
        if m is not None:
            shown.add(m[1])
            continue
        if stripped.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", stripped)
        assert m is not None, f"{ENV_EXAMPLE.name}:{n}: not NAME=value: {line!r}"
        assert m[1] not in values, f"{ENV_EXAMPLE.name}:{n}: {m[1]} set twice"
        assert "#" not in m[2], f"{ENV_EXAMPLE.name}:{n}: systemd keeps a trailing comment"
        values[m[1]] = m[2]
        shown.add(m[1])
    return values, shown


def test_unit_sections_and_service_settings() -> None:
    unit = _unit()
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    assert "network-online.target" in unit["Unit"]["After"].split()
    assert "network-online.target" in unit["Unit"]["Wants"].split()
    service = unit["Service"]
    assert service["Type"] == "simple"
    assert service["User"] not in ("", "root")
    assert service.get("DynamicUser") is None
    assert service["EnvironmentFile"] == "/etc/dynamo/dynamo.env"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert _seconds(service["TimeoutStopSec"]) >= HTTP_DRAIN_S + CLOSE_S
    # With --processes the supervisor stops its processes, killing them after its timeout.
    assert _seconds(service["TimeoutStopSec"]) >= supervisor.STOP_TIMEOUT_S + CLOSE_S
    assert service["KillMode"] == "mixed", "SIGTERM to the supervisor only, which passes it on"
    assert int(service["LimitNOFILE"]) >= 65536
    for key, want in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service.get(key) == want, f"{key}={service.get(key)}, want {want!r}"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    users = [line.split() for line in SYSUSERS.read_text().splitlines() if line.startswith("u ")]
    assert [u[1] for u in users] == [service["User"]], "dynamo.sysusers makes another user"


def test_unit_exec_start_runs_dynamo_start() -> None:
    argv = _exec_start()
    assert PurePosixPath(argv[0]).is_absolute(), "systemd wants an absolute path"
    assert argv[0] == "/opt/dynamo/.venv/bin/dynamo"
    _parse_start(argv)


def test_env_example_names_only_node_config_settings() -> None:
    values, shown = _env_example()
    for name in shown:
        assert name.startswith("DYNAMO_"), f"{name}: not a dynamo setting"
        field = name.removeprefix("DYNAMO_").lower()
        assert field in FIELDS, f"{name}: NodeConfig has no setting {field}"
    for field in (
        "node_id",
        "host",
        "http_port",
        "pb_port",
        "peer_port",
        "data_dir",
        "seeds",
        "cluster_name",
        "cluster_secret_file",
    ):
        assert f"DYNAMO_{field.upper()}" in values, f"the example does not set {field}"
    assert "DYNAMO_CLUSTER_SECRET" not in values, "the secret belongs in its file"
    assert values["DYNAMO_HOST"] not in ("0.0.0.0", "127.0.0.1", "localhost")
    # Shown, commented out: the default (the host name) is right for one node per machine.
    assert "DYNAMO_LOCATION" in shown, "the example does not explain DYNAMO_LOCATION"
    assert "DYNAMO_LOCATION" not in values, "a location set in the example is every host's"


def test_env_example_loads_and_fits_the_unit(secret_file: Path) -> None:
    values, _ = _env_example()
    unit_secret = PurePosixPath(values["DYNAMO_CLUSTER_SECRET_FILE"])
    assert unit_secret.is_relative_to("/etc/dynamo")
    cfg = config_mod.load({}, env={**values, "DYNAMO_CLUSTER_SECRET_FILE": str(secret_file)})
    assert cfg.secret() is not None
    assert all(s.endswith(f":{cfg.peer_port}") for s in cfg.seeds)
    assert len(cfg.seeds) >= 2, "with one seed, that node has no seed but itself"
    assert cfg.location == "", "the example leaves the location to the host name"
    # Same ports as the Kubernetes pods of every zone and the image.
    ports = {"http": cfg.http_port, "pb": cfg.pb_port, "peer": cfg.peer_port}
    for sts in _statefulsets():
        pods = {name: _container_port(name, sts) for name in ports}
        assert ports == pods, f"{sts['metadata']['name']}: {pods}"
    exposed = {
        int(p)
        for line in _dockerfile_lines()
        if line.startswith("EXPOSE ")
        for p in line.split()[1:]
    }
    assert set(ports.values()) == exposed
    # The node may write only under ReadWritePaths= (ProtectSystem=strict).
    writable = [p.lstrip("-") for v in _unit_values("ReadWritePaths") for p in v.split()]
    assert any(PurePosixPath(cfg.data_dir).is_relative_to(p) for p in writable), (
        f"{cfg.data_dir} is not under ReadWritePaths {writable}"
    )


def test_processes_of_one_host_get_disjoint_ports_and_writable_data_dirs(
    monkeypatch: pytest.MonkeyPatch, secret_file: Path
) -> None:
    """The example with ``dynamo start --processes``: each process's settings, as the
    supervisor derives them and the process loads them, fit the unit and the host."""
    values, _ = _env_example()
    env = {**values, "DYNAMO_CLUSTER_SECRET_FILE": str(secret_file)}
    _clear_dynamo_env(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    host = config_mod.load({}, env=env)
    layout = supervisor.layout_from(host, HOST_PROCESSES, 0)
    writable = [p.lstrip("-") for v in _unit_values("ReadWritePaths") for p in v.split()]
    procs = []
    for i in range(1, HOST_PROCESSES + 1):
        # What the supervisor runs: its own flags passed on, then the process's.
        argv = [*_exec_start()[:2], *_passed_on(_exec_start()[2:]), *layout.child_args(i)]
        procs.append(load_config(_parse_start(argv)))
    # The clients' ports, shared with SO_REUSEPORT; each process's own admin and peer port.
    assert {(p.shared_http_port, p.pb_port, p.pb_reuse_port) for p in procs} == {
        (host.http_port, host.pb_port, True)
    }
    own = [port for p in procs for port in (p.http_port, p.peer_port)]
    assert len(set(own)) == len(own), "two processes of the host share a port"
    assert not set(own) & {host.http_port, host.pb_port}, "a process's port is a shared one"
    assert all(0 < port < 65536 for port in own)
    # Distinct nodes in the host's one location, so no two hold replicas of one key.
    assert len({p.node_id for p in procs}) == HOST_PROCESSES
    assert {p.effective_location for p in procs} == {host.effective_location}
    data_dirs = {p.data_dir for p in procs}
    assert len(data_dirs) == HOST_PROCESSES
    for d in data_dirs:
        assert any(PurePosixPath(d).is_relative_to(w) for w in writable), f"{d} is read-only"
    # The first process is the host's seed address, as the example's seeds expect.
    assert procs[0].peer_addr == f"{host.host}:{host.peer_port}"


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit was checked with configparser only")
    # verify also checks that ExecStart's program exists: point it at a stand-in.
    stub = tmp_path / "dynamo"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    program = re.escape(f"ExecStart={_exec_start()[0]}")
    text = re.sub(f"^{program}", f"ExecStart={stub}", UNIT.read_text(), count=1, flags=re.M)
    assert f"\nExecStart={stub}" in text
    unit = tmp_path / "dynamo.service"
    unit.write_text(text)
    out = subprocess.run(
        [analyze, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
        cwd=tmp_path,
    )
    ours = [line for line in (out.stdout + out.stderr).splitlines() if "dynamo.service" in line]
    assert out.returncode == 0, out.stdout + out.stderr
    assert not ours, out.stdout + out.stderr


def test_systemd_analyze_security(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: hardening was checked key by key only")
    shutil.copy(UNIT, tmp_path / "dynamo.service")
    out = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", "dynamo.service"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
        cwd=tmp_path,
    )
    if "--offline" in out.stderr and out.returncode != 0:
        pytest.skip(f"this systemd-analyze cannot review a unit file offline: {out.stderr}")
    m = re.search(r"Overall exposure level for dynamo\.service: (\d+\.\d+)", out.stdout)
    assert m is not None, out.stdout + out.stderr
    assert float(m[1]) <= 2.0, f"exposure {m[1]} (0 best, 10 worst):\n{out.stdout}"
