"""Suite-wide hooks: a failed test's leftovers are collected at its own teardown.

A test stopped midway (a timeout fires wherever the code is) can leave objects in
reference cycles: a coroutine never awaited, a task still pending. Python frees
them at some later garbage collection, inside whatever test runs then, and with
warnings as errors that innocent test fails. Collecting right after a failed test
reports them on the test that made them.

Timing: no test may depend on the machine's speed. Long tests carry their own
``pytest.mark.timeout``, about six times their run on a slowish day (a slow day
is twice as slow, and a timeout keeps a 3x margin over that).
"""

from __future__ import annotations

import gc
from collections.abc import Generator

import pytest
from hypothesis import settings

pytest_plugins = ["pytester"]

# No property test may fail for the machine's speed: hypothesis's per-example deadline
# (200 ms by default) is off everywhere, as the per-test timeout already bounds a run.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


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
