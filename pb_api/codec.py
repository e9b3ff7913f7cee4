"""Riak PB framing, sans-I/O: bytes in, ``(code, body)`` frames out. Pure.

A frame is ``length (4 bytes, big-endian) | code (1 byte) | body``, the length
counting the code and the body. The decoder buffers at most one unfinished frame: a
length above ``max_frame_bytes`` is refused before anything is buffered for it
(:class:`FrameTooLarge`), and a zero length (no code) is garbage
(:class:`Garbage`). Either way the stream cannot be resynchronised: the shell
closes the connection.
"""

from __future__ import annotations

from typing import NamedTuple

from pb_api.messages import HEADER


class FramingError(ValueError):
    """The byte stream is not Riak PB framing: the connection must close."""


class FrameTooLarge(FramingError):
    pass


class Garbage(FramingError):
    pass


class Frame(NamedTuple):
    code: int
    body: bytes


class FrameDecoder:
    """Feed it what arrives; it returns the whole frames in it, in order."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self.failed: FramingError | None = None

    @property
    def mid_frame(self) -> bool:
        """Bytes of an unfinished frame are buffered (a stall now is the peer's)."""
        return bool(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data``; raises (and stays failed) on a bad stream."""
        if self.failed is not None:
            raise self.failed
        buf = self._buf
        buf += data
        out: list[Frame] = []
        start = 0
        size = len(buf)
        header = HEADER.size
        while size - start >= 4:
            length = int.from_bytes(buf[start : start + 4], "big")
            if length == 0:
                self.failed = Garbage("a frame of length 0 (no message code)")
                raise self.failed
            if length > self.max_frame_bytes:
                self.failed = FrameTooLarge(
                    f"a frame of {length} bytes, above the limit of {self.max_frame_bytes}"
                )
                raise self.failed
            end = start + 4 + length
            if end > size:
                break
            out.append(Frame(buf[start + 4], bytes(buf[start + header : end])))
            start = end
        if start:
            del buf[:start]
        return out
