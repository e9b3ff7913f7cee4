"""The lab tests' marker and fixtures.

``lab`` marks the tests that build real network namespaces (root, ``ip`` and ``nft``
needed); the pure tests beside them run anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dynamo.tools.lab import Lab


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A lab of 3 hosts, torn down after the test whatever happened."""
    with Lab(3) as made:
        yield made
