"""The node-to-node connection as a pure state machine: framing and the handshake,
bytes in and events out, bytes to send out. No sockets, no event loop, no clock:
``dynamo.net.rpc`` runs it over asyncio, and the frame fuzz drives it directly.

Frames are msgpack arrays ``[kind, request_id, method, body]`` read with a
streaming ``Unpacker``. Kinds are numbered once (append-only)::

    0 REQUEST   1 REPLY   2 ERROR   3 HELLO   4 PROOF

A connection opens with a handshake. The dialer sends HELLO ``{v, vmax, cluster,
node, nonce}``; the listener answers HELLO with its own; with a cluster secret each
side then proves it with an HMAC over both nonces (the listener inside its HELLO, the
dialer in a PROOF frame). A stranger (wrong cluster, wrong or missing proof) is
dropped and counted.

**Versions.** The dialer proposes ``v: 1`` (every release accepts it) and names the
highest it speaks in ``vmax``; a first-release peer sends no ``vmax``. The listener
answers ``v`` = the highest both speak; a first-release listener answers 1. So a node
of this release talks v2 with its own kind and v1 with a first-release peer, and a
cluster upgrades one node at a time. The version is not covered by the proof: a
downgrade to v1 changes the bodies' shape, not what is authenticated.

A frame above the size limit (tightly bounded until the peer proved itself), or
garbage, ends the session with a :class:`Failure` naming what happened; the shell
closes that connection and nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import msgpack

from dynamo.net.schema import V1, V2, RpcError

REQUEST, REPLY, ERROR, HELLO, PROOF = 0, 1, 2, 3, 4
PROTOCOL_VERSION = V2  # the highest this release speaks
NONCE_BYTES = 16
HANDSHAKE_MAX_FRAME = 64 * 1024  # what a peer may send before it has proven itself


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    cluster: str
    node_id: str
    secret: bytes | None = None  # cluster secret; None = no proof asked or given
    max_frame_bytes: int
    max_version: int = PROTOCOL_VERSION  # 1: speak exactly as the first release


@dataclass(slots=True)
class SessionStats:
    """What went wrong on the wire, counted (the shell adds these to ``RpcStats``)."""

    protocol_errors: int = 0
    auth_failures: int = 0
    frames_too_large: int = 0


# --- Events ---------------------------------------------------------------------------------


# Events: the handshake's end is a named tuple; a call's frame is handed over as the list
# msgpack made, once checked (one is made per call: no new object is the cheapest).


class Ready(NamedTuple):
    """The handshake is done: calls may flow, in ``version``."""

    peer_node: str
    version: int


#: A checked frame ``[kind, rid, method, body]``: ``kind`` is REQUEST (``method`` a str),
#: REPLY or ERROR (an answer to the call ``rid``); ``rid`` is an int.
Frame = list[Any]


Event = Ready | Frame
FailureKind = Literal["protocol", "auth", "too_large"]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why the session ended; the shell logs it and closes the connection."""

    kind: FailureKind
    why: str


class FrameTooLarge(RpcError):
    """An outgoing frame above the size limit: it is not sent."""


class _Fail(Exception):
    def __init__(self, kind: FailureKind, why: str) -> None:
        super().__init__(why)
        self.failure = Failure(kind, why)


def proof(secret: bytes, role: bytes, a: bytes, b: bytes) -> bytes:
    return hmac.new(secret, role + a + b, hashlib.sha256).digest()


class Session:
    """One connection's protocol state, either side.

    Feed what arrives to :meth:`receive`; send with :meth:`send`; take what is to be
    written with :meth:`take_outgoing`. Once :attr:`failure` is set, the session
    ignores further input.
    """

    def __init__(
        self,
        config: SessionConfig,
        *,
        dialer: bool,
        nonce: bytes,
        expect_node: str | None = None,
        stats: SessionStats | None = None,
    ) -> None:
        if len(nonce) != NONCE_BYTES:
            raise ValueError(f"a nonce is {NONCE_BYTES} bytes")
        self.config = config
        self.dialer = dialer
        self.nonce = nonce
        self.expect_node = expect_node
        self.stats = stats if stats is not None else SessionStats()
        self.unpacker = msgpack.Unpacker(
            raw=False, max_buffer_size=config.max_frame_bytes, strict_map_key=False
        )
        self.fed = 0  # bytes fed to the unpacker since the connection opened
        self.frame_start = 0  # where the frame in progress began
        self.peer_node = ""
        self.peer_nonce = b""
        self.version = 0  # 0 until the handshake is done
        self._agreed = V1  # a listener's choice, while it waits for the dialer's proof
        self.failure: Failure | None = None
        self._out: list[bytes] = []
        self._handshake_limit = min(config.max_frame_bytes, HANDSHAKE_MAX_FRAME)
        # One packer per session: ``msgpack.packb`` builds a packer per call (twice the cost).
        self._pack = msgpack.Packer(use_bin_type=True).pack

    @property
    def ready(self) -> bool:
        return self.version != 0

    def start(self) -> None:
        """The dialer's first frame (a listener waits for the dialer's HELLO)."""
        if self.dialer:
            self.send(HELLO, 0, "hello", self._hello_body(V1))

    # --- Input ----------------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """The events in ``data``; sets :attr:`failure` (and stops) on a bad stream."""
        events: list[Event] = []
        if self.failure is not None:
            return events
        unpacker = self.unpacker
        try:
            self.fed += len(data)
            unpacker.feed(data)
            frame_event = self._frame
            for frame in unpacker:
                self.frame_start = unpacker.tell()  # where the frame in progress begins
                event = frame_event(frame)
                if event is not None:
                    events.append(event)
            # The unpacker parses an unfinished frame as it comes (and keeps what it
            # parsed): bound the frame in progress, tightly until the peer proved itself.
            limit = self.config.max_frame_bytes if self.version else self._handshake_limit
            if self.fed - self.frame_start > limit:
                raise msgpack.BufferFull
        except msgpack.BufferFull:
            self.stats.frames_too_large += 1
            limit = self.config.max_frame_bytes
            self.failure = Failure("too_large", f"a frame above {limit} bytes")
        except _Fail as e:
            if e.failure.kind == "auth":
                self.stats.auth_failures += 1
            else:
                self.stats.protocol_errors += 1
            self.failure = e.failure
        except (ValueError, TypeError, msgpack.UnpackException) as e:
            self.stats.protocol_errors += 1
            self.failure = Failure("protocol", f"garbage on the wire ({e})")
        return events

    def _frame(self, frame: Any) -> Event | None:
        if type(frame) is not list or len(frame) != 4:
            raise _Fail("protocol", "a frame that is not [kind, id, method, body]")
        kind, rid, method, body = frame
        if not isinstance(kind, int):
            raise _Fail("protocol", "a frame that is not [kind, id, method, body]")
        if not isinstance(rid, int):
            raise _Fail("protocol", "a frame with a non-integer request id")
        if not self.version:
            return self._handshake(kind, body)
        if kind in (REPLY, ERROR):
            return frame
        if kind == REQUEST:
            if not isinstance(method, str):
                raise _Fail("protocol", "a request without a method name")
            return frame
        raise _Fail("protocol", f"unknown frame kind {kind}")

    # --- Handshake ----------------------------------------------------------------------------

    def _hello_body(self, version: int) -> dict[str, Any]:
        cfg = self.config
        body: dict[str, Any] = {
            "v": version,
            "cluster": cfg.cluster,
            "node": cfg.node_id,
            "nonce": self.nonce,
        }
        if cfg.max_version > V1:
            body["vmax"] = cfg.max_version
        if not self.dialer and cfg.secret is not None:
            body["proof"] = proof(cfg.secret, b"L", self.peer_nonce, self.nonce)
        return body

    def _handshake(self, kind: int, body: Any) -> Event | None:
        cfg = self.config
        if kind == PROOF and not self.dialer and self.peer_nonce:
            given = body.get("proof") if isinstance(body, dict) else None
            if cfg.secret is None or not isinstance(given, bytes):
                raise _Fail("auth", "refused: a proof frame without a proof")
            want = proof(cfg.secret, b"D", self.nonce, self.peer_nonce)
            if not hmac.compare_digest(given, want):
                raise _Fail("auth", "refused: a wrong cluster secret")
            return self._ready(self._agreed)
        if not self.dialer and self.peer_nonce:
            raise _Fail("auth", "refused: requests before proving the cluster secret")
        if kind != HELLO or not isinstance(body, dict):
            raise _Fail("protocol", "no handshake")
        version = self._version(body)
        if body.get("cluster") != cfg.cluster:
            raise _Fail("auth", f"refused: cluster {body.get('cluster')!r}, not {cfg.cluster!r}")
        node, nonce = body.get("node"), body.get("nonce")
        if (
            not isinstance(node, str)
            or not node
            or not isinstance(nonce, bytes)
            or len(nonce) != NONCE_BYTES
        ):
            raise _Fail("protocol", "a malformed hello")
        if self.expect_node is not None and node != self.expect_node:
            raise _Fail("protocol", f"peer is node {node!r}, not {self.expect_node!r}")
        self.peer_node, self.peer_nonce = node, nonce
        if self.dialer:
            if cfg.secret is not None:
                given = body.get("proof")
                want = proof(cfg.secret, b"L", self.nonce, nonce)
                # Prove ourselves either way, so a listener with another secret notices too.
                self.send(PROOF, 0, "proof", {"proof": proof(cfg.secret, b"D", nonce, self.nonce)})
                if not isinstance(given, bytes) or not hmac.compare_digest(given, want):
                    raise _Fail("auth", "refused: a wrong or missing cluster secret")
            return self._ready(version)
        self._agreed = version
        self.send(HELLO, 0, "hello", self._hello_body(version))
        if cfg.secret is None:
            return self._ready(version)
        return None

    def _version(self, body: dict[str, Any]) -> int:
        """The version this connection speaks, from the peer's HELLO."""
        v, vmax = body.get("v"), body.get("vmax", V1)
        if type(vmax) is not int or vmax < V1:
            raise _Fail("protocol", f"a hello with vmax {vmax!r}")
        if self.dialer:  # the listener's answer: the version it chose of those we offered
            if type(v) is not int or not V1 <= v <= min(vmax, self.config.max_version):
                raise _Fail("protocol", f"protocol version {v!r} in the answer")
            return v
        if type(v) is not int or v != V1:  # every dialer proposes 1 and names its highest
            raise _Fail("protocol", f"protocol version {v!r}, not 1 (with vmax)")
        return min(vmax, self.config.max_version)

    def _ready(self, version: int) -> Ready:
        self.version = version
        return Ready(self.peer_node, version)

    # --- Output -------------------------------------------------------------------------------

    def send(self, kind: int, rid: int, method: str, body: Any) -> None:
        """Queue one frame; ``FrameTooLarge`` (nothing queued) above the limit, and
        ``TypeError``/``ValueError`` if ``body`` cannot be encoded."""
        if self.failure is not None:
            return
        data: bytes = self._pack([kind, rid, method, body])
        if len(data) > self.config.max_frame_bytes:
            raise FrameTooLarge(f"frame of {len(data)} bytes is above the limit")
        self._out.append(data)

    def take_outgoing(self) -> bytes:
        """Everything queued since the last call, as one write."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    @property
    def has_outgoing(self) -> bool:
        return bool(self._out)


__all__ = [
    "ERROR",
    "HELLO",
    "PROOF",
    "PROTOCOL_VERSION",
    "REPLY",
    "REQUEST",
    "V1",
    "V2",
    "Event",
    "Failure",
    "Frame",
    "FrameTooLarge",
    "Ready",
    "Session",
    "SessionConfig",
    "SessionStats",
]
