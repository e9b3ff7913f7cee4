"""Test certificates: a CA and a node certificate for 127.0.0.1, made with openssl."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def make_certs(d: Path, name: str) -> dict[str, Path]:
    """A CA and one certificate for 127.0.0.1 signed by it, with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (tests/setup.sh installs it as root)")
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(args, cwd=d, check=True, capture_output=True, timeout=60)

    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    run(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        f"/CN={name}",
        "-keyout",
        "node.key",
        "-out",
        "node.csr",
    )
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run(
        "openssl",
        "x509",
        "-req",
        "-in",
        "node.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "node.crt",
    )
    return {"ca": d / "ca.crt", "cert": d / "node.crt", "key": d / "node.key"}
