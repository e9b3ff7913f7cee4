"""The node's bucket types and data types, as the service the client APIs call
(``http_api.service``): a mixin of ``dynamo.node.assembly.Node``.

A bucket of a type with a ``datatype`` holds only that kind of data: a plain object
written there, or a data type operation sent to a plain bucket, is refused with a 400
that says which to use. Updates travel as operations (``dynamo.kv.datatypes``) through
the ordinary write path: forwarded to a primary, applied there, replicated as states.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dynamo.kv import crdt, datatypes
from dynamo.node.bucket_types import NotHeldEverywhere
from gossip import bucket_types as bt
from gossip.bucket_types import BucketTypeError
from http_api.errors import BadRequest, Conflict, NotFound
from http_api.types import (
    DEFAULT_TYPE,
    BucketProps,
    Datatype,
    GetOptions,
    PutOptions,
    split_bucket,
)

if TYPE_CHECKING:
    from dynamo.kv.coordinator import Coordinator
    from dynamo.node.cluster import Cluster

DEFAULT_HLL_PRECISION = 14


def _name(btype: bytes) -> str:
    try:
        return btype.decode()
    except UnicodeDecodeError:
        raise BadRequest("the bucket type is not UTF-8: bucket type names are text")


class TypedService:
    """Bucket types and data types, over the node's cluster view and coordinator."""

    cluster: Cluster
    coordinator: Coordinator

    # --- Bucket types -------------------------------------------------------------------------

    def check_type(self, btype: bytes) -> None:
        if btype == DEFAULT_TYPE:
            return
        try:
            self.cluster.types.active(_name(btype))
        except BucketTypeError as e:
            raise NotFound(str(e))

    def type_props(self, btype: bytes) -> BucketProps:
        if btype == DEFAULT_TYPE:
            return self.cluster.default_props()
        name = _name(btype)
        if self.cluster.types.get(name) is None:
            raise NotFound(f"bucket type {name!r} does not exist")
        return self.cluster.types.base_props(name, self.cluster.default_props())

    def datatype_of(self, bucket: bytes) -> str | None:
        d = self.cluster.bucket_props(bucket).extra.get("datatype")
        return d if isinstance(d, str) else None

    def _type_call(self, fn: Any, *args: Any) -> dict[str, Any]:
        try:
            out: dict[str, Any] = fn(*args)
        except NotHeldEverywhere as e:
            raise Conflict(str(e))
        except BucketTypeError as e:
            raise BadRequest(str(e))
        return out

    def bucket_types(self) -> dict[str, Any]:
        return {"types": self.cluster.types.list()}

    def bucket_type_status(self, name: str) -> dict[str, Any]:
        try:
            return self.cluster.types.status(name)
        except BucketTypeError as e:
            raise NotFound(str(e))

    async def create_bucket_type(self, name: str, props: dict[str, Any]) -> dict[str, Any]:
        out = self._type_call(self.cluster.types.create, name, props)
        await self.cluster.spread()
        return out

    async def update_bucket_type(self, name: str, props: dict[str, Any]) -> dict[str, Any]:
        out = self._type_call(self.cluster.types.update, name, props)
        await self.cluster.spread()
        return out

    async def activate_bucket_type(self, name: str) -> dict[str, Any]:
        out = self._type_call(self.cluster.types.activate, name)
        await self.cluster.spread()
        return out

    # --- Data types ---------------------------------------------------------------------------

    def _kind(self, bucket: bytes) -> str:
        kind = self.datatype_of(bucket)
        if kind is None:
            btype, name = split_bucket(bucket)
            raise BadRequest(
                f"bucket {name.decode()!r} of type {btype.decode()!r} holds plain objects, not"
                " data types: use .../keys/{key}, or a bucket type created with a datatype"
            )
        return kind

    def refuse_datatype_bucket(self, bucket: bytes) -> None:
        """A plain object operation on a bucket whose type holds data types: a 400."""
        kind = self.datatype_of(bucket)
        if kind is not None:
            btype, name = split_bucket(bucket)
            raise BadRequest(
                f"bucket {name.decode()!r} of type {btype.decode()!r} holds {kind} data"
                f" types: use /types/{btype.decode()}/buckets/{name.decode()}/datatypes/{{key}}"
                " (or DtFetch/DtUpdate over PB)"
            )

    async def fetch_datatype(self, bucket: bytes, key: bytes, opts: GetOptions) -> Datatype:
        kind = self._kind(bucket)
        result = await self.coordinator.get(bucket, key, opts)
        try:
            merged = datatypes.states([s.content for s in result.siblings])
        except (crdt.CrdtFormatError, datatypes.DatatypeError) as e:
            raise BadRequest(f"the key holds no {kind}: {e}")
        if merged is None:
            return Datatype(kind=kind, value=crdt.value(kind, crdt.new(kind)), found=False)
        if merged[0] != kind:
            raise BadRequest(f"the key holds a {merged[0]}, not a {kind}")
        return Datatype(
            kind=kind,
            value=crdt.value(kind, merged[1]),
            context=crdt.context(kind, merged[1]),
        )

    async def update_datatype(
        self,
        bucket: bytes,
        key: bytes,
        op: dict[str, Any],
        context: bytes | None,
        opts: PutOptions,
    ) -> Datatype | None:
        kind = self._kind(bucket)
        props = self.cluster.bucket_props(bucket)
        precision = props.extra.get("hll_precision", DEFAULT_HLL_PRECISION)
        if type(precision) is not int or precision not in bt.HLL_PRECISIONS:
            precision = DEFAULT_HLL_PRECISION  # types are checked when made: not reached
        if context is not None:
            try:
                crdt.decode_context(context)
            except crdt.CrdtFormatError:
                raise BadRequest("context is not one a fetch returned: fetch and send its own")
        content = datatypes.op_content(kind, op, context, precision)
        result = await self.coordinator.put(bucket, key, content, None, opts)
        if result is None:
            return None
        merged = datatypes.states([s.content for s in result.siblings])
        if merged is None:
            return None
        return Datatype(
            kind=kind, value=crdt.value(kind, merged[1]), context=crdt.context(kind, merged[1])
        )
