"""The one conditional write the counters need: create if new, else replace only if unchanged."""

from __future__ import annotations

from typing import Any

from azure.data.tables import TableClient

from adapters.tables.store import etag_options, if_match


def create_or_replace(table: TableClient, entity: dict[str, Any], etag: str | None) -> None:
    """``etag`` None: insert (409 if the row exists); else replace with ``If-Match`` (412 if it
    changed, 404 if it was deleted). Each lost race is StaleRecord (``if_match``): read again, retry."""
    with if_match(str(entity["PartitionKey"])):
        if etag is None:
            table.create_entity(entity)
        else:
            table.update_entity(entity, **etag_options(etag))
