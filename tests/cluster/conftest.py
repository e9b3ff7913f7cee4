"""Real node processes on 127.0.0.1, started through the CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dynamo.tools.localcluster import LocalCluster

MakeCluster = Callable[..., LocalCluster]


def _factory(root: Path, request: pytest.FixtureRequest) -> Iterator[MakeCluster]:
    made: list[LocalCluster] = []

    def make(
        nodes: int, *, settings: tuple[str, ...] = (), start: bool = True, seed_all: bool = True
    ) -> LocalCluster:
        c = LocalCluster(root / f"c{len(made)}", nodes, settings=settings, seed_all=seed_all)
        made.append(c)
        if start:
            c.start()
        return c

    yield make
    for c in made:
        c.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for c in made:
            print(c.logs())


@pytest.fixture
def make_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MakeCluster]:
    yield from _factory(tmp_path, request)


@pytest.fixture(scope="module")
def module_cluster_factory(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[MakeCluster]:
    yield from _factory(tmp_path_factory.mktemp("cluster"), request)
