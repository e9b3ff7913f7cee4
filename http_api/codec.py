"""Riak's HTTP object encoding, both ways: headers <-> ``Content``, and the 300 multipart body.

Used by the server (``http_api.server``) and by our client (``http_api.client``).
"""

from __future__ import annotations

import email.utils
import functools
import re
import secrets
from collections.abc import Iterable, Mapping
from urllib.parse import quote_plus, unquote_plus

from http_api.errors import BadRequest
from http_api.indexes import header_values
from http_api.types import Content, Sibling

META_PREFIX = "x-riak-meta-"
INDEX_PREFIX = "x-riak-index-"
_LINK_RE = re.compile(
    r'<\s*/(?:buckets/([^/>]+)/keys/|riak/([^/>]+)/)([^>]*)>\s*;\s*riaktag="([^"]*)"'
)


@functools.lru_cache(maxsize=8192)
def http_date(us: int) -> str:
    return email.utils.formatdate(us / 1e6, usegmt=True)


def parse_http_date(value: str) -> int:
    t = email.utils.parsedate_to_datetime(value)
    return int(t.timestamp() * 1e6)


def content_type_header(c: Content) -> str:
    return f"{c.content_type}; charset={c.charset}" if c.charset else c.content_type


@functools.lru_cache(maxsize=4096)
def link_header(bucket: str, links: tuple[tuple[str, str, str], ...]) -> str:
    parts = [f'</buckets/{quote_plus(bucket)}>; rel="up"']
    for b, k, tag in links:
        parts.append(f'</buckets/{quote_plus(b)}/keys/{quote_plus(k)}>; riaktag="{tag}"')
    return ", ".join(parts)


def parse_links(value: str) -> tuple[tuple[str, str, str], ...]:
    out = []
    for m in _LINK_RE.finditer(value):
        bucket = m.group(1) or m.group(2)
        out.append((unquote_plus(bucket), unquote_plus(m.group(3)), m.group(4)))
    return tuple(out)


def sibling_headers(bucket: str, s: Sibling, *, quoted_etag: bool = True) -> list[tuple[str, str]]:
    """Headers describing one sibling, as on a 200 (``ETag`` quoted) or a multipart part."""
    c = s.content
    h = [
        ("Content-Type", content_type_header(c)),
        ("Link", link_header(bucket, c.links)),
        ("ETag" if quoted_etag else "Etag", f'"{s.vtag}"' if quoted_etag else s.vtag),
        ("Last-Modified", http_date(c.last_modified_us)),
    ]
    if c.content_encoding:
        h.append(("Content-Encoding", c.content_encoding))
    if c.deleted:
        h.append(("X-Riak-Deleted", "true"))
    h.extend((f"X-Riak-Meta-{name}", value) for name, value in c.user_meta)
    h.extend((f"X-Riak-Index-{name}", value) for name, value in joined_indexes(c.indexes))
    return h


def joined_indexes(fields: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """One header per index, its values comma-separated, as Riak sends and reads them (so
    over HTTP a ``_bin`` term cannot hold a comma; over PB it can)."""
    by_name: dict[str, list[str]] = {}
    for name, value in fields:
        by_name.setdefault(name, []).append(value)
    return [(name, ", ".join(values)) for name, values in by_name.items()]


def new_boundary() -> str:
    return secrets.token_urlsafe(18).replace("-", "A").replace("_", "B")


def multipart_body(bucket: str, siblings: Iterable[Sibling], boundary: str) -> bytes:
    """The exact 300 body Riak clients parse (leading and trailing CRLF included)."""
    out = bytearray()
    for s in siblings:
        out += f"\r\n--{boundary}\r\n".encode()
        for name, value in sibling_headers(bucket, s, quoted_etag=False):
            out += f"{name}: {value}\r\n".encode()
        out += b"\r\n"
        out += s.content.value
    out += f"\r\n--{boundary}--\r\n".encode()
    return bytes(out)


def text_siblings(siblings: Iterable[Sibling]) -> bytes:
    return ("Siblings:\n" + "".join(f"{s.vtag}\n" for s in siblings)).encode()


def _utf8(name: str, value: str | None) -> None:
    """Header bytes that are not UTF-8 reach us as lone surrogates: refuse them."""
    if value is None:
        return
    try:
        value.encode("utf-8")
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"header {name.encode('utf-8', 'replace').decode()} is not valid UTF-8")


def content_from_headers(
    headers: Mapping[str, str], meta: Iterable[tuple[str, str]], body: bytes, now_us: int
) -> Content:
    """A new sibling from a PUT/POST request. ``meta`` is every (name, value) header pair."""
    for name in ("Content-Type", "Content-Encoding", "Link"):
        _utf8(name, headers.get(name))
    ctype = headers.get("Content-Type")
    if not ctype:
        raise BadRequest("Content-Type header is missing: every stored value needs one")
    main, _, rest = ctype.partition(";")
    charset = None
    for param in rest.split(";"):
        k, _, v = param.strip().partition("=")
        if k.lower() == "charset" and v:
            charset = v.strip('"')
    user_meta: list[tuple[str, str]] = []
    indexes: list[tuple[str, str]] = []
    for name, value in meta:
        low = name.lower()
        if low.startswith((META_PREFIX, INDEX_PREFIX)):
            _utf8(name, value)
        if low.startswith(META_PREFIX) and len(low) > len(META_PREFIX):
            user_meta.append((name[len(META_PREFIX) :], value))
        elif low.startswith(INDEX_PREFIX) and len(low) > len(INDEX_PREFIX):
            field = name[len(INDEX_PREFIX) :]
            indexes.extend((field, v) for v in header_values(value))
    link = headers.get("Link")
    return Content(
        value=body,
        content_type=main.strip() or "application/octet-stream",
        charset=charset,
        content_encoding=headers.get("Content-Encoding") or None,
        user_meta=tuple(user_meta),
        links=parse_links(link) if link else (),
        indexes=tuple(indexes),
        last_modified_us=now_us,
    )


def content_from_response_headers(
    headers: Iterable[tuple[str, str]], body: bytes
) -> tuple[str, Content]:
    """(vtag, content) from a 200 response's or a multipart part's headers."""
    vtag = ""
    ctype = "application/octet-stream"
    charset = None
    encoding = None
    lm = 0
    deleted = False
    meta: list[tuple[str, str]] = []
    indexes: list[tuple[str, str]] = []
    links: tuple[tuple[str, str, str], ...] = ()
    for name, value in headers:
        low = name.lower()
        if low == "content-type":
            main, _, rest = value.partition(";")
            ctype = main.strip()
            for param in rest.split(";"):
                k, _, v = param.strip().partition("=")
                if k.lower() == "charset" and v:
                    charset = v.strip('"')
        elif low == "etag":
            vtag = value.strip('"')
        elif low == "last-modified":
            lm = parse_http_date(value)
        elif low == "content-encoding":
            encoding = value
        elif low == "x-riak-deleted":
            deleted = value.strip().lower() == "true"
        elif low == "link":
            links = parse_links(value)
        elif low.startswith(META_PREFIX):
            meta.append((name[len(META_PREFIX) :], value))
        elif low.startswith(INDEX_PREFIX):
            indexes.extend((name[len(INDEX_PREFIX) :], v) for v in header_values(value))
    return vtag, Content(
        value=body,
        content_type=ctype,
        charset=charset,
        content_encoding=encoding,
        user_meta=tuple(meta),
        links=links,
        indexes=tuple(indexes),
        last_modified_us=lm,
        deleted=deleted,
    )


def parse_multipart(body: bytes, boundary: str) -> list[tuple[str, Content]]:
    """The siblings of a 300 multipart body (binary-safe)."""
    delim = re.compile(rb"\r?\n--" + re.escape(boundary.encode()) + rb"(?:--)?\r?\n")
    parts = delim.split(body)[1:-1]
    out = []
    for part in parts:
        head, sep, value = part.partition(b"\r\n\r\n")
        if not sep:
            head, value = part, b""
            if head.endswith(b"\r\n"):
                head = head[:-2]
        headers = []
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, v = line.partition(":")
            if colon:
                headers.append((name.strip(), v.strip()))
        out.append(content_from_response_headers(headers, value))
    return out
