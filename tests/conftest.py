"""Suite-wide hooks: a failed test's leftovers are collected at its own teardown.

A test stopped midway (a timeout fires wherever the code is) can leave objects in
reference cycles: a coroutine never awaited, a task still pending. Python frees
them at some later garbage collection, inside whatever test runs then, and with
warnings as errors that innocent test fails. Collecting right after a failed test
reports them on the test that made them.
"""

from __future__ import annotations

import gc
from collections.abc import Generator

import pytest

pytest_plugins = ["pytester"]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    report = getattr(item, "rep_call", None)
    if report is not None and report.failed:
        gc.collect()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)  # the cluster fixtures print logs on failure
    return rep
