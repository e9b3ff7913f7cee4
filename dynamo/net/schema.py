"""The node-to-node protocol's schema: methods with typed codecs per protocol version,
and typed errors. Pure: no sockets, no event loop, no clock.

A :class:`Method` names one call and carries, for each protocol version, how its
request and its reply go on the wire. Two versions exist:

- **v1**, the first release: positional array bodies; an error is its text
  (``"ValueError: ..."``), except that ``coord_put`` answered a failure as the reply
  ``[http_status, message]``.
- **v2**: map bodies with short keys (unknown keys are ignored, so a field can be
  added without a new version); an error is ``{"c": code, "m": message, "r":
  retry_after_s}``, so a refusal keeps its kind and its retry hint across the hop.

The connection's handshake settles the version (``dynamo.net.session``); both shells,
the TCP one and the simulation's, encode and decode through the functions here, so
they cannot drift. Errors::

    RpcError                a call failed
    ├── Unreachable         no connection: the request was certainly not delivered
    └── RemoteError         the peer answered an error: ``code``, ``retry_after_s``
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Generic, TypeVar

V1, V2 = 1, 2
VERSIONS = (V1, V2)
MAX_ERROR_CHARS = 1000

Req = TypeVar("Req")
Rep = TypeVar("Rep")


class RpcError(Exception):
    """A call failed: the peer is unreachable, timed out, or answered an error."""


class Unreachable(RpcError):
    """No connection could be made: the request was certainly not delivered."""


class ErrorCode(IntEnum):
    """What kind of failure a peer answered (numbered once, append-only)."""

    INTERNAL = 1  # the handler failed: a bug, or a v1 peer's untyped error
    UNKNOWN_METHOD = 2
    BAD_REQUEST = 3  # the body does not fit the method's schema, or a value is refused
    NOT_FOUND = 4
    CONFLICT = 5  # too many siblings
    PRECONDITION_FAILED = 6
    TOO_LARGE = 7
    UNAVAILABLE = 8  # quorum not met, timed out, storage failing
    OVERLOADED = 9  # too many requests in flight: retry after ``retry_after_s``


#: The HTTP status each code stood for in v1's ``coord_put`` replies (and still means
#: at the front end that relays it).
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNKNOWN_METHOD: 500,
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PRECONDITION_FAILED: 412,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNAVAILABLE: 503,
}
_BY_STATUS = {status: code for code, status in reversed(HTTP_STATUS.items())}


def code_for_status(status: int) -> ErrorCode:
    """The code for an HTTP status (any other 4xx is a bad request, 5xx internal)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ErrorCode.BAD_REQUEST if 400 <= status < 500 else ErrorCode.INTERNAL


class RemoteError(RpcError):
    """A typed error: a handler raises it to answer one, a caller receives it."""

    def __init__(
        self,
        message: str,
        code: ErrorCode = ErrorCode.INTERNAL,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after_s = retry_after_s


class SchemaError(ValueError):
    """A body does not fit its method's schema; the text says which field is wrong."""


@dataclass(frozen=True, slots=True)
class Codec(Generic[Req, Rep]):
    """How one method's request and reply look on the wire in one protocol version.

    The decoders raise ``SchemaError`` (or any ``ValueError``/``TypeError``/
    ``LookupError``) on a body that does not fit.
    """

    encode_request: Callable[[Req], Any]
    decode_request: Callable[[Any], Req]
    encode_reply: Callable[[Rep], Any]
    decode_reply: Callable[[Any], Rep]


def _same(body: Any) -> Any:
    return body


#: The body as it is: for methods whose package checks its own bodies (gossip's).
CARRIED: Codec[Any, Any] = Codec(_same, _same, _same, _same)


@dataclass(frozen=True, slots=True)
class Method(Generic[Req, Rep]):
    """One call of the node-to-node protocol."""

    name: str
    v1: Codec[Req, Rep]
    v2: Codec[Req, Rep]
    #: v1 answered this method's failures as a reply of this shape, not an error frame.
    v1_error_reply: Callable[[RemoteError], Any] | None = None
    #: The codec of each version, by number (what the shells index on every call).
    codecs: tuple[Codec[Req, Rep], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "codecs", (self.v1, self.v1, self.v2))

    def codec(self, version: int) -> Codec[Req, Rep]:
        return self.codecs[version]


class Registry:
    """Every method a node serves, by name; a name is registered once."""

    def __init__(self, *methods: Method[Any, Any]) -> None:
        self.by_name: dict[str, Method[Any, Any]] = {}
        for m in methods:
            if m.name in self.by_name:
                raise ValueError(f"method {m.name!r} registered twice")
            self.by_name[m.name] = m

    def __getitem__(self, name: str) -> Method[Any, Any]:
        return self.by_name[name]

    def __iter__(self) -> Any:
        return iter(self.by_name.values())


# --- What both shells do with a call ---------------------------------------------------------

DECODE_ERRORS = (ValueError, TypeError, LookupError)


def decode_request(method: Method[Req, Any], version: int, body: Any) -> Req:
    """The typed request, or ``RemoteError(BAD_REQUEST)`` naming what does not fit."""
    try:
        return method.codec(version).decode_request(body)
    except DECODE_ERRORS as e:
        raise RemoteError(f"malformed {method.name} request: {e}", ErrorCode.BAD_REQUEST) from e


def as_remote_error(e: Exception) -> RemoteError:
    """What a handler's exception answers: its own code if typed, else by its kind."""
    if isinstance(e, RemoteError):
        return e
    code = ErrorCode.BAD_REQUEST if isinstance(e, DECODE_ERRORS) else ErrorCode.INTERNAL
    return RemoteError(f"{type(e).__name__}: {str(e)[:MAX_ERROR_CHARS]}", code)


def failure_body(
    method: Method[Any, Any] | None, version: int, err: RemoteError
) -> tuple[bool, Any]:
    """``(as_reply, body)``: how ``err`` goes back, as a REPLY (v1's ``coord_put``) or
    as an ERROR frame."""
    if version == V1:
        if method is not None and method.v1_error_reply is not None:
            return True, method.v1_error_reply(err)
        return False, err.message[:MAX_ERROR_CHARS]
    body: dict[str, Any] = {"c": int(err.code), "m": err.message[:MAX_ERROR_CHARS]}
    if err.retry_after_s is not None:
        body["r"] = err.retry_after_s
    return False, body


def error_from_wire(version: int, body: Any) -> RemoteError:
    """The typed error an ERROR frame carries (never raises: a bad one is INTERNAL)."""
    if version == V1 or not isinstance(body, dict):
        return RemoteError(str(body)[:MAX_ERROR_CHARS])
    try:
        code = ErrorCode(int(body.get("c", ErrorCode.INTERNAL)))
    except (TypeError, ValueError):
        code = ErrorCode.INTERNAL  # a code from a later release
    retry = body.get("r")
    retry_after = float(retry) if isinstance(retry, (int, float)) and retry >= 0 else None
    return RemoteError(str(body.get("m", ""))[:MAX_ERROR_CHARS], code, retry_after)


def decode_reply(method: Method[Any, Rep], version: int, body: Any) -> Rep:
    """The typed reply; ``RemoteError`` if it is a v1 failure reply, ``RpcError`` if it
    does not fit the schema."""
    try:
        return method.codec(version).decode_reply(body)
    except RemoteError:
        raise
    except DECODE_ERRORS as e:
        raise RpcError(f"malformed {method.name} reply: {e}") from e


# --- Field checks the codecs share --------------------------------------------------------------


def field(body: Any, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """``body[key]`` if ``body`` is a map and the value has the kind, else SchemaError."""
    if not isinstance(body, dict):
        raise SchemaError(f"{what}: a map expected, got {type(body).__name__}")
    return check(body.get(key), kind, f"{what}.{key}")


def items(body: Any, n: int, what: str) -> list[Any]:
    """A v1 positional body of exactly ``n`` items, else SchemaError."""
    if not isinstance(body, (list, tuple)) or len(body) != n:
        raise SchemaError(f"{what}: an array of {n} expected")
    return list(body)


def check(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SchemaError(f"{what}: {_kind_name(kind)} expected, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("nil" if k is type(None) else k.__name__ for k in kinds)
