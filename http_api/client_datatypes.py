"""Data types in our client: ``Counter``, ``Set``, ``GSet``, ``Hll`` and ``Map`` objects
that gather operations and ``store()`` them, as Riak clients do. No siblings and no
resolvers: the node merges concurrent updates itself.

    counter = client.counter("counters", "page", "home")   # bucket type, bucket, key
    counter.increment(2)
    counter.store()
    tags = client.set("sets", "tags", "post-1")
    tags.reload()                 # removes need the context of a fetch
    tags.add("new"); tags.discard("old"); tags.store()
    m = client.map("maps", "users", "ann")
    m.registers["name"].assign("Ann"); m.counters["visits"].increment(); m.flags["admin"].enable()
    m.sets["roles"].add("ops"); m.maps["address"].registers["city"].assign("Oslo")
    m.store()

A data type works with any client flavour that has ``fetch_datatype`` and
``update_datatype`` (the blocking HTTP and PB clients; the asyncio ones return
awaitables from those, so use their methods directly there).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Generator
from typing import Any, Protocol, Unpack, cast
from urllib.parse import quote_plus, unquote_plus

from http_api.client_wire import (
    MalformedResponse,
    ReadParams,
    Request,
    Response,
    WriteParams,
    _query,
    error_for,
)
from http_api.types import Datatype


class DatatypeClient(Protocol):
    def fetch_datatype(self, btype: str, bucket: str, key: str, **params: Any) -> Datatype: ...

    def update_datatype(
        self,
        btype: str,
        bucket: str,
        key: str | None,
        op: dict[str, Any],
        *,
        context: bytes | None = None,
        return_body: bool = False,
        **params: Any,
    ) -> tuple[str, Datatype | None]: ...


class _Top:
    """What every top-level data type does: a key, a context, fetch and store."""

    kind = ""

    def __init__(self, client: DatatypeClient, btype: str, bucket: str, key: str | None) -> None:
        self.client = client
        self.btype, self.bucket, self.key = btype, bucket, key
        self.context: bytes | None = None
        self._value: Any = None
        self._loaded = False

    def _set_value(self, dt: Datatype) -> None:
        if dt.kind != self.kind:
            raise TypeError(f"{self.btype}/{self.bucket} holds {dt.kind}s, not {self.kind}s")
        self._value = dt.value if dt.found else self._empty()
        self.context = dt.context or None
        self._loaded = True

    def _empty(self) -> Any:
        raise NotImplementedError

    @property
    def value(self) -> Any:
        """The value last fetched or stored (fetched now if never)."""
        if not self._loaded:
            self.reload()
        return self._value

    def reload(self, **params: Any) -> _Top:
        if self.key is None:
            raise ValueError("no key yet: store() first, the node chooses one")
        self._set_value(self.client.fetch_datatype(self.btype, self.bucket, self.key, **params))
        self._clear()
        return self

    def to_op(self) -> dict[str, Any]:
        raise NotImplementedError

    def _clear(self) -> None:
        raise NotImplementedError

    def store(self, *, return_body: bool = True, **params: Any) -> _Top:
        """Send the gathered operations (with the context of the last fetch)."""
        op = self.to_op()
        if not op:
            raise ValueError(f"nothing to store: no operation on this {self.kind}")
        key, dt = self.client.update_datatype(
            self.btype, self.bucket, self.key, op, context=self.context,
            return_body=return_body, **params,
        )  # fmt: skip
        self.key = key
        self._clear()
        if dt is not None:
            self._set_value(dt)
        else:
            self._loaded = False
        return self


class Counter(_Top):
    kind = "counter"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._delta = 0

    def _empty(self) -> int:
        return 0

    def increment(self, by: int = 1) -> None:
        self._delta += by

    def decrement(self, by: int = 1) -> None:
        self._delta -= by

    def to_op(self) -> dict[str, Any]:
        return {"increment": self._delta} if self._delta else {}

    def _clear(self) -> None:
        self._delta = 0


class _Elements(_Top):
    """Sets of str: add, and (for ``Set``) discard."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._adds: list[str] = []
        self._removes: list[str] = []

    def _empty(self) -> list[str]:
        return []

    def add(self, element: str) -> None:
        self._adds.append(element)

    def to_op(self) -> dict[str, Any]:
        op: dict[str, Any] = {}
        if self._adds:
            op["add_all"] = list(self._adds)
        if self._removes:
            op["remove_all"] = list(self._removes)
        return op

    def _clear(self) -> None:
        self._adds, self._removes = [], []


class Set(_Elements):
    kind = "set"

    def discard(self, element: str) -> None:
        """Remove (needs the context of a fetch that saw it: ``reload()`` first)."""
        self._removes.append(element)


class GSet(_Elements):
    kind = "gset"


class Hll(_Elements):
    kind = "hll"

    def _empty(self) -> int:  # type: ignore[override]
        return 0


class _Fields:
    """The fields of one type in a map: ``m.counters["visits"]``..."""

    def __init__(self, owner: MapFields, suffix: str) -> None:
        self.owner, self.suffix = owner, suffix

    def __getitem__(self, name: str) -> Any:
        return self.owner.field(f"{name}_{self.suffix}")

    def __delitem__(self, name: str) -> None:
        self.owner.remove(f"{name}_{self.suffix}")


class _CounterField:
    def __init__(self) -> None:
        self.delta = 0

    def increment(self, by: int = 1) -> None:
        self.delta += by

    def decrement(self, by: int = 1) -> None:
        self.delta -= by

    def op(self) -> Any:
        return {"increment": self.delta} if self.delta else None


class _SetField:
    def __init__(self) -> None:
        self.adds: list[str] = []
        self.removes: list[str] = []

    def add(self, e: str) -> None:
        self.adds.append(e)

    def discard(self, e: str) -> None:
        self.removes.append(e)

    def op(self) -> Any:
        op: dict[str, Any] = {}
        if self.adds:
            op["add_all"] = list(self.adds)
        if self.removes:
            op["remove_all"] = list(self.removes)
        return op or None


class _RegisterField:
    def __init__(self) -> None:
        self.new: str | None = None

    def assign(self, value: str) -> None:
        self.new = value

    def op(self) -> Any:
        return None if self.new is None else {"assign": self.new}


class _FlagField:
    def __init__(self) -> None:
        self.new: bool | None = None

    def enable(self) -> None:
        self.new = True

    def disable(self) -> None:
        self.new = False

    def op(self) -> Any:
        return None if self.new is None else ("enable" if self.new else "disable")


class MapFields:
    """Updates and removals of a map's fields, nested maps included."""

    def __init__(self) -> None:
        self._fields: dict[str, Any] = {}
        self._removes: list[str] = []
        self.counters = _Fields(self, "counter")
        self.sets = _Fields(self, "set")
        self.registers = _Fields(self, "register")
        self.flags = _Fields(self, "flag")
        self.maps = _Fields(self, "map")

    def field(self, name: str) -> Any:
        if name not in self._fields:
            kind = name.rpartition("_")[2]
            self._fields[name] = {
                "counter": _CounterField, "set": _SetField, "register": _RegisterField,
                "flag": _FlagField, "map": MapFields,
            }[kind]()  # fmt: skip
        return self._fields[name]

    def remove(self, name: str) -> None:
        """Remove a field (needs the context of a fetch that saw it)."""
        self._removes.append(name)

    def op(self) -> dict[str, Any] | None:
        updates = {n: op for n, f in self._fields.items() if (op := f.op()) is not None}
        out: dict[str, Any] = {}
        if updates:
            out["update"] = updates
        if self._removes:
            out["remove"] = list(self._removes)
        return out or None


class Map(_Top):
    kind = "map"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._ops = MapFields()

    def _empty(self) -> dict[str, Any]:
        return {}

    def __getattr__(self, name: str) -> Any:
        if name in ("counters", "sets", "registers", "flags", "maps"):
            return getattr(self._ops, name)
        raise AttributeError(name)

    def to_op(self) -> dict[str, Any]:
        return self._ops.op() or {}

    def _clear(self) -> None:
        self._ops = MapFields()


KINDS: dict[str, type[_Top]] = {
    "counter": Counter, "set": Set, "gset": GSet, "hll": Hll, "map": Map,
}  # fmt: skip


# --- The HTTP operations (``ClientCore`` mixes them in) ---------------------------------------


def datatype_path(btype: str, bucket: str, key: str | None = None) -> str:
    """``/types/{type}/buckets/{bucket}/datatypes[/{key}]``, each part ``quote_plus``-ed."""
    path = f"/types/{quote_plus(btype)}/buckets/{quote_plus(bucket)}/datatypes"
    return path if key is None else f"{path}/{quote_plus(key)}"


def parse_datatype(response: Response) -> Datatype:
    """A data type's JSON (``{"type", "value", "context"}``); 404 is an empty one."""
    try:
        data = json.loads(response.body)
    except ValueError:
        raise MalformedResponse(f"HTTP {response.status} data type response is not JSON")
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise MalformedResponse(f"HTTP {response.status} data type response has no type")
    if response.status == 404:
        return Datatype(kind=data["type"], value=None, found=False)
    try:
        context = base64.b64decode(data.get("context") or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise MalformedResponse("the data type's context is not base64")
    return Datatype(kind=data["type"], value=data.get("value"), context=context)


class HttpDatatypeOps:
    """``fetch_datatype_op`` and ``update_datatype_op`` over HTTP (no I/O)."""

    def request(
        self, method: str, path: str, headers: tuple[tuple[str, str], ...] = (), body: bytes = b""
    ) -> Request:
        raise NotImplementedError

    def fetch_datatype_op(
        self, btype: str, bucket: str, key: str, **params: Unpack[ReadParams]
    ) -> Generator[Request, Response | None, Datatype]:
        """A data type's value and context (``found`` False if the key holds none)."""
        path = datatype_path(btype, bucket, key) + _query(params)
        response = yield self.request("GET", path, (("Accept", "application/json"),))
        assert response is not None, "a shell answers every request"
        if response.status not in (200, 404) or not response.body.startswith(b"{"):
            raise error_for(response)
        return parse_datatype(response)

    def update_datatype_op(
        self,
        btype: str,
        bucket: str,
        key: str | None,
        op: dict[str, Any],
        *,
        context: bytes | None = None,
        return_body: bool = False,
        **params: Unpack[WriteParams],
    ) -> Generator[Request, Response | None, tuple[str, Datatype | None]]:
        """Send one operation (Riak's JSON for the type); ``key`` None lets the node choose
        one. Returns the key and, with ``return_body``, the new value."""
        body = dict(op)
        if context:
            body["context"] = base64.b64encode(context).decode()
        query = _query({**params, "return_body": return_body or None})
        headers = (("Content-Type", "application/json"), ("Accept", "application/json"))
        path = datatype_path(btype, bucket, key) + query
        response = yield self.request("POST", path, headers, json.dumps(body).encode())
        assert response is not None, "a shell answers every request"
        if response.status not in (200, 201, 204):
            raise error_for(response)
        if key is None:
            location = response.header("Location") or ""
            if "/datatypes/" not in location:
                raise MalformedResponse("a data type created without a Location")
            key = unquote_plus(location.rpartition("/")[2])
        return key, parse_datatype(response) if return_body and response.body else None


class DatatypeFactories:
    """``client.counter(type, bucket, key)`` and its kin, on the blocking clients."""

    def counter(self, btype: str, bucket: str, key: str | None = None) -> Counter:
        return Counter(cast(DatatypeClient, self), btype, bucket, key)

    def set(self, btype: str, bucket: str, key: str | None = None) -> Set:
        return Set(cast(DatatypeClient, self), btype, bucket, key)

    def gset(self, btype: str, bucket: str, key: str | None = None) -> GSet:
        return GSet(cast(DatatypeClient, self), btype, bucket, key)

    def hll(self, btype: str, bucket: str, key: str | None = None) -> Hll:
        return Hll(cast(DatatypeClient, self), btype, bucket, key)

    def map(self, btype: str, bucket: str, key: str | None = None) -> Map:
        return Map(cast(DatatypeClient, self), btype, bucket, key)
