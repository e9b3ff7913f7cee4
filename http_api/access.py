"""Who may use a node's client APIs, and how many requests it takes at once: shared by
the HTTP front (``http_api.guards``) and the PB front (``pb_api``), so both ask for the
same credentials and count against one limit. Pure: no I/O.
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthConfig:
    token: str = ""  # HTTP "Authorization: Bearer <token>"; over PB, the password
    basic: str = ""  # "user:password" for HTTP basic auth and PB's RpbAuthReq

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.basic)

    def accepts_password(self, user: str, password: str) -> bool:
        """A user and password (PB's ``RpbAuthReq``, HTTP's Basic): the basic credentials,
        or, with only a token configured, any user with the token as the password."""
        if self.basic:
            return hmac.compare_digest(f"{user}:{password}".encode(), self.basic.encode())
        if self.token:
            return hmac.compare_digest(password.encode(), self.token.encode())
        return False

    def accepts_header(self, header: str) -> bool:
        """An HTTP ``Authorization`` header: a bearer token or Basic credentials."""
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.token:
            return hmac.compare_digest(value.strip().encode(), self.token.encode())
        if scheme == "basic" and self.basic:
            try:
                given = base64.b64decode(value.strip(), validate=True)
            except ValueError:
                return False
            return hmac.compare_digest(given, self.basic.encode())
        return False


class ConcurrencyLimit:
    """Requests in flight on a node, over every client API; beyond ``max`` a request is
    refused at once (HTTP 503 with Retry-After, a PB error) rather than queued."""

    __slots__ = ("in_flight", "max", "refused")

    def __init__(self, max_concurrent: int) -> None:
        self.max = max_concurrent
        self.in_flight = 0
        self.refused = 0

    def try_acquire(self) -> bool:
        if self.in_flight >= self.max:
            self.refused += 1
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1

    def overload_message(self) -> str:
        return (
            f"overloaded: {self.in_flight} requests in flight (limit {self.max});"
            " retry after a moment"
        )
