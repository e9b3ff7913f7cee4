"""Read repair: once every reply to a GET is in, the replicas whose copy is behind the
merge get the merged object, in the background (the client has had its answer).
The decision (which targets, which object) is the quorum core's ``final_action``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dynamo.kv import object as objects
from dynamo.kv.quorum import GetQuorum, ReadRepair
from dynamo.net import methods
from dynamo.net.methods import ReplicaWrite
from ring.position import storage_key_bkey

if TYPE_CHECKING:
    from dynamo.kv.coordinator import Coordinator

log = logging.getLogger(__name__)


class ReadRepairs:
    """The coordinator's read repairs (its tasks live in ``coordinator.background``)."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.c = coordinator

    def after(self, q: GetQuorum, objkey: bytes) -> None:
        """Every reply of ``q`` is in: repair the stale replicas, if any."""
        action = q.final_action()
        if action is not None:
            self.c._spawn(self._repair(action, objkey))

    async def _repair(self, action: ReadRepair, objkey: bytes) -> None:
        c = self.c
        allow_mult = c.props(storage_key_bkey(objkey)[0]).allow_mult
        raw = objects.encode(action.obj)
        for t in action.targets:
            c.stats.read_repairs.add(c.env.wallclock())
            try:
                if t.node == c.node_id:
                    c.replica.write(objkey, action.obj, t.hint_for, allow_mult)
                else:
                    write = ReplicaWrite(objkey, raw, t.hint_for, allow_mult, False)
                    await c.call(t.node, methods.PUT, write, c.rpc_timeout_s)
            except Exception as e:
                log.debug("read repair of %s failed: %s", t.node, e)
