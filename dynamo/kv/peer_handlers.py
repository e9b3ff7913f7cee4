"""What this node answers to its peers on the data path: replica reads and writes
(``get``, ``put``). Writes forwarded to it to coordinate (``coord_put``) are
``dynamo.kv.forwarding``'s.
"""

from __future__ import annotations

from dynamo.kv import object as objects
from dynamo.kv.coordinator import Coordinator
from dynamo.net.methods import ReplicaRead, ReplicaWrite


class PeerHandlers:
    """The RPC handlers of the data path, over a coordinator and its replica."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.replica = coordinator.replica
        self.stats = coordinator.stats
        self.env = coordinator.env

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
