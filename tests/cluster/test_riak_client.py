"""Basho's official ``riak`` 2.7.0 Python client, over HTTP, against real nodes."""

from __future__ import annotations

from typing import Any

import pytest

from dynamo.tools.localcluster import LocalCluster
from tests.cluster.conftest import MakeCluster
from tests.support.riak_shim import load_riak

pytestmark = [
    pytest.mark.cluster,
    # The 2016 client trips over modern Python in ways that do not affect what it sends.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::SyntaxWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


def union_resolver(obj: Any) -> None:
    """Resolve siblings whose values are lists by keeping their union."""
    merged: set[str] = set()
    for s in obj.siblings:
        merged.update(s.data or [])
    obj.siblings = [obj.siblings[0]]
    obj.siblings[0].data = sorted(merged)


def exercise(client: Any, bucket_name: str, w: Any = None, r: Any = None) -> None:
    """Ping, store, fetch, siblings, resolver, delete, list, props: what an app does."""
    assert client.ping()
    bucket = client.bucket(bucket_name)
    bucket.set_properties({"allow_mult": True, "n_val": 3})
    assert bucket.get_properties()["allow_mult"] is True

    obj = bucket.new("doc", data={"name": "ada"})
    obj.store(w=w)
    fetched = bucket.get("doc", r=r)
    assert fetched.exists
    assert fetched.data == {"name": "ada"}

    # Two writers without context: siblings, resolved by a resolver.
    bucket.new("cart", data=["apple"]).store(w=w)
    bucket.new("cart", data=["pear"]).store(w=w)
    cart = bucket.get("cart", r=r)
    assert len(cart.siblings) == 2
    cart.resolver = union_resolver
    union_resolver(cart)
    assert cart.data == ["apple", "pear"]
    cart.store(w=w)
    again = bucket.get("cart", r=r)
    assert len(again.siblings) == 1
    assert again.data == ["apple", "pear"]

    # Resolver set on the bucket applies on fetch.
    bucket.new("cart", data=["plum"]).store(w=w)
    bucket.resolver = union_resolver
    resolved = bucket.get("cart", r=r)
    assert resolved.data == ["apple", "pear", "plum"]
    bucket.resolver = None

    keys = sorted(bucket.get_keys())
    assert keys == ["cart", "doc"]
    assert bucket_name in [b.name for b in client.get_buckets()]

    fetched.delete(w=w)
    assert not bucket.get("doc", r=r).exists
    assert sorted(bucket.get_keys()) == ["cart"]


@pytest.fixture
def riak() -> Any:
    return load_riak()


def test_riak_client_against_one_node(riak: Any, make_cluster: MakeCluster) -> None:
    c: LocalCluster = make_cluster(1)
    client = riak.RiakClient(protocol="http", host="127.0.0.1", http_port=c[0].http_port)
    exercise(client, "single")
    client.close()


def test_riak_client_against_every_node_of_three(riak: Any, make_cluster: MakeCluster) -> None:
    c: LocalCluster = make_cluster(3)
    c.wait_converged()
    for i, n in enumerate(c.nodes):
        client = riak.RiakClient(protocol="http", host="127.0.0.1", http_port=n.http_port)
        exercise(client, f"three{i}", w="all", r="all")
        client.close()
