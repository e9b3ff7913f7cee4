"""The figures of a run: ``BenchResult`` (JSON-ready) and its text form."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass
from typing import Any

from dynamo.tools.bench.config import BenchConfig, Target, available_cores
from dynamo.tools.bench.histogram import LatencyHistogram
from dynamo.tools.bench.tally import OP_NAMES, Tally

MAX_ERROR_RATE = 0.01
QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999))


def latency_ms(h: LatencyHistogram) -> dict[str, float]:
    out = {name: round(h.percentile_ns(q) / 1e6, 3) for name, q in QUANTILES}
    out["max"] = round(h.max_ns / 1e6, 3)
    out["mean"] = round(h.mean_ns / 1e6, 3)
    return out


def machine_info(loop: str) -> dict[str, Any]:
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        load = []
    return {
        "cores": os.cpu_count(),
        "usable_cores": available_cores(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "loop": loop,
        "loadavg_at_end": load,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchResult:
    config: dict[str, Any]
    targets: list[str]
    machine: dict[str, Any]
    window_s: float  # measured seconds
    requests: int  # responses received in the window, whatever their status
    requests_per_s: float  # responses per second (as wrk counts them)
    ok_per_s: float  # 2xx and 300 responses per second
    latency_ms: dict[str, float]  # every response's latency
    per_op: dict[str, dict[str, Any]]  # "get"/"put": count, per second, latency_ms
    statuses: dict[str, int]  # responses by HTTP status
    errors: dict[str, int]  # by kind: http_<status>, timeout, connect, closed, protocol
    error_count: int
    error_rate: float  # errors / (responses + requests that got none)
    client_cpu_s: float  # CPU seconds of the worker processes in the window
    client_cpu_us_per_request: float
    warmup: dict[str, Any]  # requests and errors during warmup (not in the figures)
    preload: dict[str, Any]  # keys written before the run, seconds, errors

    @property
    def failed(self) -> bool:
        return self.requests == 0 or self.error_rate > MAX_ERROR_RATE

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    cfg: BenchConfig,
    targets: list[Target],
    run: Tally,
    warmup: Tally,
    window_s: float,
    cpu_s: float,
    machine: dict[str, Any],
    preload: dict[str, Any],
) -> BenchResult:
    window = window_s if window_s > 0 else cfg.duration_s
    total = run.latency()
    ok = sum(n for s, n in run.statuses.items() if 200 <= s < 300 or s == 300)
    per_op = {
        name: {
            "count": h.count,
            "per_s": round(h.count / window, 1),
            "latency_ms": latency_ms(h),
        }
        for name, h in zip(OP_NAMES, run.hists, strict=True)
        if h.count
    }
    attempts = run.attempts
    return BenchResult(
        config=cfg.to_json(),
        targets=[t.url for t in targets],
        machine=machine,
        window_s=round(window, 3),
        requests=total.count,
        requests_per_s=round(total.count / window, 1),
        ok_per_s=round(ok / window, 1),
        latency_ms=latency_ms(total),
        per_op=per_op,
        statuses={str(s): n for s, n in sorted(run.statuses.items())},
        errors=dict(sorted(run.errors.items())),
        error_count=run.error_count,
        error_rate=round(run.error_count / attempts, 6) if attempts else 0.0,
        client_cpu_s=round(cpu_s, 3),
        client_cpu_us_per_request=round(cpu_s * 1e6 / total.count, 2) if total.count else 0.0,
        warmup={"requests": warmup.responses, "errors": dict(sorted(warmup.errors.items()))},
        preload=preload,
    )


def _lat(d: dict[str, float]) -> str:
    return "  ".join(f"{k} {d[k]:.3f}" for k in ("p50", "p90", "p99", "p99.9", "max"))


def format_text(r: BenchResult) -> str:
    c, m = r.config, r.machine
    lines = [
        f"dynamo bench: {c['workload']} on {len(r.targets)} node(s) {','.join(r.targets)}",
        f"  {c['connections']} connections in {c['procs']} processes, {c['keys']} keys"
        f" ({c['dist']}{', s=' + str(c['zipf_s']) if c['dist'] == 'zipfian' else ''}),"
        f" {c['value_bytes']}-byte values"
        f"{', ' + str(c['indexes']) + ' index header(s) a PUT' if c.get('indexes') else ''},"
        f" r={c['r'] or 'default'} w={c['w'] or 'default'}"
        f" n_val={c['n_val'] or 'default'}, bucket {c['bucket']!r}, seed {c['seed']}",
        f"  machine: {m['cores']} cores ({m['usable_cores']} usable), {m['loop']},"
        f" Python {m['python']}, load average at end {m['loadavg_at_end']}",
    ]
    if r.preload:
        lines.append(
            f"  preload: {r.preload['keys']} keys in {r.preload['seconds']:.1f}s,"
            f" errors {r.preload['errors']}"
        )
    lines += [
        f"  warmup {c['warmup_s']}s: {r.warmup['requests']} requests (not counted)",
        "",
        f"throughput: {r.requests_per_s:,.1f} req/s ({r.requests} responses in {r.window_s:.2f}s;"
        f" {r.ok_per_s:,.1f} ok/s)",
        f"latency ms: {_lat(r.latency_ms)}  mean {r.latency_ms['mean']:.3f}",
    ]
    if len(r.per_op) > 1 or c["workload"] == "rmw":
        for name, op in r.per_op.items():
            lines.append(f"  {name.upper():<4} {op['per_s']:>10,.1f}/s  {_lat(op['latency_ms'])}")
    lines.append(f"statuses: {r.statuses or '{}'}")
    lines.append(
        f"errors: {r.error_count} ({r.error_rate:.3%})"
        + (f" {r.errors}" if r.errors else "")
        + ("  FAILED: over 1%" if r.failed and r.requests else "")
    )
    lines.append(
        f"client CPU: {r.client_cpu_s:.2f}s, {r.client_cpu_us_per_request:.1f} us per request"
    )
    return "\n".join(lines)
