"""Helpers that print the cost benchmarks' figures: the machine, plain-text tables,
means, per-minute rates and a least-squares line."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from costlib.node import CLK_TCK


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "clk_tck": CLK_TCK,
    }


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns right-aligned to their widest cell."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    out = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def by_minute(series: list[tuple[float, float]], nodes: int) -> list[float]:
    """CPU s/min a node in each whole minute of ``(t, CPU of all nodes)`` samples: a
    transient (a start's work not over) shows as a first minute above the others."""
    out: list[float] = []
    t0, c0 = series[0]
    for t, c in series[1:]:
        if t - t0 >= 60:
            out.append(round((c - c0) * 60 / (t - t0) / nodes, 3))
            t0, c0 = t, c
    return out


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """``(slope, intercept, R^2)`` of the least-squares line through the points."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx if sxx else 0.0
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    r2 = 1 - ss_res / ss_tot if ss_tot else 1.0
    return slope, intercept, r2
