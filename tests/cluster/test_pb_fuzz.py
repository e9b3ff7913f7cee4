"""Frame fuzz on a real node's PB port: 10,000 random and mutated frames. Every complete
frame gets an answer or the connection is closed (and counted); nothing crashes the
node, nothing leaves a connection hanging, and the node serves afterwards."""

from __future__ import annotations

import random
import socket
import struct

import pytest

from dynamo.tools.localcluster import LocalCluster, http, wait_for
from http_api.admin import get_json
from pb_api.client import PbClient
from pb_api.messages import HEADER, Code, frame
from pb_api.proto import riak_kv_pb2 as kv
from pb_api.proto import riak_pb2 as core
from tests.cluster.conftest import MakeCluster

pytestmark = pytest.mark.cluster

FRAMES = 10_000
SEED = 20261204
MAX_OBJECT_BYTES = 4096  # the node's frame limit is this plus 1 MiB
ANSWER_TIMEOUT_S = 10.0
STREAMED = {Code.LIST_KEYS_RESP, Code.LIST_BUCKETS_RESP}


def corpus() -> list[bytes]:
    """Well-formed frames of every request the node serves."""
    content = kv.RpbContent(value=b"v", content_type=b"text/plain")
    content.usermeta.add(key=b"m", value=b"x")
    content.links.add(bucket=b"b", key=b"k", tag=b"t")
    props = core.RpbBucketProps(n_val=3, allow_mult=True, r=2)
    preflist = kv.RpbGetBucketKeyPreflistReq(bucket=b"b", key=b"k")
    return [
        frame(Code.PING_REQ),
        frame(Code.GET_SERVER_INFO_REQ),
        frame(Code.GET_CLIENT_ID_REQ),
        frame(Code.SET_CLIENT_ID_REQ, kv.RpbSetClientIdReq(client_id=b"abcd")),
        frame(Code.GET_REQ, kv.RpbGetReq(bucket=b"fz", key=b"k1", r=1, head=True)),
        frame(Code.GET_REQ, kv.RpbGetReq(bucket=b"fz", key=b"k2", deletedvclock=True)),
        frame(Code.PUT_REQ, kv.RpbPutReq(bucket=b"fz", key=b"k1", content=content, w=1)),
        frame(Code.PUT_REQ, kv.RpbPutReq(bucket=b"fz", content=content, return_body=True)),
        frame(Code.DEL_REQ, kv.RpbDelReq(bucket=b"fz", key=b"k2")),
        frame(Code.LIST_KEYS_REQ, kv.RpbListKeysReq(bucket=b"fz")),
        frame(Code.LIST_BUCKETS_REQ, kv.RpbListBucketsReq(stream=True)),
        frame(Code.GET_BUCKET_REQ, core.RpbGetBucketReq(bucket=b"fz")),
        frame(Code.SET_BUCKET_REQ, core.RpbSetBucketReq(bucket=b"fz2", props=props)),
        frame(Code.RESET_BUCKET_REQ, core.RpbResetBucketReq(bucket=b"fz2")),
        frame(Code.GET_BUCKET_TYPE_REQ, core.RpbGetBucketTypeReq(type=b"default")),
        frame(Code.GET_BUCKET_KEY_PREFLIST_REQ, preflist),
        frame(Code.AUTH_REQ, core.RpbAuthReq(user=b"u", password=b"p")),
        frame(Code.START_TLS),
    ]  # fmt: skip


def mutate(rng: random.Random, data: bytes) -> bytes:
    """A frame of the corpus with its code or body bytes changed (its length kept true)."""
    body = bytearray(data[HEADER.size :])
    code = data[4]
    choice = rng.random()
    if choice < 0.2 or not body:
        code = rng.randrange(256)
    elif choice < 0.8:
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(len(body))] = rng.randrange(256)
    elif choice < 0.9:
        del body[rng.randrange(len(body)) :]  # cut short (still a whole frame)
    else:
        body += rng.randbytes(rng.randint(1, 16))
    return HEADER.pack(len(body) + 1, code) + bytes(body)


class Conn:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), 5)
        self.sock.settimeout(ANSWER_TIMEOUT_S)

    def read(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def answer(self) -> bool:
        """Read the whole answer to one request; False if the node closed instead."""
        while True:
            head = self.read(4)
            if head is None:
                return False
            (length,) = struct.unpack(">I", head)
            body = self.read(length)
            if body is None:
                return False
            if body[0] not in STREAMED:
                return True
            msg = (
                kv.RpbListKeysResp if body[0] == Code.LIST_KEYS_RESP else kv.RpbListBucketsResp
            )()
            msg.ParseFromString(body[1:])
            if msg.done:
                return True


def test_ten_thousand_random_and_mutated_frames(make_cluster: MakeCluster) -> None:
    c: LocalCluster = make_cluster(
        1, settings=(f"max_object_bytes={MAX_OBJECT_BYTES}", "pb_stall_timeout_s=1")
    )
    n = c[0]
    rng = random.Random(SEED)
    print(f"PB frame fuzz: seed {SEED}")
    base = corpus()
    sent = answered = closed_by_node = closed_by_us = 0
    conn = Conn(n.pb_port)
    for _ in range(FRAMES):
        pick = rng.random()
        if pick < 0.25:
            data, expect_close = rng.choice(base), False
        elif pick < 0.65:
            data, expect_close = mutate(rng, rng.choice(base)), False
        elif pick < 0.95:
            body = rng.randbytes(rng.randint(0, 48))
            data, expect_close = HEADER.pack(len(body) + 1, rng.randrange(256)) + body, False
        elif pick < 0.97:
            data, expect_close = HEADER.pack(MAX_OBJECT_BYTES + (2 << 20), Code.PUT_REQ), True
        elif pick < 0.98:
            data, expect_close = b"\x00\x00\x00\x00" + rng.randbytes(8), True
        else:  # a frame cut short, then our side goes away
            whole = rng.choice(base)
            conn.sock.sendall(whole[: rng.randint(1, len(whole) - 1)])
            conn.sock.close()
            closed_by_us += 1
            sent += 1
            conn = Conn(n.pb_port)
            continue
        conn.sock.sendall(data)
        sent += 1
        if conn.answer():
            assert not expect_close, f"frame {sent} should have closed the connection"
            answered += 1
        else:
            closed_by_node += 1
            conn.sock.close()
            conn = Conn(n.pb_port)
    conn.sock.close()
    print(
        f"PB frame fuzz: {sent} frames, {answered} answered, {closed_by_node} closed by the"
        f" node, {closed_by_us} cut short by us"
    )
    assert sent == FRAMES
    assert n.running(), "the node died"
    with PbClient(f"pb://127.0.0.1:{n.pb_port}") as pb:
        assert pb.ping()
        pb.put("after", "k", b"v")
        assert pb.get("after", "k").value == b"v"
    assert http("GET", n.url + "/ping")[0] == 200

    def counted() -> bool:  # /stats is cached for about a second
        stats = get_json(n.url + "/stats")
        return bool(
            stats["pb_protocol_errors_total"] >= closed_by_node and stats["pbc_active"] == 0
        )

    wait_for(counted, 10, "every connection the node closed counted, none left open")
    log = (c.root / "n1.log").read_text()
    assert "bug:" not in log
    assert "Traceback" not in log
