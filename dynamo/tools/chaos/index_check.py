"""Secondary indexes under chaos: every cart write carries index entries derived from its
value, and once the cluster has healed and converged, index queries must return
exactly the keys whose live values carry each term.

Each value names its writer (``c3-17``), so it is indexed as ``writer_bin`` (one term
per write), ``client_bin`` (``c3``: shared by many keys) and ``size_int`` (how many ids
it holds). Siblings each contribute theirs; an overwritten or deleted value's entries
must be gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dynamo.tools import carts
from http_api.client import AsyncClient

PAGE = 7  # small pages, so continuations are exercised


def entries(value: bytes) -> list[tuple[str, str | int]]:
    """The index entries a cart value is written with."""
    ids, writer = carts.decode_cart(value)
    if writer is None:
        return [("size_int", len(ids))]
    return [("writer_bin", writer), ("client_bin", writer.split("-")[0]), ("size_int", len(ids))]


@dataclass
class IndexCheck:
    queries: int = 0
    mismatches: list[str] = field(default_factory=list)

    def compare(self, what: str, got: object, want: object) -> None:
        self.queries += 1
        if got != want:
            self.mismatches.append(f"{what}: got {got!r:.200}, want {want!r:.200}")


async def check(client: AsyncClient, bucket: str, keys: list[str]) -> IndexCheck:
    """Every kind of query against the live values read from all replicas."""
    live: dict[str, list[list[tuple[str, str | int]]]] = {}
    for key in keys:
        obj = await client.get(bucket, key, r="all", timeout_ms=8000)
        if obj.live:
            live[key] = [entries(s.content.value) for s in obj.live]
    result = IndexCheck()

    def holding(name: str, term: str | int) -> list[str]:
        return sorted(k for k, sibs in live.items() if any((name, term) in s for s in sibs))

    terms: dict[str, set[str | int]] = {"writer_bin": set(), "client_bin": set()}
    sizes: set[tuple[int, str]] = set()
    for key, sibs in live.items():
        for s in sibs:
            for name, term in s:
                if name == "size_int":
                    assert isinstance(term, int)
                    sizes.add((term, key))
                else:
                    terms[name].add(term)
    for name in ("client_bin", "writer_bin"):
        for term in sorted(terms[name], key=str):
            got = (await client.index(bucket, name, term)).keys
            result.compare(f"{name} = {term}", sorted(got), holding(name, term))
    got = (await client.index(bucket, "writer_bin", "c999999-0")).keys
    result.compare("a term no value carries", got, [])
    pairs: list[tuple[int | str, str]] = []
    cont: str | None = None
    while True:
        page = await client.index(
            bucket, "size_int", 0, 10**9, return_terms=True, max_results=PAGE, continuation=cont
        )
        pairs += page.results
        cont = page.continuation
        if cont is None:
            break
    result.compare("size_int 0..1e9 in pages of 7, with terms", pairs, sorted(sizes))
    streamed = (await client.index(bucket, "client_bin", "c", "d", stream=True)).keys
    result.compare("client_bin c..d streamed", sorted(streamed), sorted(live))
    every = (await client.index(bucket, "$bucket", bucket)).keys
    result.compare("$bucket", sorted(every), sorted(live))
    return result
