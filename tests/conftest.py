"""Fixtures shared by the whole suite: one in-memory Azurite per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devhost import azurite


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[azurite.Azurite]:
    """Azurite's table and blob services in memory on free loopback ports, stopped after the session."""
    server = azurite.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def storage_connection_string(azurite_server: azurite.Azurite) -> str:
    return azurite_server.connection_string
