"""Secondary index queries over PB (``RpbIndexReq`` 25 / ``RpbIndexResp`` 26): the node's
side (``pb_api.index`` behind ``Handlers``, served by a ``PbConnection`` over a fake
transport and a fake service) and our client's (``pb_api.client_index``, ``index_op``),
which are run against each other through the real message codec.

Every bad input must come back as an ``RpbErrorResp`` with the words HTTP would say,
and the connection must go on (a ping after it is answered).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar, cast

import pytest
from google.protobuf.message import Message

from dynamo.kv.index import decode_continuation, encode_continuation
from http_api import indexes
from http_api.access import ConcurrencyLimit
from http_api.client_index import IndexResult
from http_api.errors import NotFound, ServiceError, Unavailable
from http_api.indexes import IndexPage, IndexQuery
from http_api.service import NodeService
from http_api.types import typed_bucket
from pb_api import messages
from pb_api.client import AsyncPbClient, PbClient
from pb_api.client_core import Call, Op, PbClientCore, PbError, error_for
from pb_api.client_index import index_req, index_result
from pb_api.codec import FrameDecoder
from pb_api.handlers import OPERATIONS
from pb_api.index import MAX_RESULTS_LIMIT, query_from_pb
from pb_api.messages import Code, frame
from pb_api.proto import riak_kv_pb2 as kv
from pb_api.proto import riak_pb2 as core
from pb_api.server import PbConfig, PbConnection, PbServer

T = TypeVar("T")
EQ, RANGE = kv.RpbIndexReq.eq, kv.RpbIndexReq.range
MAX_FRAME = 1 << 20
PING = frame(Code.PING_REQ)


class FakeIndexService:
    """The index part of the service: answers the scripted pages (``index_query`` gives
    them merged, ``stream_index`` one by one, then raises ``fail`` if set) and records
    what it was asked. Continuations are checked by the store's own decoder."""

    node_name = "fake"
    max_object_bytes = 1024

    def __init__(
        self, *pages: IndexPage, fail: ServiceError | None = None, types: tuple[bytes, ...] = ()
    ) -> None:
        self.pages = list(pages)
        self.fail = fail
        self.types = types
        self.asked: list[tuple[str, bytes, IndexQuery]] = []

    async def index_query(self, bucket: bytes, query: IndexQuery) -> IndexPage:
        self.asked.append(("query", bucket, query))
        decode_continuation(bucket, query)
        results = tuple(r for p in self.pages for r in p.results)
        return IndexPage(results=results, continuation=self.pages[-1].continuation)

    async def stream_index(self, bucket: bytes, query: IndexQuery) -> AsyncIterator[IndexPage]:
        self.asked.append(("stream", bucket, query))
        decode_continuation(bucket, query)
        for page in self.pages:
            yield page
        if self.fail is not None:
            raise self.fail

    def check_type(self, btype: bytes) -> None:
        if btype not in self.types:
            raise NotFound(f"bucket type {btype.decode()!r} does not exist")


class FakeTransport(asyncio.Transport):
    """What a connection writes, kept; closing is remembered."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


Reply = tuple[int, Message | None]


async def serve(
    svc: FakeIndexService, *frames: bytes, observed: list[str] | None = None
) -> tuple[list[Reply], bool]:
    """The decoded frames one connection answers ``frames`` with, and whether it closed."""
    server = PbServer(
        cast(NodeService, svc),
        PbConfig(max_frame_bytes=MAX_FRAME),
        limit=ConcurrencyLimit(8),
        observe=None if observed is None else (lambda op, status, s: observed.append(op)),
    )
    conn, transport = PbConnection(server), FakeTransport()
    conn.connection_made(transport)
    conn.data_received(b"".join(frames))
    assert conn.worker is not None
    await conn.worker
    out = FrameDecoder(MAX_FRAME).feed(bytes(transport.written))
    return [(f.code, messages.decode(f.code, f.body)) for f in out], transport.closing


async def ask(svc: FakeIndexService, **fields: Any) -> list[kv.RpbIndexResp]:
    """The responses to one ``RpbIndexReq``, asserting that none is an error."""
    replies, closed = await serve(svc, frame(Code.INDEX_REQ, kv.RpbIndexReq(**fields)))
    assert not closed
    assert all(code == Code.INDEX_RESP for code, _ in replies), replies
    return [cast(kv.RpbIndexResp, msg) for _, msg in replies]


def req(index: bytes = b"age_int", **fields: Any) -> dict[str, Any]:
    return {"bucket": b"users", "index": index, **fields}


def page(*results: tuple[str, bytes], continuation: str | None = None) -> IndexPage:
    return IndexPage(results=results, continuation=continuation)


def cont_for(bucket: bytes, q: IndexQuery) -> str:
    """A continuation the store would give for ``q`` of ``bucket``."""
    return encode_continuation(bucket, q, (b"23", b"ann"))


# --- The wire: Riak's numbers ------------------------------------------------------------------


def test_codes_and_field_numbers_are_riaks() -> None:
    assert (Code.INDEX_REQ, Code.INDEX_RESP) == (25, 26)
    assert messages.REQUESTS[Code.INDEX_REQ] == Code.INDEX_RESP
    assert OPERATIONS[Code.INDEX_REQ] == "index"
    fields = kv.RpbIndexReq.DESCRIPTOR.fields_by_name
    numbers = {name: f.number for name, f in fields.items()}
    assert numbers == {
        "bucket": 1, "index": 2, "qtype": 3, "key": 4, "range_min": 5, "range_max": 6,
        "return_terms": 7, "stream": 8, "max_results": 9, "continuation": 10, "timeout": 11,
        "type": 12, "term_regex": 13, "pagination_sort": 14, "cover_context": 15,
        "return_body": 16,
    }  # fmt: skip
    assert (EQ, RANGE) == (0, 1)
    resp = {name: f.number for name, f in kv.RpbIndexResp.DESCRIPTOR.fields_by_name.items()}
    assert resp == {"keys": 1, "results": 2, "continuation": 3, "done": 4}


# --- Requests to queries ---------------------------------------------------------------------


async def test_an_eq_query_asks_one_term() -> None:
    svc = FakeIndexService(page(("ann@x.org", b"ann")))
    (resp,) = await ask(svc, **req(b"Email_BIN", qtype=EQ, key=b"ann@x.org"))
    assert svc.asked == [("query", b"users", IndexQuery(name="email_bin", start="ann@x.org"))]
    assert list(resp.keys) == [b"ann"]
    assert not resp.results
    assert not resp.HasField("continuation")


async def test_a_range_query_carries_every_option() -> None:
    svc = FakeIndexService(page(), types=(b"people",))
    bucket = typed_bucket(b"people", b"users")
    want = indexes.query("age_int", "20", "29", return_terms=True, max_results=10)
    cont = cont_for(bucket, want)
    fields = req(
        qtype=RANGE, range_min=b"020", range_max=b"+29", return_terms=True, max_results=10,
        continuation=cont.encode(), timeout=1500, type=b"people", pagination_sort=True,
    )  # fmt: skip
    await ask(svc, **fields)
    ((how, asked_bucket, q),) = svc.asked
    assert (how, asked_bucket) == ("query", bucket)
    assert q == IndexQuery(
        name="age_int", start="20", end="29", return_terms=True, max_results=10,
        continuation=cont, timeout_ms=1500,
    )  # fmt: skip


@pytest.mark.parametrize("extra", [{}, {"timeout": 0}], ids=["absent", "zero"])
async def test_no_timeout_or_zero_is_the_default(extra: dict[str, Any]) -> None:
    svc = FakeIndexService(page())
    await ask(svc, **req(qtype=EQ, key=b"7"), **extra)
    assert svc.asked[0][2].timeout_ms is None


async def test_a_term_regex_and_an_empty_continuation() -> None:
    svc = FakeIndexService(page())
    await ask(svc, **req(b"name_bin", qtype=RANGE, range_min=b"a", range_max=b"z",
                         term_regex=b"^an", continuation=b""))  # fmt: skip
    q = svc.asked[0][2]
    assert (q.term_regex, q.continuation) == ("^an", None)


@pytest.mark.parametrize(
    ("fields", "want"),
    [
        (req(b"$bucket", qtype=EQ, key=b"users"), IndexQuery(name="$bucket", start="users")),
        (req(b"$key", qtype=EQ, key=b"ann"), IndexQuery(name="$key", start="ann")),
        (
            req(b"$key", qtype=RANGE, range_min=b"a", range_max=b"m", return_terms=True),
            IndexQuery(name="$key", start="a", end="m", return_terms=True),
        ),
    ],
    ids=["$bucket", "$key eq", "$key range"],
)
async def test_bucket_and_key_indexes_are_asked_alike(
    fields: dict[str, Any], want: IndexQuery
) -> None:
    svc = FakeIndexService(page())
    await ask(svc, **fields)
    assert svc.asked[0][2] == want


# --- Pages to responses ----------------------------------------------------------------------


async def test_return_terms_on_a_range_answers_results() -> None:
    svc = FakeIndexService(page(("23", b"ann"), ("23", b"bob"), ("29", b"ann"), continuation="C"))
    (resp,) = await ask(svc, **req(qtype=RANGE, range_min=b"20", range_max=b"29",
                                   return_terms=True))  # fmt: skip
    assert [(p.key, p.value) for p in resp.results] == [
        (b"23", b"ann"), (b"23", b"bob"), (b"29", b"ann"),
    ]  # fmt: skip
    assert not resp.keys
    assert resp.continuation == b"C"
    assert not resp.done


@pytest.mark.parametrize(
    "fields",
    [
        req(qtype=RANGE, range_min=b"20", range_max=b"29"),
        req(qtype=EQ, key=b"23", return_terms=True),  # terms only on a range, as Riak
        req(b"$bucket", qtype=RANGE, range_min=b"a", range_max=b"b", return_terms=True),
    ],
    ids=["range", "eq with return_terms", "$bucket with return_terms"],
)
async def test_otherwise_keys_each_once(fields: dict[str, Any]) -> None:
    svc = FakeIndexService(page(("23", b"ann"), ("23", b"bob"), ("29", b"ann")))
    (resp,) = await ask(svc, **fields)
    assert list(resp.keys) == [b"ann", b"bob"]
    assert not resp.results


# --- Streams ---------------------------------------------------------------------------------


async def test_a_stream_sends_a_frame_per_chunk_then_done_with_the_continuation() -> None:
    svc = FakeIndexService(
        page(("20", b"a"), ("21", b"b")),
        page(),  # nothing from this node: no frame
        page(("22", b"c"), continuation="NEXT"),
    )
    fields = req(qtype=RANGE, range_min=b"20", range_max=b"29", stream=True, max_results=3)
    *chunks, done = await ask(svc, **fields)
    assert [list(r.keys) for r in chunks] == [[b"a", b"b"], [b"c"]]
    assert not any(r.done or r.HasField("continuation") for r in chunks)
    assert done.done
    assert done.continuation == b"NEXT"
    assert not done.keys
    assert not done.results
    assert svc.asked[0][0] == "stream"


async def test_a_stream_of_terms_without_continuation() -> None:
    svc = FakeIndexService(page(("ann", b"ann")))
    fields = req(b"$key", qtype=RANGE, range_min=b"a", range_max=b"z", return_terms=True,
                 stream=True)  # fmt: skip
    first, done = await ask(svc, **fields)
    assert [(p.key, p.value) for p in first.results] == [(b"ann", b"ann")]
    assert done.done
    assert not done.HasField("continuation")


async def test_an_empty_stream_is_just_done() -> None:
    (done,) = await ask(FakeIndexService(page()), **req(qtype=EQ, key=b"1", stream=True))
    assert done.done


async def test_a_stream_broken_midway_ends_with_an_error_and_the_connection_goes_on() -> None:
    svc = FakeIndexService(page(("1", b"a")), fail=Unavailable("R-value unsatisfied: 1/2"))
    body = kv.RpbIndexReq(**req(qtype=EQ, key=b"1", stream=True))
    replies, closed = await serve(svc, frame(Code.INDEX_REQ, body), PING)
    codes = [code for code, _ in replies]
    assert codes == [Code.INDEX_RESP, Code.ERROR_RESP, Code.PING_RESP]
    assert cast(core.RpbErrorResp, replies[1][1]).errmsg == b"R-value unsatisfied: 1/2"
    assert not closed


async def test_index_requests_are_counted_as_index() -> None:
    observed: list[str] = []
    body = kv.RpbIndexReq(**req(qtype=EQ, key=b"1"))
    await serve(FakeIndexService(page()), frame(Code.INDEX_REQ, body), observed=observed)
    assert observed == ["index"]


# --- Bad input: an RpbErrorResp that says why, and the connection goes on ---------------------

_OTHER_QUERY = indexes.query("age_int", "1", "5")
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("unknown suffix", req(b"age", qtype=EQ, key=b"1"), "unknown index 'age'"),
    ("int bound", req(qtype=RANGE, range_min=b"1", range_max=b"x"), "'x' is not an integer"),
    ("int term", req(qtype=EQ, key=b"1.5"), "'1.5' is not an integer"),
    (
        "bad regex",
        req(b"name_bin", qtype=RANGE, range_min=b"a", range_max=b"b", term_regex=b"(a"),
        "is not a regular expression",
    ),
    (
        "regex on _int",
        req(qtype=RANGE, range_min=b"1", range_max=b"2", term_regex=b"1"),
        "can not use term regular expressions on integer queries",
    ),
    (
        "garbage continuation",
        req(qtype=EQ, key=b"1", continuation=b"garbage!"),
        "is not one this store gave",
    ),
    (
        "foreign continuation",
        req(qtype=EQ, key=b"1", continuation=cont_for(b"users", _OTHER_QUERY).encode()),
        "continuation belongs to another query",
    ),
    (
        "continuation not UTF-8",
        req(qtype=EQ, key=b"1", continuation=b"\xff"),
        "continuation is not UTF-8",
    ),
    ("index not UTF-8", req(b"\xffage_int", qtype=EQ, key=b"1"), "index name is not UTF-8"),
    ("term not UTF-8", req(b"n_bin", qtype=EQ, key=b"\xc3"), "index term (key) is not UTF-8"),
    (
        "bound not UTF-8",
        req(b"n_bin", qtype=RANGE, range_min=b"a", range_max=b"\xff"),
        "index term (range_max) is not UTF-8",
    ),
    (
        "regex not UTF-8",
        req(b"n_bin", qtype=RANGE, range_min=b"a", range_max=b"b", term_regex=b"\xff"),
        "term_regex is not UTF-8",
    ),
    ("eq without key", req(qtype=EQ), "an eq index query needs key"),
    ("range without max", req(qtype=RANGE, range_min=b"1"), "needs both range_min and range_max"),
    ("range without min", req(qtype=RANGE, range_max=b"1"), "needs both range_min and range_max"),
    (
        "cover_context",
        req(qtype=EQ, key=b"1", cover_context=b"plan"),
        "cover_context is not supported",
    ),
    ("return_body", req(b"$key", qtype=EQ, key=b"1", return_body=True), "return_body is not"),
    ("max_results 0", req(qtype=EQ, key=b"1", max_results=0), "max_results=0"),
    (
        "max_results too large",
        req(qtype=EQ, key=b"1", max_results=MAX_RESULTS_LIMIT + 1),
        f"at most {MAX_RESULTS_LIMIT}",
    ),
    ("timeout too long", req(qtype=EQ, key=b"1", timeout=3_600_001), "is not a timeout"),
    ("unknown bucket type", req(qtype=EQ, key=b"1", type=b"nope"), "'nope' does not exist"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["one", "stream"])
@pytest.mark.parametrize(("fields", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_bad_input_is_an_error_that_says_why(
    fields: dict[str, Any], words: str, stream: bool
) -> None:
    svc = FakeIndexService(page(("1", b"a")))
    body = kv.RpbIndexReq(**fields, stream=stream)
    replies, closed = await serve(svc, frame(Code.INDEX_REQ, body), PING)
    assert [code for code, _ in replies] == [Code.ERROR_RESP, Code.PING_RESP]
    message = cast(core.RpbErrorResp, replies[0][1]).errmsg.decode()
    assert words in message
    assert "internal error" not in message
    assert not closed


def test_the_refusals_are_the_http_front_s() -> None:
    """The query is ``http_api.indexes.query``'s: the same words over both front ends."""
    with pytest.raises(ServiceError) as pb:
        query_from_pb(kv.RpbIndexReq(**req(b"age", qtype=EQ, key=b"1")))
    with pytest.raises(ServiceError) as http:
        indexes.query("age", "1")
    assert pb.value.message == http.value.message


# --- The client --------------------------------------------------------------------------------


def test_the_client_asks_eq_or_range_with_only_what_it_was_given() -> None:
    eq = index_req("users", "age_int", 23)
    assert (eq.qtype, eq.key, eq.HasField("range_min")) == (EQ, b"23", False)
    assert not any(eq.HasField(f) for f in ("return_terms", "stream", "max_results", "type"))
    full = index_req(
        "users", "name_bin", "a", "m", max_results=5, continuation="C", return_terms=True,
        term_regex="^a", stream=True, timeout_ms=900, bucket_type="people",
    )  # fmt: skip
    assert (full.qtype, full.range_min, full.range_max) == (RANGE, b"a", b"m")
    assert (full.max_results, full.continuation, full.return_terms) == (5, b"C", True)
    assert (full.term_regex, full.stream, full.timeout, full.type) == (b"^a", True, 900, b"people")


def test_the_client_reads_every_response_as_one_result() -> None:
    answer: list[Message | None] = [
        kv.RpbIndexResp(results=[core.RpbPair(key=b"23", value=b"ann")]),
        kv.RpbIndexResp(
            results=[core.RpbPair(key=b"23", value=b"bob"), core.RpbPair(key=b"29", value=b"ann")]
        ),
        kv.RpbIndexResp(done=True, continuation=b"NEXT"),
    ]
    got = index_result("Age_INT", answer)
    assert got == IndexResult(["ann", "bob"], [(23, "ann"), (23, "bob"), (29, "ann")], "NEXT")
    keys = index_result("x_bin", [kv.RpbIndexResp(keys=[b"a", b"b"]), kv.RpbIndexResp(keys=[b"a"])])
    assert keys == IndexResult(["a", "b"], [], None)


async def drive(svc: FakeIndexService, op: Op[T]) -> T:
    """Run a client operation against the node's handlers through the message codec."""
    try:
        step = next(op)
        while True:
            assert isinstance(step, Call)
            replies, _ = await serve(svc, frame(step.code, step.body))
            for code, msg in replies:
                if code == Code.ERROR_RESP:
                    raise error_for(cast(core.RpbErrorResp, msg).errmsg.decode())
                assert code == step.expect
            step = op.send([msg for _, msg in replies])
    except StopIteration as stop:
        result: T = stop.value
        return result


async def test_the_client_and_the_node_agree_on_a_paged_range() -> None:
    svc = FakeIndexService(
        page(("23", b"ann"), ("29", b"bob"), continuation="NEXT"), types=(b"people",)
    )
    core_ = PbClientCore()
    got = await drive(svc, core_.index_op("users", "age_int", 20, 29, return_terms=True))
    assert got == IndexResult(["ann", "bob"], [(23, "ann"), (29, "bob")], "NEXT")
    op = core_.index_op("users", "age_int", 20, 29, max_results=2, bucket_type="people")
    assert await drive(svc, op) == IndexResult(["ann", "bob"], [], "NEXT")
    (_, bucket, q) = svc.asked[1]
    assert bucket == typed_bucket(b"people", b"users")
    assert q == indexes.query("age_int", "20", "29", max_results=2)


async def test_the_client_and_the_node_agree_on_a_stream() -> None:
    svc = FakeIndexService(page(("users", b"a")), page(("users", b"b")))
    got = await drive(svc, PbClientCore().index_op("users", "$bucket", "users", stream=True))
    assert got == IndexResult(["a", "b"], [], None)


async def test_the_client_raises_the_node_s_refusal() -> None:
    with pytest.raises(PbError, match="unknown index 'age'"):
        await drive(FakeIndexService(page()), PbClientCore().index_op("users", "age", 1))


# --- Both shells over a socket ---------------------------------------------------------------


@pytest.fixture
async def node() -> AsyncIterator[tuple[FakeIndexService, int]]:
    svc = FakeIndexService(page(("23", b"ann"), ("29", b"bob"), continuation="NEXT"))
    server = PbServer(
        cast(NodeService, svc), PbConfig(max_frame_bytes=MAX_FRAME), limit=ConcurrencyLimit(8)
    )
    port = await server.start("127.0.0.1", 0)
    yield svc, port
    await server.close()


async def test_both_clients_have_index(node: tuple[FakeIndexService, int]) -> None:
    _, port = node
    want = IndexResult(["ann", "bob"], [(23, "ann"), (29, "bob")], "NEXT")
    async with AsyncPbClient(f"pb://127.0.0.1:{port}") as c:
        assert await c.index("users", "age_int", 20, 29, return_terms=True) == want
        assert await c.index("users", "age_int", 20, 29, stream=True) == IndexResult(
            ["ann", "bob"], [], "NEXT"
        )

    def blocking() -> IndexResult:
        with PbClient(f"pb://127.0.0.1:{port}", timeout_s=5) as c:
            return c.index("users", "age_int", 20, 29, return_terms=True, stream=True)

    assert await asyncio.to_thread(blocking) == want
