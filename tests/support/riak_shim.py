"""Import Basho's ``riak`` 2.7.0 client on Python 3.11.

It predates Python 3.10: it reaches ``collections.Iterable`` and friends, and
calls ``namedtuple(..., verbose=...)``. Alias the names and drop the argument,
then import it.
"""

from __future__ import annotations

import collections
import collections.abc
from typing import Any

_ABC_NAMES = (
    "Callable",
    "Container",
    "Hashable",
    "ItemsView",
    "Iterable",
    "Iterator",
    "KeysView",
    "Mapping",
    "MutableMapping",
    "MutableSequence",
    "MutableSet",
    "Sequence",
    "Set",
    "Sized",
    "ValuesView",
)


def load_riak() -> Any:
    for name in _ABC_NAMES:
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))
    original = collections.namedtuple
    if not getattr(original, "_dynamo_shim", False):

        def namedtuple(*args: Any, verbose: bool = False, **kwargs: Any) -> Any:
            return original(*args, **kwargs)

        setattr(namedtuple, "_dynamo_shim", True)  # noqa: B010
        setattr(collections, "namedtuple", namedtuple)  # noqa: B010
    import riak

    return riak
