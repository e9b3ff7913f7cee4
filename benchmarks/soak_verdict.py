"""The soak's verdict and pictures: which figures are judged and how (see ``soak.py``'s
docstring for the rule and why), the report printed, and the PNG.

    python benchmarks/soak.py --rejudge benchmarks/soak.json   # verdict and plot again
"""

from __future__ import annotations

import importlib
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTCOMES = (
    *("ok", "not_found"),  # successes
    *("unavailable", "timeout", "connection"),  # expected while a fault lasts
    *("client_error", "server_error", "other"),  # failures
)
FAILURES = ("client_error", "server_error", "other")
ENVELOPE_QUANTILE = 0.9  # of the samples in the envelope's window: one-sample spikes drop out
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    title: str
    unit_scale: float = 1.0
    unit: str = ""
    slack: float = 0.0  # absolute growth always accepted (jitter of a count, a granule)
    judged: bool = True


METRICS = (
    Metric("rss_bytes", "RSS", MIB, "MiB"),
    Metric("fds", "open file descriptors", slack=5),
    Metric("fds_sockets", "open fds: sockets", slack=5),
    Metric("fds_sst", "open fds: SST files (the LSM shape)", judged=False),
    Metric("fds_deleted", "open fds: files deleted but held", slack=2),
    Metric("threads", "threads", slack=2),
    Metric("asyncio_tasks", "asyncio tasks", slack=5),
    # RocksDB bytes: 1 MiB slack, one memtable arena block (write_buffer_bytes / 8); table
    # readers of a few thousand keys are tens of KiB in all, where percentages are noise.
    Metric("rocksdb_mem_table_bytes", "RocksDB memtables", MIB, "MiB", MIB),
    Metric("rocksdb_table_readers_bytes", "RocksDB table readers", MIB, "MiB", MIB),
    Metric("rocksdb_block_cache_bytes", "RocksDB block cache", MIB, "MiB", MIB),
    Metric("rocksdb_live_iterators", "RocksDB live iterators", slack=2),
    # RSS split: what a leak raises (bytes malloc handed out and not got back, Python's
    # small objects) and what fragmentation does (bytes freed but held: not judged)
    Metric("malloc_in_use_bytes", "C heap in use", MIB, "MiB", MIB),
    Metric("python_allocated_blocks", "Python small-object blocks", slack=5000),
    Metric("malloc_free_bytes", "C heap freed but held", MIB, "MiB", judged=False),
    Metric("cpu_pct", "node CPU", unit="%", judged=False),
    Metric("disk_sst_bytes", "data directory: SST files", MIB, "MiB", judged=False),
    Metric("disk_bytes", "data directory: every file", MIB, "MiB", judged=False),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    nodes: int = 3
    duration_s: float = 3600.0
    warmup_s: float = 900.0
    fault_every_s: float = 60.0
    sample_every_s: float = 10.0
    envelope_s: float = 600.0  # > the rotation of restarts (6 min) and memtable flush cycles
    seed: int = 0
    rate: float = 400.0  # ops/s over every client loop together
    clients: int = 8
    keys: int = 5000
    list_every_s: float = 15.0
    witness: bool = True
    out_png: Path = Path("benchmarks/soak.png")
    out_json: Path = Path("benchmarks/soak.json")

    def __post_init__(self) -> None:
        if self.nodes < 2:
            raise SystemExit("--nodes: at least 2")
        if not 0 < self.warmup_s < self.duration_s - 60:
            raise SystemExit("--warmup: leave at least a minute after it (--duration)")
        if self.fault_every_s < 15 or self.sample_every_s <= 0 or self.rate <= 0:
            raise SystemExit("--fault-every >= 15 s; --sample-every and --rate positive")

    @property
    def pause_s(self) -> float:
        return min(10.0, self.fault_every_s / 3)


# --- The verdict ---------------------------------------------------------------------------


def window_s(s: Settings, last_s: float) -> float:
    """The length of the windows compared: ``envelope_s``, or half of what follows the
    warm-up if that is shorter (the two never overlap)."""
    return min(s.envelope_s, (last_s - s.warmup_s) / 2)


def pct(a: float, b: float) -> float | None:
    """Growth from ``a`` to ``b`` in percent (None from a base of 0 to something else)."""
    return round((b - a) / a * 100, 2) if a else (0.0 if a == b else None)


def trend(pts: list[tuple[float, float]], lo: float, hi: float) -> tuple[float, float]:
    """The least-squares line through ``pts``, read at ``lo`` and at ``hi``."""
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    slope = sum((t - mt) * (v - mv) for t, v in pts) / var if var else 0.0
    return mv + slope * (lo - mt), mv + slope * (hi - mt)


def judge(
    samples: list[dict[str, Any]], last_s: float, s: Settings, metric: Metric, node: str
) -> dict[str, Any] | None:
    """One metric of one node: its trend from the warm-up's end to the last sample, with
    the window levels and raw values beside it."""
    pts = [
        (r["t_s"], float(r[metric.name]))
        for r in samples
        if r["node"] == node and r.get(metric.name) is not None
    ]
    after = [(t, v) for t, v in pts if s.warmup_s <= t <= last_s]
    first = [(t, v) for t, v in after if t < s.warmup_s + 60]
    final = [(t, v) for t, v in after if t > last_s - 60]
    if not first or not final:
        return None
    base, end = trend(after, s.warmup_s, last_s)
    span = window_s(s, last_s)

    def level(lo: float, hi: float) -> float:
        window = sorted(v for u, v in after if lo <= u <= hi)
        return window[min(len(window) - 1, int(ENVELOPE_QUANTILE * len(window)))]

    # Both windows wholly after the warm-up, of the same length
    level_base = level(s.warmup_s, s.warmup_s + span)
    level_end = level(last_s - span, last_s)
    raw_base = statistics.median(v for _, v in first)
    raw_end = statistics.median(v for _, v in final)
    pids = {r["pid"] for r in samples if r["node"] == node and r["t_s"] >= s.warmup_s}
    growth = pct(base, end)
    passed = (growth is not None and growth < 5) or end - base <= metric.slack
    # A leak is one process's growth: a node restarted since the warm-up compares a young
    # process with an old one, which says nothing either way; it is shown, not judged.
    judged = metric.judged and len(pids) == 1
    return {
        "metric": metric.name,
        "node": node,
        "processes_after_warmup": len(pids),
        "base": base,
        "end": end,
        "growth_pct": growth,
        "level_base": level_base,
        "level_end": level_end,
        "level_growth_pct": pct(level_base, level_end),
        "raw_base": raw_base,
        "raw_end": raw_end,
        "raw_growth_pct": pct(raw_base, raw_end),
        "verdict": ("PASS" if passed else "FAIL") if judged else "info",
    }


def judged(rep: dict[str, Any], s: Settings) -> dict[str, Any]:
    """``rep`` with its verdict (per metric and node, and in all) from its own samples."""
    samples, client = rep["samples"], rep["client"]
    last_s = max(c["t_s"] for c in client) if client else s.duration_s
    nodes = sorted({r["node"] for r in samples})
    rows = [
        row for m in METRICS for n in nodes if (row := judge(samples, last_s, s, m, n)) is not None
    ]
    failures = sum(c[o] for c in rep["ops"].values() for o in FAILURES)
    passed = (
        rep["aborted"] is None
        and bool(rows)
        and all(r["verdict"] != "FAIL" for r in rows)
        and not failures
        and not any(f["error"] for f in rep["faults"])
    )
    slack = {m.name: m.slack for m in METRICS if m.slack}
    rule = (
        "trend: the least-squares line through a node's samples from the end of the"
        " warm-up to the last, read at both ends (base, end); judged only on a node that"
        f" kept one process throughout; PASS if growth < 5% or growth <= slack {slack}."
        f" Beside it, level: p{ENVELOPE_QUANTILE * 100:.0f} over the first"
        f" {window_s(s, last_s):.0f} s after the warm-up and the last as many; raw: medians"
        " of the first and last minute"
    )
    head = {k: v for k, v in rep.items() if k not in ("passed", "rule", "verdict", "client")}
    del head["samples"]
    return {**head, "passed": passed, "rule": rule, "verdict": rows, "client": client,
            "samples": samples}  # fmt: skip


# --- Output --------------------------------------------------------------------------------


def print_report(rep: dict[str, Any]) -> None:
    print(f"\nsoak {rep['started_at']} .. {rep['ended_at']}: {'PASS' if rep['passed'] else 'FAIL'}")
    if rep["aborted"]:
        print(f"  ABORTED: {rep['aborted']}")
    print(f"  {'op':<7}" + "".join(f"{o:>13}" for o in OUTCOMES))
    for kind, counts in rep["ops"].items():
        print(f"  {kind:<7}" + "".join(f"{counts[o]:>13,}" for o in OUTCOMES))
    outside = {
        k: {o: n for o, n in c.items() if n}
        for k, c in rep["expected_errors_outside_faults"].items()
        if any(c.values())
    }
    print(f"  errors outside fault windows: {outside or 'none'}")
    for e in rep["error_examples"][:10]:
        print(f"    {e}")
    kinds: dict[str, int] = defaultdict(int)
    for f in rep["faults"]:
        kinds[f"{f['kind']} {f['node']}"] += 1
    print(f"  faults {len(rep['faults'])}: {dict(sorted(kinds.items()))}")
    for f in rep["faults"]:
        if f["error"] or (f["kind"] == "stop" and f["exit_code"] not in (0, None)):
            print(f"    fault {f['n']} {f['kind']} {f['node']}: exit {f['exit_code']} {f['error']}")
    print(f"  missing from /stats: {rep['missing_stats'] or 'none'}")
    print(f"  rule: {rep['rule']}")
    print(f"  {'metric':<28}{'node':<5}{'procs':>6}{'base':>14}{'end':>14}{'growth':>9}  verdict")
    scale = {m.name: m for m in METRICS}
    for r in rep["verdict"]:
        m = scale[r["metric"]]
        unit = f" {m.unit}" if m.unit_scale != 1 else ""
        g = r["growth_pct"]
        growth = "n/a" if g is None else (f"{g:.1f}%" if abs(g) < 1e4 else f"{g:.0e}%")
        print(
            f"  {r['metric']:<28}{r['node']:<5}{r['processes_after_warmup']:>6}"
            f"{r['base'] / m.unit_scale:>10.2f}{unit:<4}{r['end'] / m.unit_scale:>10.2f}{unit:<4}"
            f"{growth:>9}  {r['verdict']}"
            f"  (level {r.get('level_growth_pct')}%, raw {r['raw_growth_pct']}%)"
        )


def plot(rep: dict[str, Any], path: Path) -> None:
    """The PNG. Needs matplotlib (``pip install -e '.[bench]'``); looked up at run time, so
    the suite's type check does not need it installed."""
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    Line2D: Any = importlib.import_module("matplotlib.lines").Line2D

    s = rep["settings"]
    nodes = sorted({r["node"] for r in rep["samples"]})
    colors = {n: f"C{i % 10}" for i, n in enumerate(nodes)}
    styles = {"kill": "--", "stop": "-.", "pause": ":"}
    rows = (len(METRICS) + 2) // 2  # every metric, then the client's panel
    fig, axes = plt.subplots(rows, 2, figsize=(15, 3.5 * rows), sharex=True)
    panels = list(axes.flat)[: len(METRICS) + 1]
    for ax, m in zip(panels, METRICS, strict=False):
        by_proc: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
        for r in rep["samples"]:
            if r.get(m.name) is not None:
                by_proc[(r["node"], r["pid"])].append((r["t_s"] / 60, r[m.name] / m.unit_scale))
        for (node, _), pts in by_proc.items():
            ax.plot(*zip(*pts, strict=True), color=colors[node], lw=1)
        if not by_proc:
            ax.text(0.5, 0.5, "not exposed by the node", ha="center", transform=ax.transAxes)
        ax.set_title(m.title + (f" ({m.unit})" if m.unit else ""))
    client = rep["client"]
    ax = panels[len(METRICS)]
    if client:
        t = [c["t_s"] / 60 for c in client]
        ax.plot(t, [(c["ok"] + c["errors"]) / s["sample_every_s"] for c in client], color="k")
        ax.set_ylabel("ops/s")
        ax2 = ax.twinx()
        ax2.plot(t, [c["p99_ms"] for c in client], color="tab:red", lw=0.8)
        ax2.set_ylabel("p99 ms", color="tab:red")
    ax.set_title("client: ops/s (black), p99 latency of successes (red)")
    for ax in panels:
        ax.axvspan(0, s["warmup_s"] / 60, color="0.92", zorder=0)
        for f in rep["faults"]:
            ax.axvline(f["at_s"] / 60, color=colors.get(f["node"], "0.5"), ls=styles[f["kind"]],
                       lw=0.8, alpha=0.8)  # fmt: skip
        ax.grid(alpha=0.3)
    for ax in panels[-2:]:
        ax.set_xlabel("minutes (shaded: warm-up)")
        ax.tick_params(labelbottom=True)
    for spare in list(axes.flat)[len(panels) :]:
        spare.axis("off")
        failed = [f"{r['metric']} {r['node']}: {r['growth_pct']}%" for r in rep["verdict"]
                  if r["verdict"] == "FAIL"]  # fmt: skip
        spare.text(0, 1, "FAIL:\n" + "\n".join(failed) if failed else "every metric PASS",
                   va="top", family="monospace", fontsize=9)  # fmt: skip
    handles = [Line2D([], [], color=colors[n], label=n) for n in nodes]
    handles += [Line2D([], [], color="0.4", ls=st, label=f"fault: {k}") for k, st in styles.items()]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.982), ncol=len(handles))
    fig.suptitle(
        f"soak: {s['nodes']} nodes, {s['duration_s'] / 60:.0f} min, a fault every"
        f" {s['fault_every_s']:.0f} s, seed {s['seed']}: {'PASS' if rep['passed'] else 'FAIL'}"
        " (restarts start a new line)",
        y=0.995,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=90)
    plt.close(fig)
