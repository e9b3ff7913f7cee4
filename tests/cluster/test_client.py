"""Our Python client, both flavours, against a real 3-node cluster."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from dynamo.tools.localcluster import LocalCluster
from http_api.client import AsyncClient
from http_api.client_sync import Client
from http_api.errors import PreconditionFailed
from http_api.resolvers import json_set_union, last_write_wins
from tests.cluster.conftest import MakeCluster

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(module_cluster_factory: MakeCluster) -> LocalCluster:
    c = module_cluster_factory(3)
    c.wait_converged()
    return c


def test_sync_client_siblings_resolvers_and_update(cluster: LocalCluster) -> None:
    with Client(cluster[0].url) as a, Client(cluster[1].url) as b:
        a.put("carts", "bob", b'["apple"]', content_type="application/json")
        b.put("carts", "bob", b'["pear"]', content_type="application/json")
        got = a.get("carts", "bob")
        assert got.has_siblings
        assert len(got.live) == 2
        merged = a.get("carts", "bob", resolver=json_set_union)
        assert json.loads(merged.value or b"") == ["apple", "pear"]
        a.set_resolver("carts", json_set_union)
        a.update(
            "carts", "bob", lambda old: json.dumps([*json.loads(old or b"[]"), "plum"]).encode()
        )
        final = b.get("carts", "bob", r="all")
        assert not final.has_siblings
        assert json.loads(final.value or b"") == ["apple", "pear", "plum"]
        assert b.get("carts", "bob", resolver=last_write_wins).exists
        with pytest.raises(PreconditionFailed):
            a.put("carts", "bob", b"[]", if_none_match=True)
        assert "bob" in a.list_keys("carts")
        assert "bob" in a.list_keys("carts", stream=True)
        assert "carts" in a.list_buckets()
        assert a.delete("carts", "bob")
        assert not b.get("carts", "bob").exists
        a.set_bucket_props("carts", {"n_val": 2})
        assert a.get_bucket_props("carts")["n_val"] == 2
        a.reset_bucket_props("carts")
        assert a.ping()
        assert a.stats()["nodename"] == "n1"


def test_concurrent_updates_with_a_union_resolver_lose_nothing(cluster: LocalCluster) -> None:
    """Eight writers adding to one set through different nodes: every element survives."""

    def writer(i: int) -> None:
        with Client(cluster[i % 3].url, resolver=json_set_union) as c:
            for j in range(10):

                def add(old: bytes | None, item: str = f"{i}-{j}") -> bytes:
                    return json.dumps(sorted({*json.loads(old or b"[]"), item})).encode()

                c.update("sets", "shared", add, content_type="application/json")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(writer, range(8)))
    with Client(cluster[2].url, resolver=json_set_union) as c:
        got = c.get("sets", "shared", r="all")
        assert set(json.loads(got.value or b"")) == {
            f"{i}-{j}" for i in range(8) for j in range(10)
        }


def test_async_client(cluster: LocalCluster) -> None:
    async def main() -> None:
        async with AsyncClient(cluster[2].url) as c:
            assert await c.ping()
            await c.put("async", "k", "text value")
            got = await c.get("async", "k")
            assert got.value == b"text value"
            key = await c.post("async", b"server chooses")
            assert (await c.get("async", key)).value == b"server chooses"
            assert await c.delete("async", "k")
            assert not (await c.get("async", "k")).exists

    asyncio.run(main())
