"""One interval's figures from one process: latency per operation, responses by status,
errors by kind. Tallies merge by adding, so the coordinator sums what workers send."""

from __future__ import annotations

from typing import Any, Final

from dynamo.tools.bench.histogram import LatencyHistogram

GET: Final = 0
PUT: Final = 1
OP_NAMES: Final = ("get", "put")

# Error kinds that are not an HTTP status.
TIMEOUT: Final = "timeout"
CONNECT: Final = "connect"
CLOSED: Final = "closed"
PROTOCOL: Final = "protocol"


def is_ok(status: int) -> bool:
    """2xx, and Riak's 300 Multiple Choices (siblings), which is a full answer."""
    return 200 <= status < 300 or status == 300


def status_error(status: int) -> str:
    return f"http_{status}"


class Tally:
    """Counts of one process over one interval; ``record`` is on the hot path."""

    __slots__ = ("errors", "hists", "statuses")

    def __init__(self) -> None:
        self.hists = [LatencyHistogram() for _ in OP_NAMES]
        self.statuses: dict[int, int] = {}
        self.errors: dict[str, int] = {}

    def record(self, op: int, status: int, latency_ns: int) -> None:
        """A response arrived (whatever its status) ``latency_ns`` after the request."""
        self.hists[op].record(latency_ns)
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        if not (200 <= status < 300 or status == 300):
            key = status_error(status)
            self.errors[key] = self.errors.get(key, 0) + 1

    def error(self, kind: str) -> None:
        """A request that got no response (timeout, connection error)."""
        self.errors[kind] = self.errors.get(kind, 0) + 1

    @property
    def responses(self) -> int:
        return sum(h.count for h in self.hists)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def attempts(self) -> int:
        """Responses plus requests that never got one."""
        no_response = sum(v for k, v in self.errors.items() if not k.startswith("http_"))
        return self.responses + no_response

    def latency(self) -> LatencyHistogram:
        """Every operation's latencies in one histogram."""
        h = LatencyHistogram()
        for one in self.hists:
            h.merge(one)
        return h

    def merge(self, other: Tally) -> None:
        for mine, theirs in zip(self.hists, other.hists, strict=True):
            mine.merge(theirs)
        for status, n in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + n
        for kind, n in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + n

    def to_wire(self) -> dict[str, Any]:
        return {
            "hists": [h.to_wire() for h in self.hists],
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Tally:
        t = cls()
        t.hists = [LatencyHistogram.from_wire(h) for h in d["hists"]]
        t.statuses = {int(k): int(v) for k, v in d["statuses"].items()}
        t.errors = {str(k): int(v) for k, v in d["errors"].items()}
        return t
