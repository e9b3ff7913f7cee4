"""What an application does with Basho's ``riak`` 2.7.0 client, as one script run in the
client's own environment (``.venv-riak``: its ``python3_protobuf<2.6`` owns the same
``google.protobuf`` module as the modern ``protobuf`` our node needs, so the two cannot
share one environment). ``tests/cluster/test_riak_client.py`` runs it against real
nodes over HTTP and over PB (the client's default) and reads its exit status.

    .venv-riak/bin/python -m tests.support.riak_scenarios basic --protocol pbc \
        --node 127.0.0.1:8098:8087 [--node ...] --bucket b [--w all --r all]
    ... quorum-failure --protocol pbc --node ... --bucket b   (one of the 3 nodes is down)
    ... datatypes --protocol pbc --node ... --bucket b  (bucket types counters, sets,
        maps and hlls made and active, of those datatypes)
    ... index-write / index-read --protocol pbc --node ... --bucket b  (secondary
        indexes: ``riak_index``; written through the first node, read through each)

Each failed check raises; the message names it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from tests.support import riak_index
from tests.support.riak_shim import load_riak


def union_resolver(obj: Any) -> None:
    """Resolve siblings whose values are lists by keeping their union."""
    merged: set[str] = set()
    for s in obj.siblings:
        merged.update(s.data or [])
    obj.siblings = [obj.siblings[0]]
    obj.siblings[0].data = sorted(merged)


def check(cond: object, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def basic(client: Any, riak: Any, name: str, w: Any, r: Any, nodes: list[str]) -> None:
    """Ping, server info, props, get/put/delete, siblings and resolvers, tombstones,
    if_none_match, return_body, listings (plain and streamed), preflists."""
    check(client.ping(), "ping")
    bucket = client.bucket(name)
    bucket.set_properties({"allow_mult": True, "n_val": 3})
    props = bucket.get_properties()
    check(props["allow_mult"] is True and props["n_val"] == 3, f"props {props}")

    obj = bucket.new("doc", data={"name": "ada"})
    obj.store(w=w)
    fetched = bucket.get("doc", r=r)
    check(fetched.exists and fetched.data == {"name": "ada"}, "stored value read back")
    check(fetched.vclock is not None, "a fetched object carries its vclock")

    # Two writers without context: siblings, resolved by a resolver.
    bucket.new("cart", data=["apple"]).store(w=w)
    bucket.new("cart", data=["pear"]).store(w=w)
    cart = bucket.get("cart", r=r)
    check(len(cart.siblings) == 2, f"two siblings, got {len(cart.siblings)}")
    union_resolver(cart)
    check(cart.data == ["apple", "pear"], "the union resolved")
    cart.store(w=w)
    again = bucket.get("cart", r=r)
    check(len(again.siblings) == 1 and again.data == ["apple", "pear"], "resolved once written")
    bucket.new("cart", data=["plum"]).store(w=w)
    bucket.resolver = union_resolver
    check(bucket.get("cart", r=r).data == ["apple", "pear", "plum"], "bucket resolver")
    bucket.resolver = None

    # return_body: the stored object comes back with its vclock.
    returned = bucket.new("rb", data=[1, 2]).store(w=w, return_body=True)
    check(returned.data == [1, 2] and returned.vclock is not None, "return_body")

    # if_none_match: refused over an existing value.
    try:
        bucket.new("doc", data={"x": 1}).store(w=w, if_none_match=True)
    except riak.RiakError as e:
        check(str(e), "if_none_match refusal says why")
    else:
        raise AssertionError("if_none_match over a live value was not refused")
    check(bucket.get("doc", r=r).data == {"name": "ada"}, "the refused write changed nothing")

    # Listings, plain and streamed.
    keys = sorted(bucket.get_keys())
    check(keys == ["cart", "doc", "rb"], f"keys {keys}")
    streamed = sorted(k for chunk in bucket.stream_keys() for k in chunk)
    check(streamed == keys, f"streamed keys {streamed}")
    check(name in [b.name for b in client.get_buckets()], "bucket listed")
    check(name in [b.name for chunk in client.stream_buckets() for b in chunk], "bucket streamed")

    # Preflist: n_val entries, every node of the cluster known.
    preflist = bucket.get_preflist("doc")
    check(len(preflist) == min(3, len(nodes)), f"preflist {preflist}")
    check(all(p["primary"] for p in preflist), f"every primary up: {preflist}")
    check(len({p["partition"] for p in preflist}) == 1, "one partition per key")

    # Delete, then the tombstone: not found, with a vclock to write over.
    fetched.delete(w=w)
    gone = bucket.get("doc", r=r)
    check(not gone.exists, "deleted")
    check(sorted(bucket.get_keys()) == ["cart", "rb"], "a tombstone is not listed")
    revived = bucket.new("doc", data={"name": "grace"})
    revived.vclock = gone.vclock
    revived.store(w=w)
    check(bucket.get("doc", r=r).data == {"name": "grace"}, "written over the tombstone")

    bucket.clear_properties()
    check(bucket.get_properties()["n_val"] == 3, "props reset")


def server_info(client: Any, protocol: str) -> None:
    """What the client learns of the server first: its version (three integers)."""
    with client._transport() as t:
        if protocol == "pbc":
            info = t.get_server_info()
            version, node = info["server_version"], info["node"]
        else:
            version, node = t.server_version.vstring, "(HTTP: from /stats)"
    check(len([int(v) for v in str(version).split(".")]) == 3, f"server_version {version!r}")
    check(node, "server info names the node")


def quorum_failure(client: Any, riak: Any, name: str, protocol: str) -> None:
    """One of three nodes is down: PR=all and PW=all are refused with Riak's messages
    (over HTTP this client reports only the status, 503, as it does with Riak)."""
    bucket = client.bucket(name)
    bucket.new("q", data=1).store(w=1)

    def read() -> Any:
        return bucket.get("q", pr="all")

    def write() -> Any:
        return bucket.new("q", data=2).store(pw="all")

    attempts: list[tuple[str, Callable[[], Any], str]] = [
        ("read", read, "PR-value unsatisfied"),
        ("write", write, "PW-value unsatisfied"),
    ]
    for label, action, want in attempts:
        try:
            action()
        except riak.RiakError as e:
            check((want if protocol == "pbc" else "received 503") in str(e), f"{label}: {e!s}")
        else:
            raise AssertionError(f"{label} with one primary down was not refused")


def datatypes(client: Any, riak: Any, name: str, shared: str, seen: int) -> None:
    """Counters, sets, maps and HyperLogLogs through Basho's data type objects, on bucket
    types made by ``dynamo bucket-type``; ``shared`` is a counter every node's client
    increments once, ``seen`` the increments made before this one."""
    for btype, kind in (("counters", "counter"), ("sets", "set"), ("maps", "map")):
        got = client.bucket_type(btype).datatype
        check(got == kind, f"bucket type {btype} holds {got!r}, not {kind}")

    counters = client.bucket_type("counters").bucket(name)
    hits = counters.new("hits")
    hits.increment(5)
    hits.store()
    hits.decrement(2)
    hits.store()
    check(counters.get("hits").value == 3, "a counter incremented by 5 and decremented by 2")
    everyone = client.bucket_type("counters").bucket(shared).new("all")
    everyone.increment()
    everyone.store(return_body=True)
    check(everyone.value == seen + 1, f"shared counter {everyone.value}, want {seen + 1}")
    check(not counters.get("never-written").value, "a counter never written reads 0")

    sets = client.bucket_type("sets").bucket(name)
    tags = sets.new("tags")
    for element in ("a", "b", "c"):
        tags.add(element)
    tags.store()
    tags = sets.get("tags")
    check(tags.value == frozenset({"a", "b", "c"}), f"set {tags.value}")
    tags.discard("a")
    tags.store()
    # Two writers from the same fetch: a remove and a concurrent add of what it removed.
    first, second = sets.get("tags"), sets.get("tags")
    first.discard("b")
    first.store()
    second.add("b")
    second.store()
    check(sets.get("tags").value == frozenset({"b", "c"}), "the concurrent add wins")

    maps = client.bucket_type("maps").bucket(name)
    user = maps.new("ann")
    user.registers["name"].assign("Ann")
    user.counters["visits"].increment(2)
    user.flags["admin"].enable()
    user.sets["roles"].add("ops")
    user.maps["address"].registers["city"].assign("Oslo")
    user.store()
    user = maps.get("ann")
    check(user.registers["name"].value == "Ann", "map register")
    check(user.counters["visits"].value == 2, "map counter")
    check(user.flags["admin"].value is True, "map flag")
    check(user.sets["roles"].value == frozenset({"ops"}), "map set")
    check(user.maps["address"].registers["city"].value == "Oslo", "nested map register")
    del user.flags["admin"]
    user.counters["visits"].increment()
    user.store()
    user = maps.get("ann")
    check(("admin", "flag") not in user.value, f"removed field still there: {user.value}")
    check(user.counters["visits"].value == 3, "map counter after a second increment")

    visitors = client.bucket_type("hlls").bucket(name).new("visitors")
    for i in range(200):
        visitors.add(f"visitor-{i % 100}")
    visitors.store()
    estimate = client.bucket_type("hlls").bucket(name).get("visitors").value
    check(abs(estimate - 100) <= 5, f"HyperLogLog of 100 distinct: {estimate}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument(
        "scenario", choices=["basic", "quorum-failure", "datatypes", "index-write", "index-read"]
    )
    p.add_argument("--protocol", choices=["pbc", "http"], default="pbc")
    p.add_argument("--node", action="append", required=True, help="host:http_port:pb_port")
    p.add_argument("--bucket", required=True)
    p.add_argument("--w", default=None)
    p.add_argument("--r", default=None)
    args = p.parse_args(argv)
    riak = load_riak()
    nodes = []
    for spec in args.node:
        host, http_port, pb_port = spec.split(":")
        nodes.append({"host": host, "http_port": int(http_port), "pb_port": int(pb_port)})
    for i, node in enumerate(nodes):
        client = riak.RiakClient(protocol=args.protocol, nodes=[node])
        try:
            if args.scenario == "basic":
                server_info(client, args.protocol)
                basic(client, riak, f"{args.bucket}{i}", args.w, args.r, args.node)
            elif args.scenario == "index-write":
                riak_index.write(client, args.bucket)
                break  # written once, through the first node
            elif args.scenario == "index-read":
                riak_index.read(client, riak, args.bucket)
            elif args.scenario == "datatypes":
                datatypes(client, riak, f"{args.bucket}{i}", f"{args.bucket}-shared", i)
            else:
                quorum_failure(client, riak, f"{args.bucket}{i}", args.protocol)
        finally:
            client.close()
    print(f"{args.scenario} over {args.protocol}: ok on {len(nodes)} node(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
