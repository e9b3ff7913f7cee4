"""The suite itself: a test that fails midway cannot make the next one fail."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).parents[1] / "conftest.py"

INNER = """
import gc

import pytest


async def work() -> None:
    pass


class Holder:
    pass


def test_stopped_midway() -> None:
    held = Holder()
    held.cycle = held  # freed only by a garbage collection, as a failed frame is
    held.coro = work()  # never awaited: its warning comes when it is freed
    del held
    pytest.fail("Timeout")  # as pytest-timeout stops a test


def test_next() -> None:
    gc.collect()  # Python collects whenever it likes: here, for certain
"""


def _run(pytester: pytest.Pytester, with_conftest: bool) -> pytest.RunResult:
    if with_conftest:
        pytester.makeconftest(CONFTEST.read_text().replace('pytest_plugins = ["pytester"]', ""))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_inner=INNER)
    return pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider")


def test_a_failed_tests_leftovers_are_reported_on_it_and_not_on_the_next(
    pytester: pytest.Pytester,
) -> None:
    result = _run(pytester, with_conftest=True)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 1, result.stdout.str()  # test_next
    assert outcomes.get("failed") == 1, result.stdout.str()  # test_stopped_midway
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_stopped_midway*"])


def test_without_the_hook_the_next_test_pays(pytester: pytest.Pytester) -> None:
    """The control: the same two tests without our conftest blame ``test_next``."""
    result = _run(pytester, with_conftest=False)
    result.stdout.fnmatch_lines(["*test_next*"])
    assert result.parseoutcomes().get("passed", 0) == 0, result.stdout.str()


def test_make_test_runs_every_test_directory() -> None:
    """``make test`` runs pytest twice (pure layers in parallel, the rest one at a time):
    a new test directory must be named in one of the two runs, or it never runs."""
    root = Path(__file__).parents[2]
    makefile = (root / "Makefile").read_text()
    target = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    named = {
        word.rstrip("/")
        for line in target.splitlines()
        if "/pytest" in line
        for word in line.split()
        if word.startswith("tests/")
    }
    with_tests = {str(p.parent.relative_to(root)) for p in (root / "tests").glob("*/test_*.py")}
    assert with_tests, "no test files found"
    assert with_tests <= named, f"not run by make test: {sorted(with_tests - named)}"
