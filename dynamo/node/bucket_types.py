"""This node's bucket types: create, update, activate, status, as Riak's
``riak admin bucket-type``, over the gossiped records of ``gossip.bucket_types``.

A type's props are the base of its buckets' props (a bucket's own overrides apply on
top, except ``datatype``, fixed by the type). A type serves requests only once active,
and it can be activated only when every ring member holds it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gossip import bucket_types as bt
from gossip.bucket_types import BucketType, BucketTypeError
from http_api.types import BucketProps, props_from_overrides

if TYPE_CHECKING:
    from dynamo.node.cluster import Cluster

log = logging.getLogger(__name__)

#: Props a bucket type may set beyond a bucket's: what kind of data its keys hold.
TYPE_ONLY_PROPS = ("datatype", "hll_precision")


class NotHeldEverywhere(BucketTypeError):
    """Activation refused: some ring members do not hold the type yet."""


class BucketTypes:
    """The bucket types a node knows (cached from gossip) and their operations."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.known: dict[str, BucketType] = {}
        self.refresh()

    def refresh(self) -> bool:
        """Re-read the types from gossip, copy each into our own state (so a type outlives
        the restart of the node that made it) and say which we hold. True when changed."""
        sb = self.cluster.sb
        known = bt.types(sb)
        for t in known.values():
            mine = bt.types_of(sb, sb.node_id).get(t.name)
            if mine != t:
                bt.publish(sb, t)
        changed = known != self.known
        self.known = known
        bt.publish_held(sb, known)
        return changed

    # --- Reading ------------------------------------------------------------------------------

    def get(self, name: str) -> BucketType | None:
        return self.known.get(name)

    def active(self, name: str) -> BucketType:
        """The type, if it exists and is active; ``BucketTypeError`` says otherwise."""
        t = self.known.get(name)
        if t is None:
            raise BucketTypeError(
                f"bucket type {name!r} does not exist: create it (dynamo bucket-type create)"
            )
        if not t.active:
            raise BucketTypeError(
                f"bucket type {name!r} is not active: activate it (dynamo bucket-type activate)"
            )
        return t

    def base_props(self, name: str, default: BucketProps) -> BucketProps:
        """The props a bucket of type ``name`` starts from."""
        t = self.known.get(name)
        if t is None:
            return default
        try:
            return props_from_overrides(t.props, default)
        except ValueError as e:
            log.error("bucket type %r has invalid props from gossip (%s): defaults", name, e)
            return default

    def status(self, name: str) -> dict[str, Any]:
        t = self.known.get(name)
        if t is None:
            raise BucketTypeError(f"bucket type {name!r} does not exist")
        members = list(self.cluster.ring.members)
        missing = bt.missing(self.cluster.sb, t, members)
        return {
            **t.to_json(),
            "held_by": sorted(set(members) - set(missing)),
            "missing": missing,
        }

    def list(self) -> list[dict[str, Any]]:
        return [t.to_json() for t in self.known.values()]

    # --- Changing -----------------------------------------------------------------------------

    def _validate(self, props: dict[str, Any]) -> None:
        bt.check_datatype(props)
        try:
            base = props_from_overrides(props, self.cluster.default_props())
        except ValueError as e:
            raise BucketTypeError(str(e)) from e
        if props.get("datatype") is not None and base.allow_mult is False:
            raise BucketTypeError("a datatype bucket type merges values: leave allow_mult true")

    def create(self, name: str, props: dict[str, Any]) -> dict[str, Any]:
        bt.check_name(name)
        if name in self.known:
            raise BucketTypeError(f"bucket type {name!r} exists: update it instead")
        self._validate(props)
        now = self.cluster.env.wallclock()
        t = BucketType(name, (now, self.cluster.node_id), dict(props), now, False)
        self._publish(t)
        return t.to_json()

    def update(self, name: str, props: dict[str, Any]) -> dict[str, Any]:
        bt.check_name(name)
        t = self.known.get(name)
        if t is None:
            raise BucketTypeError(f"bucket type {name!r} does not exist: create it first")
        if "datatype" in props and props["datatype"] != t.datatype:
            raise BucketTypeError(
                f"bucket type {name!r} holds datatype {t.datatype!r}, fixed at creation:"
                " create another type for another datatype"
            )
        merged = {**t.props, **props}
        self._validate(merged)
        now = max(self.cluster.env.wallclock(), t.stamp + 1e-6)
        updated = BucketType(name, t.created, merged, now, t.active)
        self._publish(updated)
        return updated.to_json()

    def activate(self, name: str) -> dict[str, Any]:
        bt.check_name(name)
        t = self.known.get(name)
        if t is None:
            raise BucketTypeError(f"bucket type {name!r} does not exist: create it first")
        missing = bt.missing(self.cluster.sb, t, self.cluster.ring.members)
        if missing:
            raise NotHeldEverywhere(
                f"bucket type {name!r} is not held by {', '.join(missing)} yet: wait for"
                " gossip (dynamo bucket-type status) and activate again"
            )
        if not t.active:
            now = max(self.cluster.env.wallclock(), t.stamp + 1e-6)
            t = BucketType(name, t.created, t.props, now, True)
            self._publish(t)
        return t.to_json()

    def _publish(self, t: BucketType) -> None:
        bt.publish(self.cluster.sb, t)
        self.refresh()
        self.cluster.props_changed()
