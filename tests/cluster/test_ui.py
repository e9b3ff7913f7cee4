"""``GET /admin/ui`` rendered by a real headless Chromium against a real 3-node cluster.

The page is one self-contained HTML file that polls the node's JSON endpoints. We let
Chromium run it under virtual time, then check the DOM hooks it promises (``<svg
id="ring">``, one ``g.arc`` and one ``tr.member`` per member, ``body[data-ready]``)
and that the screenshot really shows something: the node colors of the ring are
painted, among many other colors.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dynamo.tools.localcluster import wait_for
from http_api.admin import get_json
from tests.cluster.conftest import MakeCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMIUM_TIMEOUT_S = 90
VIRTUAL_TIME_BUDGET_MS = 10_000
SCREENSHOT_COPY = Path("/tmp/dynamo-ui.png")
# The first ring colors of the page's palette, in member order (n1, n2, n3).
NODE_COLORS = {"n1": (0x3B, 0x6C, 0xF6), "n2": (0xF5, 0x9E, 0x0B), "n3": (0x8B, 0x5C, 0xF6)}
MIN_DISTINCT_COLORS = 50


def find_chromium() -> str:
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.skip("headless Chromium not found (install Debian's `chromium`: bash tests/setup.sh)")


@pytest.fixture
def chromium() -> str:
    return find_chromium()


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-quic",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    env = {**os.environ, "HOME": str(profile)}  # keep crash reports and caches in tmp
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, env=env, check=False
    )
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


# ---- the rendered DOM ----


@dataclass
class UiDom:
    body_ready: str | None = None
    ring_svgs: int = 0
    arcs: list[str] = field(default_factory=list)
    members: dict[str, str] = field(default_factory=dict)  # node -> data-up


class UiDomParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.dom = UiDom()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "body":
            self.dom.body_ready = a.get("data-ready")
        elif tag == "svg" and a.get("id") == "ring":
            self.dom.ring_svgs += 1
        elif tag == "g" and "arc" in classes:
            self.dom.arcs.append(a.get("data-node") or "")
        elif tag == "tr" and "member" in classes:
            self.dom.members[a.get("data-node") or ""] = a.get("data-up") or ""


def parse_dom(html: str) -> UiDom:
    p = UiDomParser()
    p.feed(html)
    p.close()
    return p.dom


# ---- a minimal PNG decoder (8-bit RGB/RGBA, non-interlaced: what Chromium writes) ----


@dataclass(frozen=True, slots=True, kw_only=True)
class Png:
    width: int
    height: int
    channels: int
    rows: list[bytes]

    def pixels(self) -> Iterator[tuple[int, int, int]]:
        c = self.channels
        for row in self.rows:
            for i in range(0, len(row), c):
                yield row[i], row[i + 1], row[i + 2]


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data: bytes) -> Png:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, bytearray()
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8, f"bit depth {depth}"
            assert color in (2, 6), f"color type {color}"
            assert interlace == 0, "interlaced"
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    assert len(raw) == height * (stride + 1), "truncated image data"
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if ftype == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif ftype == 2:
            line = bytearray((x + b) & 0xFF for x, b in zip(line, prev, strict=True))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(channels):
                line[i] = (line[i] + prev[i]) & 0xFF
            for i in range(channels, stride):
                j = i - channels
                line[i] = (line[i] + _paeth(line[j], prev[i], prev[j])) & 0xFF
        else:
            assert ftype == 0, f"bad PNG filter {ftype}"
        rows.append(bytes(line))
        prev = line
    return Png(width=width, height=height, channels=channels, rows=rows)


# ---- the test ----


def test_ui_renders_ring_and_members_of_a_three_node_cluster(
    make_cluster: MakeCluster, chromium: str, tmp_path: Path
) -> None:
    c = make_cluster(3)
    c.wait_converged()
    ids = sorted(n.node_id for n in c.nodes)

    def all_up() -> bool:
        members = get_json(c[0].url + "/admin/members", timeout=3)["members"]
        return sorted(m["node"] for m in members if m["up"]) == ids

    wait_for(all_up, 30, f"{c[0].node_id} to see every member up")
    url = c[0].url + "/admin/ui"

    dump = run_chromium(
        chromium,
        tmp_path / "profile-dom",
        "--dump-dom",
        f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
        url,
    )
    dom = parse_dom(dump.stdout)
    assert dom.body_ready == "1", f"page never rendered: {dump.stdout[-3000:]}"
    assert dom.ring_svgs == 1
    assert sorted(dom.arcs) == ids
    assert sorted(dom.members) == ids
    assert all(up == "true" for up in dom.members.values()), dom.members

    shot = tmp_path / "ui.png"
    run_chromium(
        chromium,
        tmp_path / "profile-shot",
        f"--screenshot={shot}",
        "--window-size=1280,900",
        f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
        url,
    )
    assert shot.is_file(), "chromium wrote no screenshot"
    shutil.copyfile(shot, SCREENSHOT_COPY)
    png = decode_png(shot.read_bytes())
    assert (png.width, png.height) == (1280, 900)
    colors = set(png.pixels())
    assert len(colors) >= MIN_DISTINCT_COLORS, f"only {len(colors)} colors: a blank page?"
    missing = {n: rgb for n, rgb in NODE_COLORS.items() if rgb not in colors}
    assert not missing, f"ring colors not painted: {missing} (see {SCREENSHOT_COPY})"
