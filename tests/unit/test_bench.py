"""``dynamo bench``: the histogram, the key samplers, the response parser, and one short
run against an in-process aiohttp server."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo.tools.bench.config import BenchConfig, BenchConfigError, Target, parse_urls
from dynamo.tools.bench.connection import Workload
from dynamo.tools.bench.histogram import (
    LINEAR_STEP_NS,
    RATIO,
    LatencyHistogram,
    bucket_bounds,
    bucket_of,
    nearest_rank,
)
from dynamo.tools.bench.http1 import RemoteProtocolError, RequestFactory, Response, ResponseParser
from dynamo.tools.bench.keys import UniformKeys, ZipfianKeys
from dynamo.tools.bench.runner import run_bench
from dynamo.tools.bench.tally import GET, PUT, Tally

# --- histogram ----------------------------------------------------------------------------

latencies_ns = st.one_of(
    st.integers(0, 2_000_000),  # the linear part and just past it
    st.integers(0, 100 * 10**9),  # up to 100 s
)


def histogram_of(values: list[int]) -> LatencyHistogram:
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    return h


@given(st.integers(0, 10**13))
def test_a_value_falls_inside_its_bucket(ns: int) -> None:
    low, high = bucket_bounds(bucket_of(ns))
    assert low <= ns < high or ns >= 3_600 * 10**9


@given(st.lists(latencies_ns, min_size=1, max_size=300))
def test_percentiles_match_a_sorted_list_within_one_bucket(values: list[int]) -> None:
    h = histogram_of(values)
    ordered = sorted(values)
    for q in (0.0, 0.5, 0.9, 0.99, 0.999, 1.0):
        exact = ordered[nearest_rank(q, len(values)) - 1]
        got = h.percentile_ns(q)
        assert abs(got - exact) <= max(LINEAR_STEP_NS / 2, exact * (RATIO - 1)) + 1, (q, exact)
    assert h.count == len(values)
    assert h.min_ns == ordered[0]
    assert h.max_ns == ordered[-1]
    assert h.percentile_ns(1.0) == ordered[-1]


def test_percentiles_are_exact_to_the_microsecond_below_a_millisecond() -> None:
    h = histogram_of([us * 1000 + 500 for us in range(1000)])  # 0.5 us .. 999.5 us
    assert h.percentile_ns(0.5) == 499_500
    assert h.percentile_ns(0.99) == 989_500


@given(st.lists(latencies_ns, max_size=200), st.lists(latencies_ns, max_size=200))
def test_merging_two_histograms_equals_one_built_from_all_values(
    xs: list[int], ys: list[int]
) -> None:
    merged = histogram_of(xs)
    merged.merge(histogram_of(ys))
    assert merged == histogram_of(xs + ys)
    assert LatencyHistogram.from_wire(merged.to_wire()) == merged


def test_an_empty_histogram_reads_zero() -> None:
    h = LatencyHistogram()
    assert h.percentile_ns(0.99) == 0
    assert h.mean_ns == 0.0


def test_tallies_merge_and_cross_the_wire() -> None:
    a, b = Tally(), Tally()
    a.record(GET, 200, 1_000)
    a.record(PUT, 503, 2_000)
    b.record(GET, 300, 3_000)
    b.error("timeout")
    a.merge(Tally.from_wire(b.to_wire()))
    assert a.responses == 3
    assert a.statuses == {200: 1, 503: 1, 300: 1}
    assert a.errors == {"http_503": 1, "timeout": 1}
    assert a.attempts == 4


# --- key samplers -----------------------------------------------------------------------------


def test_zipfian_rank_one_is_most_frequent_and_frequencies_follow_a_power_law() -> None:
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    n, s, draws = 50, 0.99, 200_000
    z = ZipfianKeys(n, s, random.Random(seed))
    counts = Counter(z.next_index() for _ in range(draws))
    assert counts.most_common(1)[0][0] == 0
    assert set(counts) <= set(range(n))
    for rank in (2, 3, 5, 10, 20):
        observed = counts[rank - 1] / counts[0]
        assert observed == pytest.approx(rank**-s, rel=0.1), rank
        assert counts[rank - 1] / draws == pytest.approx(z.probability(rank), rel=0.1)


def test_zipfian_with_one_key_always_draws_it() -> None:
    z = ZipfianKeys(1, 0.99, random.Random(1))
    assert {z.next_index() for _ in range(100)} == {0}


def test_uniform_keys_stay_in_range_and_cover_it() -> None:
    u = UniformKeys(10, random.Random(7))
    assert {u.next_index() for _ in range(1000)} == set(range(10))


# --- the response parser --------------------------------------------------------------------


@st.composite
def responses(draw: st.DrawFn) -> tuple[Response, bytes]:
    status = draw(st.sampled_from([200, 204, 300, 404, 412, 503]))
    body = b"" if status == 204 else draw(st.binary(max_size=300))
    vclock = draw(st.one_of(st.none(), st.sampled_from([b"a85hYGBg", b"AbC+/=="])))
    close = draw(st.booleans())
    headers = [b"Server: test", b"Content-Type: text/plain"]
    if vclock is not None:
        headers.append(b"X-Riak-Vclock: " + vclock)
    if close:
        headers.append(b"Connection: close")
    if status == 204:
        raw_body = b""
    elif draw(st.booleans()):
        headers.append(b"Transfer-Encoding: chunked")
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        raw_body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"
    else:
        headers.append(b"content-LENGTH: %d" % len(body))
        raw_body = body
    head = b"HTTP/1.1 %d Whatever\r\n" % status + b"\r\n".join(headers) + b"\r\n\r\n"
    return Response(status, body, vclock, not close), head + raw_body


@settings(max_examples=200, deadline=None)
@given(st.lists(responses(), min_size=1, max_size=4), st.data())
def test_parser_reads_the_same_responses_however_the_bytes_are_split(
    pairs: list[tuple[Response, bytes]], data: st.DataObject
) -> None:
    wire = b"".join(raw for _, raw in pairs)
    want = [r for r, _ in pairs]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=20)))
    pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]

    parser = ResponseParser(want_vclock=True)
    got = [r for piece in pieces for r in parser.feed(piece)]
    assert got == want
    assert parser.idle

    one_by_one = ResponseParser(want_vclock=True)
    assert [r for i in range(len(wire)) for r in one_by_one.feed(wire[i : i + 1])] == want


def test_a_body_without_length_ends_with_the_connection() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nab") == []
    assert parser.feed(b"cd") == []
    assert parser.feed_eof() == Response(200, b"abcd", None, False)


def test_http_1_0_closes_unless_keep_alive() -> None:
    assert ResponseParser().feed(b"HTTP/1.0 204 No Content\r\n\r\n")[0].keep_alive is False
    keep = b"HTTP/1.0 204 No Content\r\nConnection: Keep-Alive\r\n\r\n"
    assert ResponseParser().feed(keep)[0].keep_alive is True


def test_an_informational_response_is_skipped() -> None:
    parser = ResponseParser()
    got = parser.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    assert [r.status for r in got] == [204]


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_responses_are_the_servers_fault(wire: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        ResponseParser().feed(wire)


def test_a_close_in_the_middle_of_a_response_is_an_error() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    with pytest.raises(RemoteProtocolError):
        parser.feed_eof()


def test_request_bytes() -> None:
    f = RequestFactory("h:1", "b b", "?r=2", "?w=all", b"xyz")
    assert f.get(7) == b"GET /buckets/b%20b/keys/k7?r=2 HTTP/1.1\r\nHost: h:1\r\n\r\n"
    assert f.put(3, b"VC") == (
        b"PUT /buckets/b%20b/keys/k3?w=all HTTP/1.1\r\nHost: h:1\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Length: 3\r\n"
        b"X-Riak-Vclock: VC\r\n\r\nxyz"
    )


def test_a_put_with_no_indexes_is_byte_for_byte_the_plain_put() -> None:
    plain = RequestFactory("h:1", "b", "", "?w=2", b"xyz")
    none = RequestFactory("h:1", "b", "", "?w=2", b"xyz", indexes=0, index_query="eq")
    for vclock in (None, b"VC"):
        assert none.put(1234, vclock) == plain.put(1234, vclock)
    assert b"X-Riak-Index" not in plain.put(1234)


def test_a_put_carries_its_index_headers_before_the_context() -> None:
    one = RequestFactory("h:1", "b", "", "", b"xyz", indexes=1)
    two = RequestFactory("h:1", "b", "", "", b"xyz", indexes=2)
    head = (
        b"PUT /buckets/b/keys/k4321 HTTP/1.1\r\nHost: h:1\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Length: 3\r\n"
    )
    assert one.put(4321) == head + b"X-Riak-Index-age_int: 321\r\n\r\nxyz"
    assert two.put(4321, b"VC") == head + (
        b"X-Riak-Index-age_int: 321\r\nX-Riak-Index-email_bin: user4321@example.com\r\n"
        b"X-Riak-Vclock: VC\r\n\r\nxyz"
    )


def test_index_queries_ask_for_the_term_of_the_key_index() -> None:
    eq = RequestFactory("h:1", "b b", "", "", b"", index_query="eq")
    page = RequestFactory("h:1", "b b", "", "", b"", index_query="range")
    host = b" HTTP/1.1\r\nHost: h:1\r\n\r\n"
    assert eq.get(12_042) == b"GET /buckets/b%20b/index/age_int/42" + host
    assert page.get(7) == b"GET /buckets/b%20b/index/age_int/7/999?max_results=100" + host
    assert page.put(7) == RequestFactory("h:1", "b b", "", "", b"").put(7)


def test_index_workloads_are_get_like() -> None:
    for mode in ("index-eq", "index-range"):
        w = Workload(mode, UniformKeys(5, random.Random(1)), random.Random(1))
        op = w.next_op()
        assert op is not None
        assert op[0] == GET
        assert not w.rmw


# --- config ---------------------------------------------------------------------------------


def test_connections_are_split_between_processes_without_overlap() -> None:
    cfg = BenchConfig(connections=7, procs=3)
    parts = [list(cfg.connections_of(p)) for p in range(3)]
    assert parts == [[0, 1, 2], [3, 4], [5, 6]]


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"workload": "scan"}, "--workload"),
        ({"read_ratio": 1.5}, "--read-ratio"),
        ({"connections": 1, "procs": 2}, "--connections"),
        ({"r": "most"}, "--r"),
        ({"n_val": 0}, "--n"),
        ({"indexes": 3}, "--indexes 3"),
        ({"indexes": -1}, "--indexes -1"),
        ({"indexes": 1, "protocol": "pb"}, "--indexes 1: .*HTTP only"),
        ({"workload": "index-eq", "protocol": "pb", "preload": False}, "index-eq: .*HTTP only"),
        ({"workload": "index-range", "protocol": "pb", "indexes": 2}, "index-range: .*HTTP"),
        ({"workload": "counter", "indexes": 1}, "--indexes 1: counters"),
        ({"workload": "index-eq", "indexes": 1, "r": "2"}, "--r 2"),
        ({"workload": "index-eq"}, "--indexes 1 or 2"),
    ],
)
def test_bad_options_name_themselves(kwargs: dict[str, object], option: str) -> None:
    with pytest.raises(BenchConfigError, match=option):
        BenchConfig(**kwargs)  # type: ignore[arg-type]


def test_index_workloads_name_their_query() -> None:
    assert BenchConfig(workload="index-eq", indexes=1).index_query == "eq"
    assert BenchConfig(workload="index-range", preload=False).index_query == "range"
    assert BenchConfig(workload="get", indexes=2).index_query is None


def test_urls_may_be_repeated_or_comma_separated() -> None:
    got = parse_urls(["http://127.0.0.1:8098,127.0.0.1:8198", "http://h:1"])
    assert got == [Target("127.0.0.1", 8098), Target("127.0.0.1", 8198), Target("h", 1)]


# --- end to end -----------------------------------------------------------------------------


class FakeNode:
    """Just enough of the object API: values by key, a vclock that counts writes."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}  # key -> writes so far
        self.n_val = 3
        self.gets = 0
        self.puts = 0
        self.bad: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ping", self.ping)
        app.router.add_get("/buckets/bench/props", self.get_props)
        app.router.add_put("/buckets/bench/props", self.put_props)
        app.router.add_get("/buckets/bench/keys/{key}", self.get)
        app.router.add_put("/buckets/bench/keys/{key}", self.put)
        return app

    @staticmethod
    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def get_props(self, request: web.Request) -> web.Response:
        return web.json_response({"props": {"n_val": self.n_val}})

    async def put_props(self, request: web.Request) -> web.Response:
        self.n_val = (await request.json())["props"]["n_val"]
        return web.Response(status=204)

    async def get(self, request: web.Request) -> web.Response:
        self.gets += 1
        if request.query.get("r") != "2":
            self.bad.append(f"GET query {request.query_string!r}")
        writes = self.values.get(request.match_info["key"])
        if writes is None:
            return web.Response(status=404, text="not found\n")
        return web.Response(body=b"v" * 100, headers={"X-Riak-Vclock": f"vc{writes}"})

    async def put(self, request: web.Request) -> web.Response:
        self.puts += 1
        key = request.match_info["key"]
        body = await request.read()
        if len(body) != 64 or request.query.get("w") != "all":
            self.bad.append(f"PUT {len(body)} bytes, query {request.query_string!r}")
        writes = self.values.get(key)
        context = request.headers.get("X-Riak-Vclock")
        if writes is not None and context != f"vc{writes}":
            self.bad.append(f"PUT {key} with context {context!r}, at vc{writes}")
        self.values[key] = (writes or 0) + 1
        return web.Response(status=204)


async def test_a_short_read_modify_write_run_counts_every_request_without_errors() -> None:
    node = FakeNode()
    async with TestServer(node.app(), host="127.0.0.1") as server:
        cfg = BenchConfig(
            workload="rmw",
            keys=50,  # one connection: every PUT must carry the context its GET read
            connections=1,
            procs=1,
            duration_s=1.0,
            warmup_s=0.3,
            value_bytes=64,
            r="2",
            w="all",
            n_val=2,
        )
        assert server.port is not None
        result = await run_bench(cfg, [Target("127.0.0.1", server.port)])
    assert node.bad == []
    assert node.n_val == 2
    assert result.preload == {"keys": 50, "seconds": result.preload["seconds"], "errors": 0}
    assert result.error_count == 0
    assert not result.failed
    gets, puts = result.per_op["get"]["count"], result.per_op["put"]["count"]
    assert result.requests == gets + puts > 0
    assert abs(gets - puts) <= 1
    assert node.puts >= 50 + puts
    assert node.gets >= gets
    assert result.statuses == {"200": gets, "204": puts}
    assert result.latency_ms["p50"] <= result.latency_ms["p99"] <= result.latency_ms["max"]


class FakeIndexNode:
    """PUTs keep their index headers; ``/buckets/bench/index/age_int/TERM`` answers the
    keys whose ``age_int`` is TERM."""

    def __init__(self) -> None:
        self.ages: dict[str, str] = {}
        self.emails: dict[str, str] = {}
        self.queried: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.get("/ping", FakeNode.ping),
                web.put("/buckets/bench/keys/{key}", self.put),
                web.get("/buckets/bench/index/age_int/{term}", self.query),
            ]
        )
        return app

    async def put(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        self.ages[key] = request.headers["X-Riak-Index-age_int"]
        self.emails[key] = request.headers["X-Riak-Index-email_bin"]
        return web.Response(status=204)

    async def query(self, request: web.Request) -> web.Response:
        term = request.match_info["term"]
        self.queried.append(term)
        return web.json_response({"keys": sorted(k for k, a in self.ages.items() if a == term)})


async def test_an_index_run_preloads_index_headers_and_counts_queries_as_gets() -> None:
    node = FakeIndexNode()
    async with TestServer(node.app(), host="127.0.0.1") as server:
        cfg = BenchConfig(
            workload="index-eq",
            indexes=2,
            keys=1200,
            connections=2,
            procs=1,
            duration_s=0.5,
            warmup_s=0.0,
        )
        assert server.port is not None
        result = await run_bench(cfg, [Target("127.0.0.1", server.port)])
    assert node.ages == {f"k{i}": str(i % 1000) for i in range(1200)}
    assert node.emails == {f"k{i}": f"user{i}@example.com" for i in range(1200)}
    assert result.error_count == 0
    assert set(result.per_op) == {"get"}
    assert result.statuses == {"200": result.requests}
    assert node.queried
    assert all(0 <= int(t) < 1000 for t in node.queried)
