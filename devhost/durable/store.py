"""Task hub tables in Azure Table storage (Azurite), in the Azure Storage provider's layout.

``<hub>Instances``: one row per instance (PartitionKey = instance id, RowKey = ""), the columns the
Durable Functions Monitor reads, plus ``DevhostState`` (the engine's bookkeeping) so that one
conditional write commits an episode.
``<hub>History``: PartitionKey = instance id, RowKey = the event's position as 16 hex digits
(``X16``, as the provider writes it), one row per history event of the current execution.
``<hub>Messages``: persisted, not yet applied messages (raised events, activity results,
terminate requests). The provider keeps these in control queues; a table is what we have here.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

# The Table service refuses larger transactions; Azurite answers them with garbage (NOTES.md).
MAX_BATCH = 100

Entity = dict[str, Any]


def with_etag(row: Any) -> Entity:
    """A plain dict of the entity, with its ETag under ``"etag"`` (``clean`` drops it again)."""
    out = dict(row)
    out["etag"] = row.metadata["etag"]
    return out


def history_row_key(index: int) -> str:
    return f"{index:016X}"


def clean(entity: Mapping[str, Any]) -> Entity:
    """Drop ``None`` (the service would drop it silently) and serialise what it cannot store."""
    out: Entity = {}
    for key, value in entity.items():
        if value is None or key == "etag":
            continue
        if isinstance(value, dict | list):
            value = json.dumps(value)
        out[key] = value
    return out


class TaskHubStore:
    """Async access to one task hub's three tables."""

    def __init__(self, connection_string: str, hub: str) -> None:
        self.hub = hub
        self._service = TableServiceClient.from_connection_string(connection_string)
        self.instances: TableClient = self._service.get_table_client(f"{hub}Instances")
        self.history: TableClient = self._service.get_table_client(f"{hub}History")
        self.messages: TableClient = self._service.get_table_client(f"{hub}Messages")

    async def open(self) -> None:
        for table in (self.instances, self.history, self.messages):
            await self._service.create_table_if_not_exists(table.table_name)

    async def close(self) -> None:
        for table in (self.instances, self.history, self.messages):
            await table.close()
        await self._service.close()

    # -- instances -------------------------------------------------------------------------
    async def get_instance(self, instance_id: str) -> Entity | None:
        try:
            return with_etag(await self.instances.get_entity(instance_id, ""))
        except ResourceNotFoundError:
            return None

    async def create_instance(self, entity: Entity) -> str:
        meta = await self.instances.create_entity(clean(entity))
        return str(meta["etag"])

    async def replace_instance(self, entity: Entity, etag: str) -> str:
        """Replace the row only if nobody else wrote it since ``etag`` (ResourceModifiedError)."""
        meta = await self.instances.update_entity(
            clean(entity), mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
        )
        return str(meta["etag"])

    async def delete_instance(self, instance_id: str) -> None:
        await self.instances.delete_entity(instance_id, "")

    def query_instances(
        self, query_filter: str, parameters: dict[str, Any] | None = None, page_size: int | None = None
    ) -> Any:
        return self.instances.query_entities(
            query_filter, parameters=parameters or {}, results_per_page=page_size
        )

    async def all_instances(
        self, query_filter: str, parameters: dict[str, Any] | None = None
    ) -> AsyncIterator[Entity]:
        async for row in self.instances.query_entities(query_filter, parameters=parameters or {}):
            yield with_etag(row)

    # -- history ---------------------------------------------------------------------------
    async def read_history(self, instance_id: str) -> list[Entity]:
        rows = [
            dict(row)
            async for row in self.history.query_entities(
                "PartitionKey eq @pk", parameters={"pk": instance_id}
            )
        ]
        rows.sort(key=lambda r: r["RowKey"])
        return rows

    async def write_history(self, instance_id: str, rows: Iterable[Entity]) -> None:
        """Upsert rows in transactions of at most 100 (one partition each, as the service demands)."""
        ops = [("upsert", clean(row), {"mode": UpdateMode.REPLACE}) for row in rows]
        for start in range(0, len(ops), MAX_BATCH):
            await self.history.submit_transaction(ops[start : start + MAX_BATCH])  # type: ignore[arg-type]

    async def delete_rows(self, table: TableClient, rows: Iterable[Entity]) -> None:
        ops = [("delete", {"PartitionKey": r["PartitionKey"], "RowKey": r["RowKey"]}) for r in rows]
        for start in range(0, len(ops), MAX_BATCH):
            chunk = ops[start : start + MAX_BATCH]
            try:
                await table.submit_transaction(chunk)  # type: ignore[arg-type]
            except Exception:
                for _, key in chunk:
                    with contextlib.suppress(ResourceNotFoundError):
                        await table.delete_entity(key["PartitionKey"], key["RowKey"])

    async def delete_partition(self, table: TableClient, partition: str) -> int:
        rows = [
            {"PartitionKey": r["PartitionKey"], "RowKey": r["RowKey"]}
            async for r in table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": partition}, select=["PartitionKey", "RowKey"]
            )
        ]
        await self.delete_rows(table, rows)
        return len(rows)

    # -- messages --------------------------------------------------------------------------
    async def add_message(self, entity: Entity) -> None:
        await self.messages.upsert_entity(clean(entity), mode=UpdateMode.REPLACE)

    async def read_messages(self, instance_id: str) -> list[Entity]:
        rows = [
            dict(row)
            async for row in self.messages.query_entities(
                "PartitionKey eq @pk", parameters={"pk": instance_id}
            )
        ]
        rows.sort(key=lambda r: r["RowKey"])
        return rows

    async def delete_messages(self, instance_id: str, row_keys: Iterable[str]) -> None:
        await self.delete_rows(self.messages, [{"PartitionKey": instance_id, "RowKey": k} for k in row_keys])


def as_datetime(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None
