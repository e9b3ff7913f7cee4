"""Secondary indexes through our own client against real nodes: what a write's index
headers become, every kind of query (also in a typed bucket), overwrites and deletes,
the cap on an unpaged query, and bad queries refused with what to change."""

from __future__ import annotations

import pytest

from dynamo.tools.localcluster import LocalCluster, http
from http_api.admin import AdminClient
from http_api.client_sync import Client
from http_api.errors import BadRequest, RequestTooLarge
from pb_api.client import PbClient
from tests.cluster.conftest import MakeCluster

pytestmark = pytest.mark.cluster
CAP = 50


@pytest.fixture(scope="module")
def cluster(module_cluster_factory: MakeCluster) -> LocalCluster:
    c = module_cluster_factory(3, settings=(f"max_index_results={CAP}",))
    c.wait_converged()
    admin = AdminClient(c[0].url)
    admin.request("POST", "/admin/bucket-types/tagged", {"props": {"n_val": 3}})
    admin.activate_bucket_type("tagged", wait_s=60)
    with Client(c[0].url) as cl:
        for i in range(80):
            idx = [("Age_Int", f"0{i % 20}"), ("tags_bin", "a, b" if i % 2 else "c")]
            cl.put("people", f"p{i:02}", b"{}", content_type="application/json", indexes=idx)
        for i in range(0, 80, 10):  # overwrite with the context: age 20 + i
            obj = cl.get("people", f"p{i:02}")
            cl.put("people", obj.key, b"{}", content_type="application/json",
                   context=obj.context, indexes=[("age_int", 100 + i)])  # fmt: skip
        for i in range(5, 80, 10):
            cl.delete("people", f"p{i:02}")
    return c


def test_a_write_keeps_its_index_fields_lowercased_and_canonical(cluster: LocalCluster) -> None:
    with Client(cluster[1].url) as cl:
        content = cl.get("people", "p01").content
        assert content is not None
        assert sorted(content.indexes) == [("age_int", "1"), ("tags_bin", "a"), ("tags_bin", "b")]


def test_queries_answer_exactly_the_live_entries(cluster: LocalCluster) -> None:
    with Client(cluster[2].url) as cl:
        assert cl.index("people", "age_int", 3).keys == ["p03", "p23", "p43", "p63"]
        assert cl.index("people", "age_int", 0).keys == []  # every age 0 was overwritten
        assert cl.index("people", "age_int", 5).keys == []  # deleted
        assert cl.index("people", "age_int", 150).keys == ["p50"]
        got = cl.index("people", "age_int", 100, 130, return_terms=True).results
        assert got == [(100, "p00"), (110, "p10"), (120, "p20"), (130, "p30")]
        odd = [f"p{i:02}" for i in range(1, 80, 2) if i % 10 != 5]
        assert cl.index("people", "tags_bin", "a").keys == odd
        assert cl.index("people", "tags_bin", "b", stream=True).keys == odd
        assert cl.index("people", "$key", "p10", "p14").keys == ["p10", "p11", "p12", "p13", "p14"]
        assert cl.index("people", "tags_bin", "a", "c", term_regex="^a$").keys == odd


def test_pages_add_up_to_the_whole_answer(cluster: LocalCluster) -> None:
    live = sorted(f"p{i:02}" for i in range(80) if i % 10 != 5)
    with Client(cluster[0].url) as cl:
        got: list[str] = []
        page = cl.index("people", "$bucket", "people", max_results=9)
        while True:
            assert len(page.keys) <= 9
            got += page.keys
            if page.continuation is None:
                break
            page = cl.index("people", "$bucket", "people", max_results=9,
                            continuation=page.continuation)  # fmt: skip
        assert got == live
        streamed = cl.index("people", "$bucket", "people", max_results=30, stream=True)
        assert streamed.keys == live[:30]
        assert streamed.continuation is not None


def test_an_unpaged_query_past_the_cap_is_refused_and_pages_still_work(
    cluster: LocalCluster,
) -> None:
    with Client(cluster[0].url) as cl:
        with pytest.raises(RequestTooLarge, match="max_results"):
            cl.index("people", "$bucket", "people")
        assert len(cl.index("people", "$bucket", "people", max_results=CAP).keys) == CAP


def test_bad_queries_say_what_to_change(cluster: LocalCluster) -> None:
    with Client(cluster[0].url) as cl:
        page = cl.index("people", "age_int", 0, 200, max_results=3)
        assert page.continuation is not None
        with pytest.raises(BadRequest, match="another query"):
            cl.index("people", "age_int", 0, 100, continuation=page.continuation)
        with pytest.raises(BadRequest, match="integer"):
            cl.index("people", "age_int", 1, 5, term_regex="1")
        with pytest.raises(BadRequest, match="unknown index"):
            cl.index("people", "age_float", 1)
        with pytest.raises(BadRequest, match="not an integer"):
            cl.put("people", "bad", b"{}", indexes=[("age_int", "ten")])


def test_a_typed_bucket_is_its_own_index_namespace(cluster: LocalCluster) -> None:
    with Client(cluster[0].url) as cl:
        before = cl.index("people", "age_int", 7).keys
        url = cluster[0].url + "/types/tagged/buckets/people/keys/t1"
        headers = {"Content-Type": "text/plain", "X-Riak-Index-age_int": "7"}
        status, _, _ = http("PUT", url, b"x", headers)
        assert status == 204
        assert cl.index("people", "age_int", 7, bucket_type="tagged").keys == ["t1"]
        assert cl.index("people", "age_int", 7).keys == before


def test_our_pb_client_writes_and_queries_indexes(cluster: LocalCluster) -> None:
    host, port = cluster[1].pb_addr
    with PbClient(f"pb://{host}:{port}") as pb:
        pb.put("pbidx", "a", b"1", indexes=[("n_int", 5), ("t_bin", "x"), ("t_bin", "y,z")])
        pb.put("pbidx", "b", b"2", indexes=[("n_int", -5)])
        assert pb.index("pbidx", "t_bin", "y,z").keys == ["a"]  # a comma is fine over PB
        got = pb.index("pbidx", "n_int", -10, 10, return_terms=True, max_results=1)
        assert got.results == [(-5, "b")]
        assert got.continuation is not None
        rest = pb.index("pbidx", "n_int", -10, 10, max_results=1, continuation=got.continuation)
        assert rest.keys == ["a"]
        assert pb.index("pbidx", "$bucket", "pbidx", stream=True).keys == ["a", "b"]
        obj = pb.get("pbidx", "a")
        assert obj.content is not None
        assert ("t_bin", "y,z") in obj.content.indexes
