"""What the lab tests run inside the simulated hosts, and how they wait.

The programs are tiny and self-contained (``python -c``), so a test reads whole on
one screen: a TCP echo server, a TCP probe that tells an answer from a refusal from
a silence, a UDP sink that prints every datagram it gets, and a UDP sender that
reports whether the kernel let it send. Every wait is ``wait_until``: a condition
polled against a deadline, never a sleep hoping the state has changed.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from dynamo.tools.lab import environment_problems

T = TypeVar("T")

PY = sys.executable
ECHO_PORT = 7000
CLOSED_PORT = 7001  # nothing listens here: an answer to it is a refusal
UDP_PORT = 7002

_problems = environment_problems()
# Every test that builds a real lab: marked, skipped with the reason where it cannot run,
# and bounded (a lab test takes a second or two; 20 s is a broken machine).
LAB_MARKS = [
    pytest.mark.lab,
    pytest.mark.skipif(bool(_problems), reason=f"no lab here: {'; '.join(_problems)}"),
    pytest.mark.timeout(20),
]

ECHO_SERVER = """
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
while True:
    conn, _ = server.accept()
    with conn:
        conn.settimeout(2)
        try:
            conn.sendall(conn.recv(64))
        except OSError:
            pass
"""

TCP_PROBE = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as c:
        c.sendall(b"ping")
        print("ok" if c.recv(64) == b"ping" else "bad answer")
except TimeoutError:
    print("timeout")
except ConnectionRefusedError:
    print("refused")
"""

UDP_SINK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    print(s.recv(256).decode(), flush=True)
"""

UDP_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[4])):
    s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
print("sent")
"""


def echo_server(address: str, port: int = ECHO_PORT) -> list[str]:
    return [PY, "-c", ECHO_SERVER, address, str(port)]


def tcp_probe(address: str, port: int = ECHO_PORT, timeout_s: float = 1.0) -> list[str]:
    return [PY, "-c", TCP_PROBE, address, str(port), str(timeout_s)]


def udp_sink(address: str, port: int = UDP_PORT) -> list[str]:
    return [PY, "-c", UDP_SINK, address, str(port)]


def udp_send(address: str, message: str, count: int = 3, port: int = UDP_PORT) -> list[str]:
    return [PY, "-c", UDP_SEND, address, str(port), message, str(count)]


def probe_from_root(address: str, port: int = ECHO_PORT, timeout_s: float = 1.0) -> str:
    """The TCP probe, run in this process (the root namespace)."""
    try:
        with socket.create_connection((address, port), timeout=timeout_s) as c:
            c.sendall(b"ping")
            return "ok" if c.recv(64) == b"ping" else "bad answer"
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"


def send_from_root(address: str, message: str, port: int = UDP_PORT) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(message.encode(), (address, port))


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_until(
    cond: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.02
) -> T:
    """Poll ``cond`` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)
