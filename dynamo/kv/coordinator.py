"""Quorum reads and writes: the asyncio shell around the pure cores in ``dynamo.kv.quorum``.

Any node coordinates a GET. A PUT is coordinated by a live primary of the key
(another node forwards it there), which stamps the new version, writes it
locally, sends it to the other N-1 targets of the preference list (fallbacks
carry a hint for the primary they stand in for), and answers at W acks.
After a GET answers, the replies still in flight are collected and the stale
replicas are repaired.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from dynamo.kv import crdt, datatypes, dvvset
from dynamo.kv import object as objects
from dynamo.kv.forwarding import Forwarding
from dynamo.kv.object import Obj, ObjectFormatError
from dynamo.kv.quorum import (
    GetQuorum,
    Outcome,
    PutQuorum,
    QuorumValueError,
    Target,
    effective_w,
    plan_put,
    resolve,
    unreachable,
)
from dynamo.kv.read_repair import ReadRepairs
from dynamo.kv.replica import Replica, TooLarge, TooManySiblings
from dynamo.net import methods
from dynamo.net.methods import ReplicaRead, ReplicaWrite
from dynamo.net.rpc import Call, Unreachable
from dynamo.net.schema import Method
from dynamo.node.env import REAL, Env
from dynamo.node.stats import NodeStats
from dynamo.storage.contract import StorageError
from handoff.standin import choose_stand_in
from http_api.errors import (
    BadRequest,
    Conflict,
    PreconditionFailed,
    RequestTooLarge,
    Unavailable,
)
from http_api.types import BucketProps, Content, DeleteOptions, FetchResult, GetOptions, PutOptions
from ring.position import storage_key
from ring.ring import Ring, Role

log = logging.getLogger(__name__)


NOT_IN_A_CLUSTER = (
    "this node is not part of a cluster yet: it waits to be contacted by one (start it"
    " with --seeds, or POST /admin/join); to found a new cluster, start it with --new-cluster"
)
Request = Callable[[str, Method[Any, Any], Any, float], "asyncio.Future[Any]"]


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Membership(Protocol):
    """What the coordinator needs to know of the cluster."""

    @property
    def ring(self) -> Ring: ...

    def down(self) -> frozenset[str]: ...


class Coordinator:
    """Coordinates this node's client requests and serves its replica side."""

    def __init__(
        self,
        *,
        node_id: str,
        replica: Replica,
        membership: Membership,
        call: Call,
        request: Request,
        props: Callable[[bytes], BucketProps],
        stats: NodeStats,
        request_timeout_ms: int,
        rpc_timeout_s: float,
        hinted_handoff: bool = True,
        max_siblings: int = 100,
        max_stored_object_bytes: int = 48 * 1024 * 1024,
        sibling_warning: int = 25,
        env: Env = REAL,
    ) -> None:
        self.env = env
        self._loop: asyncio.AbstractEventLoop | None = None
        self.node_id = node_id
        self.replica = replica
        self.membership = membership
        self.call = call
        self.request = request
        self.props = props
        self.stats = stats
        self.request_timeout_ms = request_timeout_ms
        self.rpc_timeout_s = rpc_timeout_s
        self.hinted_handoff = hinted_handoff
        self.max_siblings = max_siblings
        self.max_stored_object_bytes = max_stored_object_bytes
        self.sibling_warning = sibling_warning
        self.background: set[asyncio.Task[Any]] = set()
        self._warned_small_cluster = False
        self.forwarding = Forwarding(self)
        self.read_repairs = ReadRepairs(self)

    # --- Helpers ------------------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, looked up once (``get_running_loop`` costs a getpid call)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _spawn(self, aw: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(aw)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    @staticmethod
    def _request_props(props: BucketProps, n_val: int | None) -> BucketProps:
        """The bucket's props with a request's own ``n_val`` (at most the bucket's)."""
        if n_val is None or n_val == props.n_val:
            return props
        if n_val > props.n_val:
            raise BadRequest(f"n_val={n_val} is above the bucket's n_val {props.n_val}: lower it")
        return dataclasses.replace(props, n_val=n_val)

    def _sloppy(self, sloppy_quorum: bool | None) -> bool:
        """Whether fallbacks may stand in for down primaries in this request."""
        return self.hinted_handoff and sloppy_quorum is not False

    def _targets(
        self, pos: int, props: BucketProps, kind: str, sloppy: bool = True
    ) -> tuple[tuple[Target, ...], int]:
        """The annotated preference list and the effective replica count; ``kind``
        (``R`` or ``W``) names the quorum refused when this node has no ring yet.
        Without ``sloppy``, the primaries only."""
        ring = self.membership.ring
        if not len(ring):
            raise self._fail(kind.lower(), f"{kind}-value unsatisfied: 0/1 ({NOT_IN_A_CLUSTER})")
        down = self.membership.down()
        entries = ring.preflist(pos, props.n_val, down)
        if not sloppy:
            entries = [e for e in entries if e.role is Role.PRIMARY]
        n_eff = min(props.n_val, len(ring))
        if n_eff < props.n_val and not self._warned_small_cluster and len(ring) > 0:
            self._warned_small_cluster = True
            log.warning(
                "n_val %d is above the cluster size %d: keys have %d replicas until nodes join",
                props.n_val,
                len(ring),
                n_eff,
            )
        targets = tuple(Target(e.node, e.role is Role.PRIMARY, e.hint_for) for e in entries)
        return targets, n_eff

    def _timeout_s(self, timeout_ms: int | None) -> float:
        return (timeout_ms or self.request_timeout_ms) / 1000.0

    @staticmethod
    def _quorum(name: str, value: Any, default: Any, props: BucketProps, n_eff: int) -> int:
        try:
            return resolve(name, value, default, props.n_val, n_eff)
        except QuorumValueError as e:
            raise BadRequest(str(e))

    def _fail(self, kind: str, message: str) -> Unavailable:
        self.stats.quorum_failures[kind] = self.stats.quorum_failures.get(kind, 0) + 1
        return Unavailable(message)

    # --- GET ----------------------------------------------------------------------------------

    async def get(self, bucket: bytes, key: bytes, opts: GetOptions) -> FetchResult:
        t0 = self.env.monotonic()
        props = self._request_props(self.props(bucket), opts.n_val)
        pos, objkey = storage_key(bucket, key)
        targets, n_eff = self._targets(pos, props, "R", self._sloppy(opts.sloppy_quorum))
        r = self._quorum("r", opts.r, props.r, props, n_eff)
        pr = self._quorum("pr", opts.pr, props.pr, props, n_eff)
        err = unreachable("R", targets, max(r, 1), pr)
        if err:
            raise self._fail("r", err)
        q = GetQuorum(
            targets,
            r=r,
            pr=pr,
            notfound_ok=props.notfound_ok if opts.notfound_ok is None else opts.notfound_ok,
            basic_quorum=props.basic_quorum if opts.basic_quorum is None else opts.basic_quorum,
            allow_mult=props.allow_mult,
        )
        timeout_s = self._timeout_s(opts.timeout_ms)
        all_in = await self._gather_get(q, objkey, targets, timeout_s)
        outcome = q.outcome()
        if outcome is Outcome.PENDING:
            raise self._fail(
                "timeout", f"{q.error()} (request timed out after {timeout_s * 1000:.0f} ms)"
            )
        if outcome is Outcome.ERROR:
            raise self._fail("r", q.error())
        merged = q.merged() if outcome is Outcome.OK else None
        # Read repair once every reply is in (each one settles by its RPC timeout at worst).
        if all_in.done():
            self.read_repairs.after(q, objkey)
        else:
            all_in.add_done_callback(lambda _: self.read_repairs.after(q, objkey))
        micros = (self.env.monotonic() - t0) * 1e6
        if merged is None:
            self.stats.record_get(micros, 0, 0)
        else:
            size = sum(len(c.value) for c in dvvset.values(merged))
            self.stats.record_get(micros, dvvset.size(merged), size)
        return objects.to_fetch_result(merged)

    async def _gather_get(
        self, q: GetQuorum, objkey: bytes, targets: tuple[Target, ...], timeout_s: float
    ) -> asyncio.Future[None]:
        """Ask every target; returns once the quorum decided or the timeout passed.

        The returned future completes when every reply is in. Replies with the same
        history bytes are decoded once and share one object.
        """
        loop = self.loop
        enough: asyncio.Future[None] = loop.create_future()
        all_in: asyncio.Future[None] = loop.create_future()
        decoded: dict[bytes, Obj] = {}

        def decode(raw: bytes) -> Obj:
            h = objects.history_bytes(raw)
            obj = decoded.get(h)
            if obj is None:
                obj = decoded[h] = objects.decode(raw)[0]
            return obj

        def settle(node: str, result: Obj | BaseException | None) -> None:
            q.add_result(node, result)
            if not enough.done() and q.enough():
                enough.set_result(None)
            if q.all_in() and not all_in.done():
                all_in.set_result(None)
                if not enough.done():
                    enough.set_result(None)

        def on_reply(node: str, fut: asyncio.Future[Any]) -> None:
            try:
                raw = fut.result()
                result: Obj | BaseException | None = None if raw is None else decode(raw)
            except Exception as e:  # a failed replica counts as a failure
                result = e
            settle(node, result)

        rpc_timeout_s = min(timeout_s, self.rpc_timeout_s)
        for t in targets:
            if t.node != self.node_id:
                read = ReplicaRead(objkey, t.hint_for)
                fut = self.request(t.node, methods.GET, read, rpc_timeout_s)
                fut.add_done_callback(functools.partial(on_reply, t.node))
        for t in targets:
            if t.node == self.node_id:
                try:
                    raw = self.replica.read_raw(objkey, t.hint_for)
                    local: Obj | BaseException | None = None if raw is None else decode(raw)
                except (StorageError, ObjectFormatError) as e:
                    local = e
                self.stats.vnode_gets.add(self.env.wallclock())
                settle(t.node, local)
        if not enough.done():
            timer = loop.call_later(timeout_s, _resolve, enough)
            await enough
            timer.cancel()
        return all_in

    # --- PUT ----------------------------------------------------------------------------------

    async def put(
        self,
        bucket: bytes,
        key: bytes,
        content: Content,
        context: bytes | None,
        opts: PutOptions,
    ) -> FetchResult | None:
        """A quorum write; the stored object when ``opts.return_body``."""
        new = await self._put(bucket, key, content, context, opts, forwarded=False)
        return objects.to_fetch_result(new) if opts.return_body and new is not None else None

    async def _put(
        self,
        bucket: bytes,
        key: bytes,
        content: Content,
        context: bytes | None,
        opts: PutOptions,
        forwarded: bool,
    ) -> Obj | None:
        """The write; returns the coordinator's new copy (``None`` if forwarded without body)."""
        t0 = self.env.monotonic()
        props = self._request_props(self.props(bucket), opts.n_val)
        sloppy = self._sloppy(opts.sloppy_quorum)
        pos, objkey = storage_key(bucket, key)
        targets, n_eff = self._targets(pos, props, "W", sloppy)
        w = self._quorum("w", opts.w, props.w, props, n_eff)
        pw = self._quorum("pw", opts.pw, props.pw, props, n_eff)
        dw = self._quorum("dw", opts.dw, props.dw, props, n_eff)
        try:
            vv = objects.decode_context(context) if context else ()
        except ObjectFormatError:
            raise BadRequest(
                "X-Riak-Vclock is not a context this cluster made: send back what a read returned"
            )
        plan = plan_put(self.node_id, targets, forwarded)
        for dest in plan.forward_to:
            try:
                return await self.forwarding.forward(dest, bucket, key, content, context, opts)
            except Unreachable:
                continue
        if not targets:
            raise self._fail(
                "w", f"W-value unsatisfied: 0/{effective_w(w, dw)} (no node is up for this key)"
            )
        err = unreachable("W", targets, effective_w(w, dw), pw)
        if err:
            raise self._fail("w", err)
        me, targets = plan.me, plan.targets
        # The coordinator stamps the write, on its clock, whoever received it.
        content = objects.stamped(content, int(self.env.wallclock() * 1e6))
        if opts.if_none_match:
            existing = await self.get(bucket, key, GetOptions(timeout_ms=opts.timeout_ms))
            if existing.found:
                raise PreconditionFailed("the key has a value and If-None-Match: * was sent")
        try:
            new = self.replica.coordinate(
                objkey,
                content,
                vv,
                hint_for=me.hint_for,
                allow_mult=props.allow_mult,
                last_write_wins=props.last_write_wins,
                max_siblings=self.max_siblings,
                max_bytes=self.max_stored_object_bytes,
            )
        except TooLarge as e:
            self.stats.too_large_refused_total += 1
            raise RequestTooLarge(
                f"key {key.decode(errors='replace')!r} would take {e.size} bytes stored with its"
                f" siblings, above max_stored_object_bytes {self.max_stored_object_bytes}: read it"
                " and write the resolved value with the context of that read, or store a"
                " smaller value"
            )
        except TooManySiblings as e:
            self.stats.siblings_refused_total += 1
            raise Conflict(
                f"key {key.decode(errors='replace')!r} would have {e.count} siblings, above the"
                f" limit of {self.max_siblings}: read it and write the resolved value with the"
                " context of that read"
            )
        except StorageError as e:
            raise Unavailable(f"local write failed: {e}")
        except crdt.PreconditionError as e:
            raise PreconditionFailed(str(e))
        except (crdt.CrdtError, datatypes.DatatypeError) as e:
            raise BadRequest(str(e))
        self.stats.vnode_puts.add(self.env.wallclock())
        n_siblings = dvvset.size(new)
        if n_siblings >= self.sibling_warning:
            log.warning(
                "key %r/%r has %d siblings: resolve them in the client", bucket, key, n_siblings
            )
        q = PutQuorum(targets, w=w, pw=pw, dw=dw)
        timeout_s = self._timeout_s(opts.timeout_ms)
        fallbacks = (
            self.membership.ring.fallbacks(pos, props.n_val, self.membership.down())
            if sloppy
            else ()
        )
        await self._replicate(
            q, objkey, new, targets, fallbacks, props.allow_mult, dw > 0, timeout_s
        )
        outcome = q.outcome()
        if outcome is not Outcome.OK:
            why = q.error()
            if outcome is Outcome.PENDING:
                why += f" (request timed out after {timeout_s * 1000:.0f} ms)"
            raise self._fail(
                "w", f"{why}; the write may still be applied on the replicas that acknowledged it"
            )
        self.stats.puts.add(self.env.wallclock(), (self.env.monotonic() - t0) * 1e6)
        return new

    async def _replicate(
        self,
        q: PutQuorum,
        objkey: bytes,
        new: Obj,
        targets: tuple[Target, ...],
        fallbacks: Sequence[str],
        allow_mult: bool,
        durable: bool,
        timeout_s: float,
    ) -> None:
        """Send the new copy to every other target; a primary that fails is replaced
        by the next spare node with a hint (the Dynamo paper's sloppy quorum)."""
        loop = self.loop
        enough: asyncio.Future[None] = loop.create_future()
        raw = objects.encode(new)
        rpc_timeout_s = min(timeout_s, self.rpc_timeout_s)
        taken = {t.node for t in targets}
        failed: set[str] = set()

        def settle(node: str, result: bool | BaseException, is_durable: bool) -> None:
            q.add_result(node, result, is_durable)
            if not enough.done() and q.enough():
                enough.set_result(None)

        def send(t: Target) -> None:
            write = ReplicaWrite(objkey, raw, t.hint_for, allow_mult, durable)
            fut = self.request(t.node, methods.PUT, write, rpc_timeout_s)
            fut.add_done_callback(functools.partial(on_reply, t))

        def on_reply(t: Target, fut: asyncio.Future[Any]) -> None:
            try:
                reply = fut.result()
            except Exception as e:
                failed.add(t.node)
                node = None
                if t.primary:
                    locations = self.membership.ring.locations
                    node = choose_stand_in(fallbacks, taken, failed=failed, location=locations)
                if node is not None:  # even after answering: N copies, not W
                    taken.add(node)
                    stand_in = Target(node, False, t.node)
                    q.add_target(stand_in)  # before the failure, so the quorum waits for it
                    send(stand_in)
                settle(t.node, e, False)
                return
            settle(t.node, True, bool(reply))  # True: the replica synced its log

        for t in targets:
            if t.node != self.node_id:
                send(t)
        if durable:
            try:
                await asyncio.wait_for(self.replica.store.sync_wal(), timeout_s)
                settle(self.node_id, True, True)
            except (StorageError, TimeoutError) as e:
                settle(self.node_id, True, False)
                log.warning("local WAL sync failed: %r", e)
        else:
            settle(self.node_id, True, False)
        if not enough.done():
            timer = loop.call_later(timeout_s, _resolve, enough)
            await enough
            timer.cancel()

    async def put_forwarded(
        self, bucket: bytes, key: bytes, content: Content, context: bytes | None, opts: PutOptions
    ) -> Obj | None:
        """Coordinate a write another node forwarded here (never forwarded again)."""
        return await self._put(bucket, key, content, context, opts, forwarded=True)

    # --- DELETE -------------------------------------------------------------------------------

    async def delete(
        self, bucket: bytes, key: bytes, context: bytes | None, opts: DeleteOptions
    ) -> bool:
        if context is None:
            got = await self.get(
                bucket,
                key,
                GetOptions(
                    r=opts.r if opts.r != "default" else opts.rw,
                    pr=opts.pr,
                    timeout_ms=opts.timeout_ms,
                    sloppy_quorum=opts.sloppy_quorum,
                    n_val=opts.n_val,
                ),
            )
            if not got.found:
                return False
            context = got.context
        tomb = Content(value=b"", deleted=True, last_modified_us=int(self.env.wallclock() * 1e6))
        w = opts.w if opts.w != "default" else opts.rw
        await self.put(
            bucket,
            key,
            tomb,
            context,
            PutOptions(
                w=w,
                dw=opts.dw,
                pw=opts.pw,
                timeout_ms=opts.timeout_ms,
                sloppy_quorum=opts.sloppy_quorum,
                n_val=opts.n_val,
            ),
        )
        return True
