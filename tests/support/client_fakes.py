"""A scripted fake node and response builders for the client's pure-core tests."""

from __future__ import annotations

import base64
from typing import TypeVar

from http_api import codec
from http_api.client import (
    Op,
    Request,
    Response,
    Streamed,
    drive,
)
from http_api.types import Content, Sibling

T = TypeVar("T")
T_S = 1_700_000_000_000_000  # a last-modified time in whole seconds (HTTP dates have no more)
CTX = b"\x00opaque\xffcontext"


def sib(
    vtag: str,
    value: bytes,
    *,
    lm_s: int = 0,
    deleted: bool = False,
    content_type: str = "application/octet-stream",
    charset: str | None = None,
) -> Sibling:
    """A sibling whose last-modified time survives an HTTP date (whole seconds)."""
    content = Content(
        value=value,
        content_type=content_type,
        charset=charset,
        last_modified_us=T_S + lm_s * 1_000_000,
        deleted=deleted,
    )
    return Sibling(vtag=vtag, content=content)


def vclock(context: bytes) -> tuple[str, str]:
    return ("X-Riak-Vclock", base64.b64encode(context).decode())


def ok_200(bucket: str, s: Sibling, context: bytes = CTX) -> Response:
    return Response(
        status=200,
        headers=(*codec.sibling_headers(bucket, s), vclock(context)),
        body=s.content.value,
    )


def multiple_300(bucket: str, siblings: list[Sibling], context: bytes = CTX) -> Response:
    boundary = codec.new_boundary()
    return Response(
        status=300,
        headers=(("Content-Type", f"multipart/mixed; boundary={boundary}"), vclock(context)),
        body=codec.multipart_body(bucket, siblings, boundary),
    )


def text(status: int, body: str, *headers: tuple[str, str]) -> Response:
    return Response(status=status, headers=headers, body=body.encode())


class FakeNode:
    """Answers each request with the next scripted response; records requests and sleeps."""

    def __init__(self, *responses: Response) -> None:
        self.responses = list(responses)
        self.requests: list[Request] = []
        self.sleeps: list[float] = []

    def exchange(self, step: Request | Streamed) -> Response:
        request = step.request if isinstance(step, Streamed) else step
        self.requests.append(request)
        response = self.responses.pop(0)
        if isinstance(step, Streamed) and response.status == 200:
            step.parser.feed(response.body)
            return Response(status=200, headers=response.headers)
        return response

    def run(self, op: Op[T]) -> T:
        return drive(op, self.exchange, self.sleeps.append)

    def header(self, i: int, name: str) -> str | None:
        return Response(status=0, headers=self.requests[i].headers).header(name)
