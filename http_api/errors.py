"""Errors a service raises, each with the HTTP status it becomes.

::

    ServiceError
    ├── BadRequest (400)          the request is malformed: the message says what to change
    │   └── URITooLong (414)
    ├── NotFound (404)
    ├── Conflict (409)            too many siblings: resolve them before adding more
    ├── PreconditionFailed (412)
    ├── RequestTooLarge (413)
    ├── UnsupportedMediaType (415)
    └── Unavailable (503)         quorum not met, timed out, storage failing
        └── Overloaded (503)      too many requests in flight: retry after a moment
"""

from __future__ import annotations


class ServiceError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServiceError):
    status = 400


class URITooLong(BadRequest):
    status = 414


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class PreconditionFailed(ServiceError):
    status = 412


class RequestTooLarge(ServiceError):
    status = 413


class UnsupportedMediaType(ServiceError):
    status = 415


class Unavailable(ServiceError):
    status = 503


class Overloaded(Unavailable):
    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
