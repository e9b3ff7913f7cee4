"""Taking out a node that never comes back: ``dynamo remove`` (Riak's force-remove) and
``dynamo replace`` (its ranges handed to a new node), and a removed node noticing it.

The decision is gossiped (``gossip.membership.record_removal``); the ring drops the
node (or gives its tokens to the replacement) on every node that hears it. Refused
while the node still answers: a node that can still speak should ``leave``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gossip import membership
from gossip.membership import JOINING, LEAVING, LEFT, VALID

if TYPE_CHECKING:
    from dynamo.node.cluster import Cluster

log = logging.getLogger(__name__)


class StillUp(ValueError):
    """A node asked to be removed still answers."""


def check_removed(cluster: Cluster) -> None:
    """Taken out by an operator (``dynamo remove``) while we were away: stop."""
    if cluster.status == LEFT:
        return
    removed = membership.removals(cluster.sb)
    if membership.is_removed(cluster.sb, cluster.node_id, removed):
        if cluster.status in (JOINING, VALID):
            cluster.set_status(LEAVING)  # nothing to hand over: its ranges moved already
        cluster.set_status(LEFT)
        if cluster.on_removed is not None:
            cluster.on_removed(
                f"node {cluster.node_id} was removed from the cluster (dynamo remove): to"
                " join again, wipe its data directory and start it with --seeds"
            )


def remove(cluster: Cluster, node: str, replacement: str | None = None) -> dict[str, Any]:
    """Take a node that never comes back out of the ring (``dynamo remove``), or hand
    its ranges to ``replacement`` (``dynamo replace``). ``ValueError`` says why not."""
    known = {m.node: m for m in membership.members(cluster.sb)}
    target = known.get(node)
    if target is None:
        raise ValueError(f"{node!r} is not a member this node knows: see dynamo members")
    if node == cluster.node_id:
        raise ValueError("a node cannot remove itself: use dynamo leave, or ask another")
    if cluster.is_up(node) or node in cluster.rpc.connected_nodes():
        raise StillUp(
            f"{node} still answers: use dynamo leave on it, or stop it first (remove is"
            " for a node that never comes back)"
        )
    if replacement is not None:
        new = known.get(replacement)
        if new is None or replacement == node or new.status == LEFT:
            raise ValueError(f"{replacement!r} is not a live member: start it, let it join")
        if not cluster.is_up(replacement):
            raise ValueError(f"{replacement} is down: replace with a node that is up")
        if replacement in membership.token_names(cluster.sb):
            raise ValueError(f"{replacement} replaced a node already: use another one")
    data = membership.sb_text(cluster.sb, node, membership.KEY_DATA)
    membership.record_removal(cluster.sb, node, data, replacement)
    cluster.membership_changed()
    log.warning(
        "removed %s from the ring%s",
        node,
        f": {replacement} takes its ranges" if replacement else "",
    )
    return {"removed": node, "replaced_by": replacement, "members": list(cluster.ring.members)}
