"""What every flavour of our client shares whatever it speaks (HTTP or Riak PB): the
``Backoff`` step, the read-modify-write cycle ``update_cycle`` over any core with a
``get_op`` and a ``put_op``, and its retry delays. No I/O.

An operation is a generator: it yields the steps it needs carried out (a request of its
protocol, or a ``Backoff``), is sent back each answer, and returns its result.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, Unpack

from http_api import codec
from http_api.client_wire import KVObject, ReadParams, UpdateParams, WriteParams
from http_api.errors import Overloaded, Unavailable
from http_api.resolvers import Resolver

T = TypeVar("T")
#: An operation of any protocol's core: its steps and answers are the protocol's own.
AnyOp = Generator[Any, Any, T]

UPDATE_FIRST_BACKOFF_S = 0.05  # update(): wait before the first retry, doubled per retry...
UPDATE_MAX_BACKOFF_S = 1.0  # ... up to this, unless the node's Retry-After asks for longer


@dataclass(frozen=True, slots=True)
class Backoff:
    delay_s: float


def update_backoff_s(attempt: int, error: Unavailable) -> float:
    """The wait before retry ``attempt`` (from 0) of ``update`` after ``error``."""
    delay_s = min(UPDATE_FIRST_BACKOFF_S * 2.0**attempt, UPDATE_MAX_BACKOFF_S)
    return max(delay_s, error.retry_after_s) if isinstance(error, Overloaded) else delay_s


class KVOps(Protocol):
    """What the read-modify-write cycle needs of a client core (HTTP's or PB's)."""

    def get_op(
        self,
        bucket: str,
        key: str,
        *,
        resolver: Resolver | None = ...,
        **params: Unpack[ReadParams],
    ) -> AnyOp[KVObject]: ...

    def put_op(
        self,
        bucket: str,
        key: str,
        value: bytes | str,
        *,
        content_type: str | None = ...,
        context: bytes | None = ...,
        meta: Mapping[str, str] | None = ...,
        return_body: bool = ...,
        if_none_match: bool = ...,
        **params: Unpack[WriteParams],
    ) -> AnyOp[KVObject | None]: ...


def update_cycle(
    ops: KVOps,
    bucket: str,
    key: str,
    fn: Callable[[bytes | None], bytes],
    *,
    resolver: Resolver | None = None,
    retries: int = 5,
    content_type: str | None = None,
    return_body: bool = False,
    **params: Unpack[UpdateParams],
) -> AnyOp[KVObject | None]:
    """Read (resolved), apply ``fn`` to the value (None if not found) and write it back
    with the read's context; on ``Unavailable`` wait and redo the whole cycle, up to
    ``retries`` times, so ``fn`` may run more than once. The content type and user
    metadata read are kept unless ``content_type`` is given."""
    if unknown := set(params) - UpdateParams.__optional_keys__:
        raise TypeError(f"unknown parameters {sorted(unknown)}")
    read: ReadParams = {
        "r": params.get("r"), "pr": params.get("pr"), "timeout_ms": params.get("timeout_ms"),
        "basic_quorum": params.get("basic_quorum"), "notfound_ok": params.get("notfound_ok"),
    }  # fmt: skip
    write: WriteParams = {
        "w": params.get("w"), "dw": params.get("dw"), "pw": params.get("pw"),
        "timeout_ms": params.get("timeout_ms"),
    }  # fmt: skip
    attempt = 0
    while True:
        try:
            obj = yield from ops.get_op(bucket, key, resolver=resolver, **read)
            current = obj.content
            return (
                yield from ops.put_op(
                    bucket, key, fn(current.value if current else None),
                    content_type=content_type
                    or (codec.content_type_header(current) if current else None),
                    context=obj.context, meta=dict(current.user_meta) if current else None,
                    return_body=return_body, **write,
                )
            )  # fmt: skip
        except Unavailable as e:
            if attempt >= retries:
                raise
            delay_s = update_backoff_s(attempt, e)
        attempt += 1
        yield Backoff(delay_s)
