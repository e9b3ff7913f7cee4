"""What a bench run does: one validated, immutable ``BenchConfig``; and ``Target``, one
node's address. Bad values fail at start with a message naming the option."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Any

WORKLOADS = ("get", "put", "mixed", "rmw", "counter", "index-eq", "index-range")
INDEX_WORKLOADS = ("index-eq", "index-range")  # 2i queries over HTTP, counted as GETs
MAX_INDEXES = 2  # index headers a PUT can carry: age_int, then email_bin
PROTOCOLS = ("http", "pb")
DISTS = ("uniform", "zipfian")
_QUORUM_WORDS = ("one", "quorum", "all", "default")


class BenchConfigError(ValueError):
    """A bench option has a value we cannot run with."""


def default_procs() -> int:
    """Two worker processes, or one on a single core."""
    return max(1, min(2, available_cores()))


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int  # HTTP: every admin call goes there, and the load unless over PB
    pb_port: int = 0  # Riak PB, for --protocol pb (0: unknown yet)

    @property
    def host_header(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urllib.parse.urlsplit(url if "//" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise BenchConfigError(f"--url {url!r}: use http://host:port")
        if parts.path not in ("", "/"):
            raise BenchConfigError(f"--url {url!r}: give the node's root, without a path")
        return cls(parts.hostname, parts.port or 80)


def parse_urls(values: list[str]) -> list[Target]:
    """``--url`` values, each of which may be comma-separated."""
    return [Target.parse(u.strip()) for v in values for u in v.split(",") if u.strip()]


def _quorum(name: str, value: str | None) -> None:
    if value is None:
        return
    if value in _QUORUM_WORDS or (value.isdigit() and int(value) >= 1):
        return
    raise BenchConfigError(f"--{name} {value!r}: use an integer >= 1, one, quorum, all or default")


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchConfig:
    """One run. Each field is one ``dynamo bench`` option."""

    workload: str = "get"  # get, put, mixed (read_ratio GETs), rmw (GET then PUT with context),
    #   counter (increments of counters of ``bucket_type``, a counter bucket type), or the
    #   2i queries index-eq (age_int = i mod 1000) and index-range (a 100-key page from it)
    protocol: str = "http"  # http (HTTP/1.1 keep-alive) or pb (Riak Protocol Buffers)
    read_ratio: float = 0.5  # share of GETs in ``mixed``
    keys: int = 10_000  # key space k0..k{keys-1}; more keys, fewer hot spots and siblings
    dist: str = "uniform"  # uniform or zipfian (rank 1 = k0 the hottest)
    zipf_s: float = 0.99  # zipfian exponent: larger, more skew
    value_bytes: int = 1024  # PUT body size
    indexes: int = 0  # index headers on each PUT of k{i} (0..2): age_int i mod 1000, then
    #   email_bin user{i}@example.com; each costs index entries written on every replica
    duration_s: float = 10.0  # measured seconds
    warmup_s: float = 2.0  # seconds of load before measuring, excluded from the figures
    connections: int = 8  # keep-alive connections in all, split between the processes
    procs: int = 2  # worker processes, each with its own event loop
    r: str | None = None  # ?r= on GETs (None: the bucket's default)
    w: str | None = None  # ?w= on PUTs
    n_val: int | None = None  # set as the bucket's n_val before the run
    bucket: str = "bench"
    bucket_type: str = "counters"  # counter: made (datatype counter) and activated if missing
    preload: bool = True  # write every key once before the run
    timeout_s: float = 10.0  # a request unanswered this long counts as a timeout
    seed: int = 0  # random seed of key choice (worker i uses seed * 1000 + i)

    def __post_init__(self) -> None:
        if self.workload not in WORKLOADS:
            raise BenchConfigError(f"--workload {self.workload!r}: use one of {WORKLOADS}")
        if self.protocol not in PROTOCOLS:
            raise BenchConfigError(f"--protocol {self.protocol!r}: use one of {PROTOCOLS}")
        if self.dist not in DISTS:
            raise BenchConfigError(f"--dist {self.dist!r}: use one of {DISTS}")
        if not 0.0 <= self.read_ratio <= 1.0:
            raise BenchConfigError(f"--read-ratio {self.read_ratio}: use 0..1")
        if self.keys < 1:
            raise BenchConfigError(f"--keys {self.keys}: need at least 1")
        if self.zipf_s <= 0:
            raise BenchConfigError(f"--zipf-s {self.zipf_s}: must be > 0")
        if self.value_bytes < 0:
            raise BenchConfigError(f"--value-bytes {self.value_bytes}: must be >= 0")
        if self.duration_s <= 0:
            raise BenchConfigError(f"--duration {self.duration_s}: must be > 0")
        if self.warmup_s < 0:
            raise BenchConfigError(f"--warmup {self.warmup_s}: must be >= 0")
        if self.procs < 1:
            raise BenchConfigError(f"--procs {self.procs}: need at least 1")
        if self.connections < self.procs:
            raise BenchConfigError(
                f"--connections {self.connections}: need at least one per process"
                f" (--procs {self.procs})"
            )
        if self.timeout_s <= 0:
            raise BenchConfigError(f"--timeout {self.timeout_s}: must be > 0")
        if self.n_val is not None and self.n_val < 1:
            raise BenchConfigError(f"--n {self.n_val}: need at least 1")
        if not self.bucket:
            raise BenchConfigError("--bucket: must not be empty")
        _quorum("r", self.r)
        _quorum("w", self.w)
        self._check_indexes()

    def _check_indexes(self) -> None:
        if not 0 <= self.indexes <= MAX_INDEXES:
            raise BenchConfigError(f"--indexes {self.indexes}: use 0..{MAX_INDEXES}")
        queries = self.workload in INDEX_WORKLOADS
        if (queries or self.indexes) and self.protocol != "http":
            what = f"--workload {self.workload}" if queries else f"--indexes {self.indexes}"
            raise BenchConfigError(f"{what}: secondary indexes are HTTP only (--protocol http)")
        if self.indexes and self.workload == "counter":
            raise BenchConfigError(f"--indexes {self.indexes}: counters carry no indexes")
        if queries and self.r is not None:
            raise BenchConfigError(f"--r {self.r}: an index query takes no r")
        if queries and self.preload and not self.indexes:
            raise BenchConfigError(
                f"--workload {self.workload} with preload: give --indexes 1 or 2 so the"
                " preloaded objects carry age_int (or --no-preload for keys already loaded)"
            )

    @property
    def get_query(self) -> str:
        return f"?r={self.r}" if self.r else ""

    @property
    def put_query(self) -> str:
        return f"?w={self.w}" if self.w else ""

    @property
    def index_query(self) -> str | None:
        """``eq`` or ``range`` for an index workload, else None."""
        return self.workload.removeprefix("index-") if self.workload in INDEX_WORKLOADS else None

    def connections_of(self, proc: int) -> range:
        """The global connection numbers process ``proc`` opens (contiguous blocks)."""
        base, extra = divmod(self.connections, self.procs)
        start = proc * base + min(proc, extra)
        return range(start, start + base + (1 if proc < extra else 0))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
