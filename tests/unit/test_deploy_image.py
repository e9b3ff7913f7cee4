"""Offline checks of the Dockerfile and of what a non-editable install ships."""

from __future__ import annotations

import re
import tomllib
from pathlib import PurePosixPath

from tests.support.deploy import (
    DOCKERIGNORE,
    ROOT,
    _dockerfile_lines,
    _dockerfile_uid,
    _exec_start,
    _pod_spec,
)

# --- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_installs_the_project_on_python_311_slim() -> None:
    lines = _dockerfile_lines()
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert bases, "no FROM"
    assert all(b == "python:3.11-slim" for b in bases), bases
    assert any(re.search(r"\bpip install\b.*'\.(\[[\w,]+\])?'", line) for line in lines)
    copied = {
        src.rstrip("/")
        for line in lines
        if line.startswith("COPY ") and "--from" not in line
        for src in line.split()[1:-1]
    }
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert copied >= packages | {"pyproject.toml", pyproject["project"]["readme"]}
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert not copied & ignored, f"the .dockerignore drops {copied & ignored}"
    exposed = {int(p) for line in lines if line.startswith("EXPOSE ") for p in line.split()[1:]}
    assert exposed == {8087, 8098, 8099}
    assert _dockerfile_uid() == _pod_spec()["securityContext"]["runAsUser"]
    (entry,) = [line for line in lines if line.startswith("ENTRYPOINT ")]
    assert entry == 'ENTRYPOINT ["dynamo"]'
    # The same install path as the systemd unit's ExecStart.
    venv_bin = str(PurePosixPath(_exec_start()[0]).parent)
    assert any(line.startswith("ENV PATH=" + venv_bin) for line in lines)


def test_pip_install_ships_every_subpackage() -> None:
    """A non-editable install (the Dockerfile's, the systemd install's) must ship every
    subpackage ``dynamo.tools.cli`` imports, not only the top-level packages."""
    from setuptools import find_packages  # type: ignore[import-untyped]

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = set(find_packages(where=str(ROOT), include=include))
    expected = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in (p.rstrip("*") for p in include)
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert expected <= shipped, f"a pip install would not ship {sorted(expected - shipped)}"
