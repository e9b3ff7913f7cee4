"""The errors of the data types, and whose fault each is.

::

    ValueError
     +-- CrdtError              the client sent a bad operation; the text says what to send instead
     |    +-- PreconditionError  the operation needs what is not there (Riak answers 412)
     |    +-- LimitError         the result would pass a limit; the text names the limit
     +-- CrdtFormatError        bytes that are not a state or a context of ours

A ``TypeError`` means a caller in this process passed a state of the wrong kind:
a bug here, never the client's doing.
"""

from __future__ import annotations

__all__ = ["CrdtError", "CrdtFormatError", "LimitError", "PreconditionError"]


class CrdtError(ValueError):
    """A bad operation: the message says what was wrong and what to send instead."""


class PreconditionError(CrdtError):
    """The operation needs something that is not there, e.g. removing an absent element."""


class LimitError(CrdtError):
    """The operation would take the state past a limit; the message names the limit."""


class CrdtFormatError(ValueError):
    """Bytes (a stored state or a client's context) that are not a state of ours."""
