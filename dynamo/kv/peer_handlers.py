"""What this node answers to its peers on the data path: replica reads and writes
(``get``, ``put``) and writes forwarded to it to coordinate (``coord_put``).

A forwarded write is coordinated at most once per forward id: a duplicated
request (the network may deliver one twice) gets the first one's answer instead
of a second version.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from dynamo.kv import object as objects
from dynamo.kv.coordinator import Coordinator
from dynamo.net import methods
from dynamo.net.methods import ForwardedPut, ReplicaRead, ReplicaWrite
from http_api.errors import ServiceError

FORWARD_DEDUPE = 10_000  # forward ids remembered, to coordinate a duplicate only once


class PeerHandlers:
    """The RPC handlers of the data path, over a coordinator and its replica."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.replica = coordinator.replica
        self.stats = coordinator.stats
        self.env = coordinator.env
        self._coordinated: OrderedDict[str, asyncio.Future[bytes | None]] = OrderedDict()

    def handle_get(self, req: ReplicaRead, peer: str) -> bytes | None:
        self.stats.vnode_gets.add(self.env.wallclock())
        return self.replica.read_raw(req.objkey, req.hint_for)

    async def handle_put(self, req: ReplicaWrite, peer: str) -> bool:
        incoming, _ = objects.decode(req.raw)
        self.stats.vnode_puts.add(self.env.wallclock())
        _, changed = self.replica.write(req.objkey, incoming, req.hint_for, req.allow_mult)
        if req.hint_for is not None and changed:
            self.stats.hints_written_total += 1
        if req.durable:
            await self.replica.store.sync_wal()
        return req.durable

    async def handle_coord_put(self, req: ForwardedPut, peer: str) -> bytes | None:
        """Coordinate a write forwarded by another node, at most once per forward id:
        a duplicated request gets the first one's answer instead of a second version.
        A refusal (quorum not met, a bad request) answers as a typed error, with its
        retry hint."""
        seen = self._coordinated.get(req.forward_id)
        if seen is not None:
            return await asyncio.shield(seen)
        fut: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._coordinated[req.forward_id] = fut
        while len(self._coordinated) > FORWARD_DEDUPE:
            self._coordinated.popitem(last=False)
        try:
            new = await self.coordinator.put_forwarded(
                req.bucket, req.key, req.content, req.context, req.opts
            )
        except ServiceError as e:
            refusal = methods.refusal(e)
            fut.set_exception(refusal)
            fut.exception()
            raise refusal from None
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()
            raise
        reply = objects.encode(new) if req.opts.return_body and new is not None else None
        fut.set_result(reply)
        return reply
