"""The contract suite's one fixture: each provider harness in turn, closed afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.harnesses import HARNESSES, ProviderHarness


@pytest.fixture(params=HARNESSES, ids=[harness.id for harness in HARNESSES])
def harness(request: pytest.FixtureRequest) -> Iterator[ProviderHarness]:
    built: ProviderHarness = request.param()
    try:
        yield built
    finally:
        built.close()
