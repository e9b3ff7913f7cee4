"""Secondary indexes as an application uses them through Basho's ``riak`` 2.7.0 client:
``get_index``, ``paginate_index``, ``stream_index`` and ``paginate_stream_index``, term
and range queries on ``_int`` and ``_bin`` indexes, ``$bucket`` and ``$key``, regular
expressions on terms, and a bad index refused. Run by ``riak_scenarios`` (``index``).

``write`` stores a known data set through one node (overwrites that change terms,
deletes, siblings whose entries add up); ``read`` checks every query against what that
data set must answer, through each node given (so also after one of them went down).
"""

from __future__ import annotations

from typing import Any

KEYS = 120


def check(cond: object, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def expected() -> dict[str, dict[str, set[str | int]]]:
    """key -> index -> terms, for the live keys once ``write`` is done."""
    out: dict[str, dict[str, set[str | int]]] = {}
    for i in range(KEYS):
        key = f"k{i:03}"
        if i % 10 == 9:  # deleted
            continue
        age = i % 40 if i % 10 != 3 else 100 + i  # every tenth+3 was overwritten
        out[key] = {"age_int": {age}, "email_bin": {f"user{i}@example.com"}}
        if i % 10 == 5:  # two concurrent writers: both siblings' tags
            out[key]["tags_bin"] = {"red", f"blue{i}"}
        else:
            out[key]["tags_bin"] = {"red"} if i % 2 else {"green"}
    return out


def write(client: Any, name: str) -> None:
    bucket = client.bucket(name)
    bucket.set_properties({"allow_mult": True, "n_val": 3})
    for i in range(KEYS):
        obj = bucket.new(f"k{i:03}", data={"i": i})
        obj.add_index("age_int", i % 40)
        obj.add_index("email_bin", f"user{i}@example.com")
        obj.add_index("tags_bin", "red" if i % 2 else "green")
        obj.store(w="all")
    for i in range(3, KEYS, 10):  # overwrite with the context: the old age goes away
        obj = bucket.get(f"k{i:03}", r="all")
        obj.remove_index("age_int")
        obj.add_index("age_int", 100 + i)
        obj.store(w="all")
    for i in range(5, KEYS, 10):  # a second writer without context: a sibling
        obj = bucket.new(f"k{i:03}", data={"i": i, "by": "other"})
        obj.add_index("age_int", i % 40)
        obj.add_index("email_bin", f"user{i}@example.com")
        obj.add_index("tags_bin", f"blue{i}")
        obj.store(w="all")
    for i in range(9, KEYS, 10):
        bucket.delete(f"k{i:03}", w="all")


def _pairs(
    want: dict[str, dict[str, set[str | int]]], index: str, lo: Any, hi: Any
) -> list[tuple[Any, str]]:
    return sorted((t, k) for k, ix in want.items() for t in ix[index] if lo <= t <= hi)


def read(client: Any, riak: Any, name: str) -> None:
    bucket = client.bucket(name)
    want = expected()

    def keys_of(pairs: list[tuple[Any, str]]) -> list[str]:
        return sorted({k for _, k in pairs})

    # an exact term, on both kinds of index
    got = sorted(client.get_index(bucket, "age_int", 7))
    check(got == keys_of(_pairs(want, "age_int", 7, 7)), f"age_int = 7: {got}")
    got = sorted(bucket.get_index("tags_bin", "red"))
    check(got == keys_of(_pairs(want, "tags_bin", "red", "red")), f"tags_bin = red: {got}")
    got = sorted(bucket.get_index("tags_bin", "blue15"))
    check(got == ["k015"], f"a sibling's own entry: {got}")

    # a range with terms, sorted by term then key
    page = client.get_index(bucket, "age_int", 10, 19, return_terms=True)
    check(list(page) == _pairs(want, "age_int", 10, 19), f"age_int 10..19 with terms: {page}")
    check(not any(t == 13 for t, _ in page), "an overwritten term is gone")

    # pages of 7, followed by continuation, add up to the whole range
    pages = list(client.paginate_index(bucket, "age_int", 0, 39, max_results=7, return_terms=True))
    flat = [r for p in pages for r in p]
    check(flat == _pairs(want, "age_int", 0, 39), f"paged range: {len(flat)} results")
    check(all(len(p) == 7 for p in pages[:-1]), "every page but the last is full")

    # streamed, plain and paged
    streamed = sorted(
        k for chunk in client.stream_index(bucket, "tags_bin", "a", "z") for k in chunk
    )
    check(streamed == keys_of(_pairs(want, "tags_bin", "a", "z")), f"stream: {len(streamed)}")
    total = []
    for p in client.paginate_stream_index(bucket, "email_bin", "user1", "user9", max_results=9):
        total += [k for chunk in p for k in chunk]
    check(sorted(total) == keys_of(_pairs(want, "email_bin", "user1", "user9")), "paged stream")

    # term_regex, $bucket, $key
    got = sorted(client.get_index(bucket, "email_bin", "a", "z", term_regex="^user1[0-9]@"))
    teens = [k for k in sorted(want) if k[1:] in {f"{n:03}" for n in range(10, 20)}]
    check(got == teens, f"term_regex: {got}")
    got = sorted(client.get_index(bucket, "$bucket", name))
    check(got == sorted(want), f"$bucket: {len(got)} of {len(want)}")
    got = sorted(client.get_index(bucket, "$key", "k010", "k029"))
    check(got == [k for k in sorted(want) if "k010" <= k <= "k029"], f"$key: {got}")
    pages = list(client.paginate_index(bucket, "$bucket", name, max_results=25))
    check(sorted(k for p in pages for k in p) == sorted(want), "$bucket in pages")

    try:
        client.get_index(bucket, "age", 1)
    except riak.RiakError as e:
        check("unknown index" in str(e) or "400" in str(e), f"bad index refused: {e}")
    else:
        raise AssertionError("a query of an index without _bin or _int was accepted")
