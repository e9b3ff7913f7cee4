"""Query parameters and path segments, parsed strictly: a bad one is a 400 naming it."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote_plus

from http_api.errors import BadRequest, URITooLong
from http_api.types import (
    MAX_BUCKET_BYTES,
    MAX_KEY_BYTES,
    QUORUM_WORDS,
    DeleteOptions,
    GetOptions,
    PutOptions,
    QuorumValue,
)

MAX_TIMEOUT_MS = 3_600_000


def quorum(params: Mapping[str, str], name: str) -> QuorumValue:
    raw = params.get(name)
    if raw is None or raw == "":
        return "default"
    if raw in QUORUM_WORDS:
        return raw
    if raw.isascii() and raw.isdigit() and len(raw) < 6:
        return int(raw)
    raise BadRequest(
        f"{name}={raw!r} is not a quorum: use a non-negative integer, one, quorum, all or default"
    )


def flag(params: Mapping[str, str], name: str) -> bool | None:
    raw = params.get(name)
    if raw is None or raw in ("", "default"):
        return None
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise BadRequest(f"{name}={raw!r} is not a flag: use true, false or default")


def timeout_ms(params: Mapping[str, str]) -> int | None:
    raw = params.get("timeout")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= MAX_TIMEOUT_MS:
        raise BadRequest(
            f"timeout={raw!r} is not a timeout: use milliseconds, from 1 to {MAX_TIMEOUT_MS}"
        )
    return int(raw)


def get_options(params: Mapping[str, str]) -> GetOptions:
    return GetOptions(
        r=quorum(params, "r"),
        pr=quorum(params, "pr"),
        basic_quorum=flag(params, "basic_quorum"),
        notfound_ok=flag(params, "notfound_ok"),
        timeout_ms=timeout_ms(params),
    )


def put_options(params: Mapping[str, str], if_none_match: bool) -> PutOptions:
    return PutOptions(
        w=quorum(params, "w"),
        dw=quorum(params, "dw"),
        pw=quorum(params, "pw"),
        timeout_ms=timeout_ms(params),
        return_body=bool(flag(params, "returnbody")),
        if_none_match=if_none_match,
    )


def delete_options(params: Mapping[str, str]) -> DeleteOptions:
    return DeleteOptions(
        rw=quorum(params, "rw"),
        r=quorum(params, "r"),
        w=quorum(params, "w"),
        dw=quorum(params, "dw"),
        pr=quorum(params, "pr"),
        pw=quorum(params, "pw"),
        timeout_ms=timeout_ms(params),
    )


def segment(raw: str, what: str) -> bytes:
    """One path segment: percent-decoded with ``+`` as space, as UTF-8 bytes."""
    try:
        text = unquote_plus(raw, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(f"the {what} is not valid UTF-8 once percent-decoded")
    data = text.encode()
    if not data:
        raise BadRequest(f"the {what} is empty")
    if what in ("bucket", "bucket type") and b"\x00" in data:
        raise BadRequest(f"the {what} holds a NUL byte: use a name without one")
    if what == "bucket" and len(data) > MAX_BUCKET_BYTES:
        raise BadRequest(f"the bucket is {len(data)} bytes: at most {MAX_BUCKET_BYTES}")
    if what == "key" and len(data) > MAX_KEY_BYTES:
        raise URITooLong(f"the key is {len(data)} bytes: at most {MAX_KEY_BYTES}")
    return data
