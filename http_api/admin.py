"""A small synchronous client of our admin routes (``/admin/*``, ``/stats``).

The one used by the ``dynamo`` CLI, ``dynamo leave`` and the local cluster of the
tests: JSON over HTTP or HTTPS with the standard library, with the node's bearer
token or basic credentials and a CA to trust. The data API has its own client
(``http_api.client``); this one only reads and drives the cluster.
"""

from __future__ import annotations

import base64
import copy
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["AdminClient", "AdminError", "get_json"]


class AdminError(Exception):
    """The node answered with an error status; ``text`` is its body (what to change)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status} {text}")
        self.status = status
        self.text = text


class AdminClient:
    """Admin routes of one node at ``url``. Network failures raise ``OSError``."""

    def __init__(
        self,
        url: str,
        *,
        token: str = "",
        basic: str = "",
        ca_file: str = "",
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.headers: dict[str, str] = {}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif basic:
            self.headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None

    def at(self, http_addr: str) -> AdminClient:
        """The same credentials, TLS trust and scheme, for the node at ``host:port``."""
        other = copy.copy(self)
        other.url = f"{urllib.parse.urlsplit(self.url).scheme}://{http_addr}"
        return other

    def request(
        self, method: str, path: str, body: Any = None, timeout_s: float | None = None
    ) -> Any:
        """``method path`` with an optional JSON body; the decoded JSON reply."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers=dict(self.headers)
        )
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(
                req, timeout=timeout_s or self.timeout_s, context=self.context
            ) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raise AdminError(e.code, e.read().decode(errors="replace").strip()) from None

    def get(self, path: str, timeout_s: float | None = None) -> Any:
        return self.request("GET", path, timeout_s=timeout_s)

    def stats(self) -> Any:
        return self.get("/stats")

    def members(self) -> Any:
        return self.get("/admin/members")

    def ring(self) -> Any:
        return self.get("/admin/ring")

    def handoff(self) -> Any:
        return self.get("/admin/handoff")

    def aae(self) -> Any:
        return self.get("/admin/aae")

    def health(self) -> tuple[bool, list[str]]:
        """Whether the node takes writes, and if not why (``/admin/health``)."""
        try:
            return True, list(self.get("/admin/health")["reasons"])
        except AdminError as e:
            if e.status != 503:
                raise
            try:
                return False, list(json.loads(e.text)["reasons"])
            except (ValueError, KeyError, TypeError):
                return False, [str(e)]

    def preflist(self, bucket: str, key: str) -> Any:
        return self.get(f"/admin/preflist/{_quote(bucket)}/{_quote(key)}")

    def local(self, bucket: str, key: str) -> Any:
        return self.get(f"/admin/local/{_quote(bucket)}/{_quote(key)}")

    def activate_bucket_type(self, name: str, wait_s: float = 30.0) -> Any:
        """Activate a bucket type once every member holds it: a 409 saying some member
        does not yet is retried until ``wait_s`` has passed."""
        deadline = time.monotonic() + wait_s
        path = f"/admin/bucket-types/{urllib.parse.quote(name, safe='')}/activate"
        while True:
            try:
                return self.request("POST", path, {})
            except AdminError as e:
                if e.status != 409 or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def join(self, seed: str) -> Any:
        return self.request("POST", "/admin/join", {"seed": seed})

    def leave(self) -> Any:
        return self.request("POST", "/admin/leave", {})


def _quote(part: str) -> str:
    return urllib.parse.quote_plus(part)


def get_json(url: str, timeout: float = 10) -> Any:
    """GET a full ``url`` of a node as JSON; ``ValueError`` on an error status."""
    parts = urllib.parse.urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        return AdminClient(base, timeout_s=timeout).get(path)
    except AdminError as e:
        raise ValueError(f"GET {url}: {e.status} {e.text[:200]!r}") from None
