"""Consistent-hash ring with virtual nodes: positions, tokens, preference lists. Pure.

``ring.position`` places a ``(bucket, key)`` on the 64-bit ring; ``ring.ring`` holds
the :class:`Ring` value (a pure function of members, weights and tokens per node)
with its preference lists, owned ranges and balance figures. No I/O, no asyncio,
no clock: only the stdlib, ``mmh3`` and ``sortedcontainers``.
"""

from ring.position import (
    MAX_BUCKET_BYTES,
    RING_SIZE,
    decode_bkey,
    encode_bkey,
    key_position,
    position_bytes,
    storage_key,
    storage_key_bkey,
    storage_key_position,
)
from ring.ring import (
    DEFAULT_TOKENS_PER_NODE,
    Balance,
    PreflistEntry,
    Ring,
    Role,
    moved_share,
)

__all__ = [
    "DEFAULT_TOKENS_PER_NODE",
    "MAX_BUCKET_BYTES",
    "RING_SIZE",
    "Balance",
    "PreflistEntry",
    "Ring",
    "Role",
    "decode_bkey",
    "encode_bkey",
    "key_position",
    "moved_share",
    "position_bytes",
    "storage_key",
    "storage_key_bkey",
    "storage_key_position",
]
