"""What each PB request does, over the same ``http_api.service`` Protocol as HTTP.

Each handler takes a decoded request and returns its response frame (a listing yields
several). They do no socket work; the asyncio shell
(``pb_api.server``) decodes frames, enforces auth, TLS and the concurrency limit, and
writes what is yielded. A ``ServiceError`` becomes Riak's ``RpbErrorResp`` with the
same text HTTP sends; the connection stays usable.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from http_api.errors import BadRequest, PreconditionFailed
from http_api.service import RIAK_KV_VERSION, NodeService, active_preflist
from http_api.types import DEFAULT_TYPE, GetOptions, typed_bucket
from pb_api import convert, datatypes
from pb_api import index as pb_index
from pb_api.messages import Code, frame
from pb_api.proto import riak_kv_pb2 as kv
from pb_api.proto import riak_pb2 as core

#: Metric labels per request code (low cardinality, as HTTP's).
OPERATIONS: dict[int, str] = {
    Code.PING_REQ: "ping",
    Code.GET_REQ: "get",
    Code.PUT_REQ: "put",
    Code.DEL_REQ: "delete",
    Code.LIST_KEYS_REQ: "list_keys",
    Code.LIST_BUCKETS_REQ: "list_buckets",
    Code.INDEX_REQ: "index",
    Code.GET_BUCKET_REQ: "props",
    Code.SET_BUCKET_REQ: "props",
    Code.RESET_BUCKET_REQ: "props",
    Code.GET_BUCKET_TYPE_REQ: "props",
    Code.SET_BUCKET_TYPE_REQ: "props",
    Code.GET_SERVER_INFO_REQ: "discovery",
    Code.GET_BUCKET_KEY_PREFLIST_REQ: "admin",
    Code.DT_FETCH_REQ: "dt_fetch",
    Code.DT_UPDATE_REQ: "dt_update",
}


@dataclass(slots=True)
class ConnState:
    """What one connection remembers between requests."""

    client_id: bytes = field(default_factory=lambda: secrets.token_bytes(4))
    tls: bool = False
    authenticated: bool = False


Single = Callable[[Any, ConnState], Awaitable[bytes]]
Streamed = Callable[[Any], AsyncIterator[bytes]]


class Handlers:
    """The request handlers of one node's PB front end: ``single`` answer with one frame,
    ``streamed`` (the listings, index queries) with several, the last marked done (or
    with one, when the request did not ask for a stream)."""

    def __init__(self, service: NodeService) -> None:
        self.svc = service
        self.single: dict[int, Single] = {
            Code.GET_REQ: self.get,
            Code.PUT_REQ: self.put,
            Code.DEL_REQ: self.delete,
            Code.PING_REQ: self.ping,
            Code.GET_SERVER_INFO_REQ: self.server_info,
            Code.GET_CLIENT_ID_REQ: self.get_client_id,
            Code.SET_CLIENT_ID_REQ: self.set_client_id,
            Code.GET_BUCKET_REQ: self.get_bucket,
            Code.SET_BUCKET_REQ: self.set_bucket,
            Code.RESET_BUCKET_REQ: self.reset_bucket,
            Code.GET_BUCKET_TYPE_REQ: self.get_bucket_type,
            Code.SET_BUCKET_TYPE_REQ: self.set_bucket_type,
            Code.GET_BUCKET_KEY_PREFLIST_REQ: self.preflist,
            Code.DT_FETCH_REQ: self.dt_fetch,
            Code.DT_UPDATE_REQ: self.dt_update,
        }
        self.streamed: dict[int, Streamed] = {
            Code.LIST_KEYS_REQ: self.list_keys,
            Code.LIST_BUCKETS_REQ: self.list_buckets,
            Code.INDEX_REQ: self.index,
        }

    # --- The node, the connection -------------------------------------------------------------

    def _type(self, msg: Any) -> bytes:
        """The request's bucket type (absent: ``default``); ``NotFound`` unless it exists
        and is active."""
        btype: bytes = msg.type if msg.HasField("type") else DEFAULT_TYPE
        if btype != DEFAULT_TYPE:
            convert.text(btype, "bucket type")
            self.svc.check_type(btype)
        return btype

    def _bucket(self, msg: Any) -> bytes:
        """The bucket the request names, as the store knows it (its type included)."""
        return typed_bucket(self._type(msg), convert.bucket(msg.bucket))

    async def ping(self, msg: None, conn: ConnState) -> bytes:
        return frame(Code.PING_RESP)

    async def server_info(self, msg: None, conn: ConnState) -> bytes:
        info = core.RpbGetServerInfoResp(
            node=self.svc.node_name.encode(), server_version=RIAK_KV_VERSION.encode()
        )
        return frame(Code.GET_SERVER_INFO_RESP, info)

    async def get_client_id(self, msg: None, conn: ConnState) -> bytes:
        return frame(Code.GET_CLIENT_ID_RESP, kv.RpbGetClientIdResp(client_id=conn.client_id))

    async def set_client_id(self, msg: kv.RpbSetClientIdReq, conn: ConnState) -> bytes:
        conn.client_id = msg.client_id  # kept for the connection, as Riak; vclocks ignore it
        return frame(Code.SET_CLIENT_ID_RESP)

    async def dt_fetch(self, msg: Any, conn: ConnState) -> bytes:
        return await datatypes.fetch(self.svc, msg)

    async def dt_update(self, msg: Any, conn: ConnState) -> bytes:
        return await datatypes.update(self.svc, msg)

    # --- Bucket props and types ---------------------------------------------------------------

    async def get_bucket(self, msg: core.RpbGetBucketReq, conn: ConnState) -> bytes:
        props = convert.props_to_pb(self.svc.bucket_props(self._bucket(msg)))
        return frame(Code.GET_BUCKET_RESP, core.RpbGetBucketResp(props=props))

    async def set_bucket(self, msg: core.RpbSetBucketReq, conn: ConnState) -> bytes:
        bucket = self._bucket(msg)
        overrides = convert.props_from_pb(msg.props)
        await self.svc.set_bucket_props(bucket, overrides)
        return frame(Code.SET_BUCKET_RESP)

    async def reset_bucket(self, msg: core.RpbResetBucketReq, conn: ConnState) -> bytes:
        await self.svc.reset_bucket_props(self._bucket(msg))
        return frame(Code.RESET_BUCKET_RESP)

    async def get_bucket_type(self, msg: core.RpbGetBucketTypeReq, conn: ConnState) -> bytes:
        convert.text(msg.type, "bucket type")
        props = convert.props_to_pb(self.svc.type_props(msg.type))
        return frame(Code.GET_BUCKET_RESP, core.RpbGetBucketResp(props=props))

    async def set_bucket_type(self, msg: core.RpbSetBucketTypeReq, conn: ConnState) -> bytes:
        if msg.type == DEFAULT_TYPE:
            raise BadRequest(
                "the default bucket type's props come from the node config (n_val): set props"
                " per bucket instead (RpbSetBucketReq)"
            )
        name = convert.text(msg.type, "bucket type")
        await self.svc.update_bucket_type(name, convert.props_from_pb(msg.props, type_props=True))
        return frame(Code.SET_BUCKET_RESP)

    # --- Objects ------------------------------------------------------------------------------

    async def get(self, req: kv.RpbGetReq, conn: ConnState) -> bytes:
        bucket, key = self._bucket(req), convert.key(req.key)
        result = await self.svc.fetch(bucket, key, convert.get_options(req))
        if req.HasField("if_modified") and result.context == req.if_modified:
            return frame(Code.GET_RESP, kv.RpbGetResp(unchanged=True))
        resp = convert.get_resp(result, head=req.head, deleted_vclock=req.deletedvclock)
        return frame(Code.GET_RESP, resp)

    async def put(self, req: kv.RpbPutReq, conn: ConnState) -> bytes:
        bucket = self._bucket(req)
        chosen = None if req.HasField("key") else secrets.token_urlsafe(18).encode()
        key = convert.key(req.key) if chosen is None else chosen
        opts = convert.put_options(req)
        content = convert.content_from_pb(req.content, self.svc.max_object_bytes)
        context = req.vclock if req.HasField("vclock") and req.vclock else None
        if req.if_not_modified:
            current = await self.svc.fetch(
                bucket,
                key,
                GetOptions(
                    timeout_ms=opts.timeout_ms, sloppy_quorum=opts.sloppy_quorum, n_val=opts.n_val
                ),
            )
            if current.context != (context or b""):
                raise PreconditionFailed(
                    "the object changed since the vclock sent (if_not_modified): read it again"
                )
        result = await self.svc.store(bucket, key, content, context, opts)
        resp = convert.put_resp(
            result if opts.return_body else None, head=req.return_head, key=chosen
        )
        return frame(Code.PUT_RESP, resp)

    async def delete(self, req: kv.RpbDelReq, conn: ConnState) -> bytes:
        bucket, key = self._bucket(req), convert.key(req.key)
        context = req.vclock if req.HasField("vclock") and req.vclock else None
        await self.svc.delete(bucket, key, context, convert.delete_options(req))
        return frame(Code.DEL_RESP)  # as Riak: a key that was not there is deleted too

    # --- Listings (streamed: a frame per chunk, then one with done) ----------------------------

    async def list_keys(self, req: kv.RpbListKeysReq) -> AsyncIterator[bytes]:
        bucket = self._bucket(req)
        async for chunk in self.svc.list_keys(bucket, convert.timeout_ms(req)):
            if chunk:
                yield frame(Code.LIST_KEYS_RESP, kv.RpbListKeysResp(keys=chunk))
        yield frame(Code.LIST_KEYS_RESP, kv.RpbListKeysResp(done=True))

    async def list_buckets(self, req: kv.RpbListBucketsReq) -> AsyncIterator[bytes]:
        btype = self._type(req)
        timeout = convert.timeout_ms(req)
        if not req.stream:
            names: list[bytes] = []
            async for chunk in self.svc.list_buckets(timeout, btype):
                names.extend(chunk)
            yield frame(Code.LIST_BUCKETS_RESP, kv.RpbListBucketsResp(buckets=names, done=True))
            return
        async for chunk in self.svc.list_buckets(timeout, btype):
            if chunk:
                yield frame(Code.LIST_BUCKETS_RESP, kv.RpbListBucketsResp(buckets=chunk))
        yield frame(Code.LIST_BUCKETS_RESP, kv.RpbListBucketsResp(done=True))

    async def index(self, req: kv.RpbIndexReq) -> AsyncIterator[bytes]:
        """A secondary index query (``pb_api.index``): one frame, or with ``stream`` a frame
        per chunk, then one with done."""
        query = pb_index.query_from_pb(req)
        async for out in pb_index.answer(self.svc, self._bucket(req), query, stream=req.stream):
            yield out

    # --- Preference list ----------------------------------------------------------------------

    async def preflist(self, req: kv.RpbGetBucketKeyPreflistReq, conn: ConnState) -> bytes:
        """The key's active preference list: its up primaries, and for a down one the
        fallback standing in (``primary`` false); ``partition``: the ring range's index."""
        items = active_preflist(self.svc.preflist(self._bucket(req), convert.key(req.key)))
        resp = kv.RpbGetBucketKeyPreflistResp(
            preflist=[
                kv.RpbBucketKeyPreflistItem(
                    partition=e["partition"], node=str(e["node"]).encode(), primary=e["primary"]
                )
                for e in items
            ]
        )
        return frame(Code.GET_BUCKET_KEY_PREFLIST_RESP, resp)
