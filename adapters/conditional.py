"""The one conditional write the counters need: create if new, else replace only if unchanged."""

from __future__ import annotations

from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from appointments.ports import StaleRecord


def create_or_replace(table: TableClient, entity: dict[str, Any], etag: str | None) -> None:
    """``etag`` None: insert (409 if the row exists); else replace with ``If-Match`` (412 if it
    changed, 404 if it was deleted). Each lost race is StaleRecord: read again and retry."""
    try:
        if etag is None:
            table.create_entity(entity)
        else:
            table.update_entity(
                entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as exc:
        raise StaleRecord(f"{entity['PartitionKey']} changed meanwhile") from exc
