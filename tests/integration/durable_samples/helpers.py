"""What the devhost tests share: the sample app's spec and a look at its side-effect table."""

from __future__ import annotations

from typing import Any

from azure.data.tables import TableServiceClient

SAMPLE_APP = "tests.integration.durable_samples.app:app"
SIDE_EFFECTS = "SampleSideEffects"


def side_effects(connection_string: str, key: str) -> list[dict[str, Any]]:
    """The rows the sample activities wrote for ``key`` (one per real execution)."""
    service = TableServiceClient.from_connection_string(connection_string)
    table = service.create_table_if_not_exists(SIDE_EFFECTS)
    return [dict(e) for e in table.query_entities("PartitionKey eq @k", parameters={"k": key})]
