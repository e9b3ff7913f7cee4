"""What this node answers to its peers on the data path: replica reads and writes
(``get``, ``put``) and writes forwarded to it to coordinate (``coord_put``).

A forwarded write is coordinated at most once per forward id: a duplicated
request (the network may deliver one twice) gets the first one's answer instead
of a second version.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from dynamo.kv import object as objects
from dynamo.kv.coordinator import Coordinator
from http_api.errors import ServiceError
from http_api.types import PutOptions

FORWARD_DEDUPE = 10_000  # forward ids remembered, to coordinate a duplicate only once


class PeerHandlers:
    """The RPC handlers of the data path, over a coordinator and its replica."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.replica = coordinator.replica
        self.stats = coordinator.stats
        self.env = coordinator.env
        self._coordinated: OrderedDict[str, asyncio.Future[list[Any]]] = OrderedDict()

    def handle_get(self, body: Any, peer: str) -> bytes | None:
        objkey, hint_for = body
        self.stats.vnode_gets.add(self.env.wallclock())
        return self.replica.read_raw(objkey, hint_for)

    async def handle_put(self, body: Any, peer: str) -> list[bool]:
        objkey, raw, hint_for, allow_mult, durable = body
        incoming, _ = objects.decode(raw)
        self.stats.vnode_puts.add(self.env.wallclock())
        _, changed = self.replica.write(objkey, incoming, hint_for, allow_mult)
        if hint_for is not None and changed:
            self.stats.hints_written_total += 1
        if durable:
            await self.replica.store.sync_wal()
        return [durable]

    async def handle_coord_put(self, body: Any, peer: str) -> list[Any]:
        """Coordinate a write forwarded by another node, at most once per forward id:
        a duplicated request gets the first one's answer instead of a second version."""
        bucket, key, content, context, o, forward_id = body
        seen = self._coordinated.get(forward_id)
        if seen is not None:
            return await asyncio.shield(seen)
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._coordinated[forward_id] = fut
        while len(self._coordinated) > FORWARD_DEDUPE:
            self._coordinated.popitem(last=False)
        opts = PutOptions(
            w=o[0], dw=o[1], pw=o[2], timeout_ms=o[3], return_body=o[4], if_none_match=o[5]
        )
        try:
            new = await self.coordinator.put_forwarded(
                bucket, key, objects.content_from_wire(content), context, opts
            )
            reply: list[Any] = [
                0,
                objects.encode(new) if opts.return_body and new is not None else None,
            ]
        except ServiceError as e:
            reply = [e.status, e.message]
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()
            raise
        fut.set_result(reply)
        return reply
