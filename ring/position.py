"""Where a key sits on the ring: the (bucket, key) encoding and its 64-bit position.

The ring is the integers ``0 .. RING_SIZE - 1``. A key's position is the unsigned
64-bit murmur3 hash of its encoded ``(bucket, key)``::

    encoded = len(bucket) as 2 bytes big-endian || bucket || key

The same encoding follows the 8-byte big-endian position in storage keys, so that
keys sort by ring position and any ring range is one contiguous scan.
"""

from __future__ import annotations

import mmh3

RING_SIZE = 2**64
"""Number of positions on the ring; positions are ``0 .. RING_SIZE - 1``."""

MAX_BUCKET_BYTES = 0xFFFF
"""Largest bucket the 2-byte length prefix can carry (the HTTP layer allows less)."""

_LENGTH_BYTES = 2
_POSITION_BYTES = 8


def encode_bkey(bucket: bytes, key: bytes) -> bytes:
    """Encode ``(bucket, key)`` as a 2-byte big-endian bucket length, the bucket, the key."""
    if len(bucket) > MAX_BUCKET_BYTES:
        raise ValueError(f"bucket is {len(bucket)} bytes, at most {MAX_BUCKET_BYTES} allowed")
    return len(bucket).to_bytes(_LENGTH_BYTES, "big") + bucket + key


def decode_bkey(data: bytes) -> tuple[bytes, bytes]:
    """Invert :func:`encode_bkey`; raise ``ValueError`` when ``data`` is not such an encoding."""
    if len(data) < _LENGTH_BYTES:
        raise ValueError(f"encoded key is {len(data)} bytes, shorter than its length prefix")
    bucket_len = int.from_bytes(data[:_LENGTH_BYTES], "big")
    end = _LENGTH_BYTES + bucket_len
    if end > len(data):
        raise ValueError(
            f"encoded key declares a {bucket_len}-byte bucket "
            f"but only {len(data) - _LENGTH_BYTES} bytes follow the prefix"
        )
    return bytes(data[_LENGTH_BYTES:end]), bytes(data[end:])


def key_position(bucket: bytes, key: bytes) -> int:
    """Ring position of ``(bucket, key)``: an unsigned 64-bit integer."""
    position: int = mmh3.hash64(encode_bkey(bucket, key), signed=False)[0]
    return position


def position_bytes(pos: int) -> bytes:
    """Encode a ring position as 8 bytes big-endian (so byte order is ring order)."""
    if not 0 <= pos < RING_SIZE:
        raise ValueError(f"position {pos} is outside the ring [0, 2**64)")
    return pos.to_bytes(_POSITION_BYTES, "big")


def storage_key(bucket: bytes, key: bytes) -> tuple[int, bytes]:
    """``(bucket, key)``'s position and its storage key: the position's 8 bytes, then
    the encoded ``(bucket, key)`` (so storage keys sort by ring position)."""
    pos = key_position(bucket, key)
    return pos, position_bytes(pos) + encode_bkey(bucket, key)


def storage_key_position(skey: bytes) -> int:
    """The ring position a storage key starts with."""
    return int.from_bytes(skey[:_POSITION_BYTES], "big")


def storage_key_bkey(skey: bytes) -> tuple[bytes, bytes]:
    """The ``(bucket, key)`` of a storage key."""
    return decode_bkey(skey[_POSITION_BYTES:])
