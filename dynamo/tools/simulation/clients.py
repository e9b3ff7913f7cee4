"""The simulation's clients: the workloads' operations as calls on the nodes
themselves (no HTTP), each on a running node picked at random, with the outcome
classified as the checkers want it (``carts.Indeterminate``, ``Refused``, ``ServerBug``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from dynamo.node.assembly import Node
from dynamo.tools import carts
from http_api.errors import ServiceError, Unavailable
from http_api.types import Content, Datatype, GetOptions, PutOptions, typed_bucket

if TYPE_CHECKING:
    from dynamo.tools.simulation.harness import SimCluster

T = TypeVar("T")
DATATYPE_BUCKET = b"sim"


class SimClients:
    def __init__(self, sim: SimCluster, rng: random.Random, bucket: bytes, epoch: float) -> None:
        self.sim, self.rng, self.bucket, self.epoch = sim, rng, bucket, epoch

    def pick(self) -> str:
        up = self.sim.up()
        return up[self.rng.randrange(len(up))] if up else self.sim.ids[0]

    async def call(self, fn: Callable[[Node], Awaitable[T]]) -> T:
        node_id = self.pick()
        node = self.sim.nodes.get(node_id)
        if node is None:
            raise carts.Indeterminate("node down")
        try:
            return await self.sim.on(node_id, fn(node))
        except Unavailable as e:
            raise carts.Indeterminate(str(e))
        except ServiceError as e:
            raise carts.Refused(str(e))
        except asyncio.CancelledError:
            raise carts.Indeterminate("node crashed")
        except Exception as e:
            raise carts.ServerBug(f"{type(e).__name__}: {e}")

    async def get(self, key: str) -> tuple[list[bytes], bytes | None]:
        res = await self.call(lambda n: n.fetch(self.bucket, key.encode(), GetOptions()))
        return [s.content.value for s in res.live], res.context or None

    async def put(self, key: str, value: bytes, context: bytes | None) -> None:
        content = Content(
            value=value,
            content_type="application/json",
            last_modified_us=int((self.epoch + self.sim.loop.time()) * 1e6),
        )
        opts = PutOptions(w=2, dw=2)
        await self.call(lambda n: n.store(self.bucket, key.encode(), content, context, opts))

    async def update(self, btype: str, key: str, op: dict[str, Any], ctx: bytes | None) -> None:
        bucket = typed_bucket(btype.encode(), DATATYPE_BUCKET)
        opts = PutOptions(w=2, dw=2)
        await self.call(lambda n: n.update_datatype(bucket, key.encode(), op, ctx, opts))

    async def fetch(self, btype: str, key: str) -> Datatype:
        bucket = typed_bucket(btype.encode(), DATATYPE_BUCKET)
        return await self.call(lambda n: n.fetch_datatype(bucket, key.encode(), GetOptions()))
