"""Both sides of a forwarded write (``coord_put``): a node that is not among a key's
primaries forwards the write to one that is, and that one coordinates it.

A forwarded write is coordinated at most once per forward id (``node/boot/n``, unique
across restarts): a duplicated request, which the network may deliver, gets the first
one's answer instead of a second version. A refusal (quorum not met, a bad request,
overload) crosses back as a typed error with its retry hint, and the forwarder relays
it to its client as the coordinator gave it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING

from dynamo.kv import object as objects
from dynamo.kv.object import Obj
from dynamo.net import methods
from dynamo.net.methods import ForwardedPut
from dynamo.net.rpc import RemoteError, Unreachable
from http_api.errors import ServiceError
from http_api.types import Content, PutOptions

if TYPE_CHECKING:
    from dynamo.kv.coordinator import Coordinator

FORWARD_DEDUPE = 10_000  # forward ids remembered, to coordinate a duplicate only once


class Forwarding:
    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self._boot = f"{coordinator.env.rng.getrandbits(32):08x}"
        self._forwarded = 0
        self._coordinated: OrderedDict[str, asyncio.Future[bytes | None]] = OrderedDict()

    # --- The forwarder ------------------------------------------------------------------------

    async def forward(
        self,
        node: str,
        bucket: bytes,
        key: bytes,
        content: Content,
        context: bytes | None,
        opts: PutOptions,
    ) -> Obj | None:
        """Have ``node`` coordinate the write; its new copy if ``opts.return_body``.
        ``Unreachable`` if it certainly did not get the request (try another)."""
        c = self.coordinator
        c.stats.coord_redirs_total += 1
        self._forwarded += 1
        forward_id = f"{c.node_id}/{self._boot}/{self._forwarded}"
        body = ForwardedPut(bucket, key, content, context, opts, forward_id)
        timeout_s = c._timeout_s(opts.timeout_ms) + 1.0
        try:
            payload = await c.call(node, methods.COORD_PUT, body, timeout_s)
        except Unreachable:
            raise
        except Exception as e:
            refused = methods.service_error(e) if isinstance(e, RemoteError) else None
            if refused is not None:
                raise refused from None  # the coordinator's answer, relayed as it was
            raise c._fail(
                "forward",
                f"coordinator {node} did not answer ({e}); the write may have been applied",
            )
        return None if payload is None else objects.decode(payload)[0]

    # --- The coordinator it reaches -----------------------------------------------------------

    async def handle_coord_put(self, req: ForwardedPut, peer: str) -> bytes | None:
        """Coordinate a write forwarded here, at most once per forward id."""
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
