"""Fixtures for the devhost tests: one devhost subprocess per module, on the session's Azurite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devhost.testing import DevhostProcess
from tests.integration.durable_samples.helpers import SAMPLE_APP


@pytest.fixture(scope="module")
def devhost(storage_connection_string: str) -> Iterator[DevhostProcess]:
    """The sample app on a devhost with a frozen clock."""
    with DevhostProcess(SAMPLE_APP, storage=storage_connection_string, clock="frozen") as host:
        yield host
