"""Task hub storage in Azure Tables and Blobs (Azurite), in DurableTask.AzureStorage's layout.

Paths below are in the Azure/durabletask repository, ``src/DurableTask.AzureStorage/``.

``<hub>Instances``: one row per instance (PartitionKey = the escaped instance id, RowKey = ""), the
columns ``Tracking/AzureTableTrackingStore.cs`` writes (Name, Version, Input, Output, CustomStatus,
RuntimeStatus, CreatedTime, LastUpdatedTime, CompletedTime, ExecutionId, Generation, TaskHubName,
Tags), plus ``DevhostState`` (the engine's bookkeeping) so that one conditional write commits an
episode.
``<hub>History``: PartitionKey = the escaped instance id, RowKey = the event's position as 16 hex
digits (``X16``), one row per history event of the current execution, and the ``sentinel`` row
(ExecutionId, IsCheckpointComplete, CheckpointCompletedTimestamp) that UploadHistoryBatch writes.
An execution that continued as new leaves its rows beyond the new one's length, as
``Tracking/AzureTableTrackingStore.cs`` does (UpdateStateAsync overwrites by sequence number, and
GetHistoryEventsAsync skips the rows of a previous generation); readers take the current
ExecutionId's rows.
``<hub>Messages``: persisted, not yet applied messages (raised events, activity results,
terminate requests). The provider keeps these in control queues; a table is what we have here.
``<hub>-largemessages`` (blob container): any variable-size property over 60 KB of UTF-16 goes
to a gzip blob, as CompressLargeMessageAsync does; the row keeps ``""`` and ``<Property>BlobName``
(history), or the blob's URL in place of the value (the Instances table's Input and Output).

Keys are escaped as ``Tracking/KeySanitation.cs`` does (``/ \\ # ?`` and control characters are not
allowed in table keys): callers pass and get back plain instance ids.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import random
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline.transport import AioHttpTransport
from azure.data.tables.aio import TableClient, TableServiceClient
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from .table_writer import Operation, TableWriter

# The Table service refuses larger transactions; Azurite answers them with garbage (NOTES.md).
# UploadHistoryBatch sends 99 events and the sentinel row per transaction.
MAX_BATCH = 100
HISTORY_BATCH = 99
SENTINEL = "sentinel"
# AzureTableTrackingStore.MaxTablePropertySizeInBytes: 60 KB of UTF-16, "to give buffer" below 64 KB.
MAX_PROPERTY_BYTES = 60 * 1024
# AzureTableTrackingStore.VariableSizeEntityProperties (and the devhost's own message bodies).
LARGE_PROPERTIES = (
    "Name",
    "Input",
    "Result",
    "Output",
    "Reason",
    "Details",
    "Correlation",
    "FailureDetails",
    "Tags",
)
MESSAGE_LARGE_PROPERTIES = ("Body",)

Entity = dict[str, Any]

_ESCAPE = "^"
_ESCAPED = {"^": "^", "/": "0", "\\": "1", "#": "2", "?": "3"}
_UNESCAPED = {v: k for k, v in _ESCAPED.items()}
_OFFSET = ord("À")


def escape_key(key: str) -> str:
    """KeySanitation.EscapePartitionKey."""
    out = []
    for c in key:
        if c in _ESCAPED:
            out.append(_ESCAPE + _ESCAPED[c])
        elif ord(c) <= 0x1F or 0x7F <= ord(c) <= 0x9F:
            out.append(_ESCAPE + chr(_OFFSET + ord(c)))
        else:
            out.append(c)
    return "".join(out)


def unescape_key(key: str) -> str:
    """KeySanitation.UnescapePartitionKey."""
    out, i = [], 0
    while i < len(key):
        c = key[i]
        if c != _ESCAPE or i + 1 >= len(key):
            out.append(c)
            i += 1
            continue
        nxt = key[i + 1]
        out.append(_UNESCAPED.get(nxt) or chr(ord(nxt) - _OFFSET))
        i += 2
    return "".join(out)


def with_etag(row: Any) -> Entity:
    """A plain dict of the entity (instance id unescaped), its ETag under ``"etag"``."""
    out = dict(row)
    out["PartitionKey"] = unescape_key(out["PartitionKey"])
    out["etag"] = row.metadata["etag"]
    return out


def utf16_size(text: str) -> int:
    return len(text.encode("utf-16-le"))


def clean(entity: Mapping[str, Any]) -> Entity:
    """Escape the key, drop ``None`` (the service would drop it silently), serialise what it
    cannot store."""
    out: Entity = {}
    for key, value in entity.items():
        if value is None or key == "etag":
            continue
        if isinstance(value, dict | list):
            value = json.dumps(value)
        out[key] = value
    if "PartitionKey" in out:
        out["PartitionKey"] = escape_key(out["PartitionKey"])
    return out


class TaskHubStore:
    """Async access to one task hub's tables and its large-message container."""

    def __init__(self, connection_string: str, hub: str) -> None:
        self.hub = hub
        # The SDK's aiohttp transport trusts the environment by default: then every request looks
        # up ~/.netrc and the proxy for its URL on a thread of the loop's executor (two thread
        # hops per read, a few per cent of the host's CPU under load), and a .netrc entry would
        # replace SharedKey. The task hub's writes (TableWriter) already go without; so do these.
        self._service = TableServiceClient.from_connection_string(
            connection_string, transport=AioHttpTransport(use_env_settings=False)
        )
        self.instances: TableClient = self._service.get_table_client(f"{hub}Instances")
        self.history: TableClient = self._service.get_table_client(f"{hub}History")
        self.messages: TableClient = self._service.get_table_client(f"{hub}Messages")
        # The per-episode writes go over the REST API directly (table_writer.py); reads, queries
        # and the rare writes stay on the SDK.
        self.writer = TableWriter(connection_string)
        self._blob_service = BlobServiceClient.from_connection_string(
            connection_string, transport=AioHttpTransport(use_env_settings=False)
        )
        # AzureStorageOrchestrationService: "{TaskHubName.ToLowerInvariant()}-largemessages".
        self.blobs: ContainerClient = self._blob_service.get_container_client(f"{hub.lower()}-largemessages")
        # Blobs of large messages not yet deleted, by (instance id, message row key).
        self._message_blobs: dict[tuple[str, str], str] = {}

    def container(self, name: str) -> ContainerClient:
        """Another container of the same storage account (the host's own, for timer statuses)."""
        return self._blob_service.get_container_client(name)

    async def open(self) -> None:
        for table in (self.instances, self.history, self.messages):
            await self._service.create_table_if_not_exists(table.table_name)
        with contextlib.suppress(ResourceExistsError):
            await self.blobs.create_container()

    async def close(self) -> None:
        for table in (self.instances, self.history, self.messages):
            await table.close()
        await self._service.close()
        await self.writer.close()
        await self.blobs.close()
        await self._blob_service.close()

    # -- large messages ----------------------------------------------------------------------
    def blob_url(self, name: str) -> str:
        return f"{self.blobs.url}/{quote(name, safe='/')}"

    async def _upload(self, name: str, text: str) -> None:
        await self.blobs.upload_blob(name, gzip.compress(text.encode("utf-8")), overwrite=True)

    async def _download(self, name: str) -> str:
        stream = await self.blobs.download_blob(name)
        return gzip.decompress(await stream.readall()).decode("utf-8")

    async def compress(
        self, entity: Entity, properties: Iterable[str], *, url_in_place: bool = False
    ) -> Entity:
        """CompressLargeMessageAsync: properties too large for a table go to gzip blobs.

        ``entity`` is the clean (escaped) row. The blob name is
        ``{PartitionKey}/history-{RowKey}-{EventType}-{random:X8}-{property}.json.gz``.
        """
        for prop in properties:
            value = entity.get(prop)
            if not isinstance(value, str) or utf16_size(value) <= MAX_PROPERTY_BYTES:
                continue
            event_type = entity.get("EventType") or entity.get("Kind") or prop
            name = (
                f"{entity['PartitionKey']}/history-{entity.get('RowKey') or ''}-{event_type}-"
                f"{random.getrandbits(32):08X}-{prop}.json.gz"
            )
            await self._upload(name, value)
            if url_in_place:
                entity[prop] = self.blob_url(name)
            else:
                entity[prop] = ""
                entity[f"{prop}BlobName"] = name
        return entity

    async def decompress(self, row: Entity) -> Entity:
        """DecompressLargeEntityProperties: ``<Property>BlobName`` columns back to their values."""
        for key in [k for k in row if k.endswith("BlobName") and isinstance(row[k], str)]:
            row[key.removesuffix("BlobName")] = await self._download(row.pop(key))
        return row

    async def fetch_if_url(self, value: Any) -> Any:
        """MessageManager.FetchLargeMessageIfNecessary: a well-formed blob URL is downloaded."""
        if not isinstance(value, str) or not value.startswith(self.blobs.url + "/"):
            return value
        return await self._download(unquote(value[len(self.blobs.url) + 1 :]))

    # -- instances ---------------------------------------------------------------------------
    async def get_instance(self, instance_id: str) -> Entity | None:
        try:
            return with_etag(await self.instances.get_entity(escape_key(instance_id), ""))
        except ResourceNotFoundError:
            return None

    async def _instance_entity(self, entity: Entity) -> Entity:
        """The row to write; ``entity`` takes the stored Input/Output (a blob URL for a large one),
        so that later writes of the same row do not upload the same value again."""
        row = await self.compress(clean(entity), ("Input", "Output"), url_in_place=True)
        for prop in ("Input", "Output"):
            if prop in row:
                entity[prop] = row[prop]
        return row

    async def create_instance(self, entity: Entity) -> str:
        meta = await self.instances.create_entity(await self._instance_entity(entity))
        return str(meta["etag"])

    async def replace_instance(self, entity: Entity, etag: str) -> str:
        """Replace the row only if nobody else wrote it since ``etag`` (ResourceModifiedError)."""
        return await self.writer.replace(self.instances.table_name, await self._instance_entity(entity), etag)

    async def delete_instance(self, instance_id: str) -> None:
        await self.instances.delete_entity(escape_key(instance_id), "")

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

    # -- history -----------------------------------------------------------------------------
    async def read_history(self, instance_id: str) -> list[Entity]:
        """The event rows (not the sentinel), in order, large properties fetched back."""
        rows = []
        async for row in self.history.query_entities(
            "PartitionKey eq @pk", parameters={"pk": escape_key(instance_id)}
        ):
            if row["RowKey"] == SENTINEL:
                continue
            entity = dict(row)
            entity["PartitionKey"] = instance_id
            rows.append(await self.decompress(entity))
        rows.sort(key=lambda r: r["RowKey"])
        return rows

    async def write_history(self, instance_id: str, execution_id: str, rows: list[Entity]) -> None:
        """UploadHistoryBatch: upserts of up to 99 events plus the sentinel row per transaction."""
        cleaned = [await self.compress(clean(row), LARGE_PROPERTIES) for row in rows]
        chunks = [cleaned[i : i + HISTORY_BATCH] for i in range(0, len(cleaned), HISTORY_BATCH)] or [[]]
        for n, chunk in enumerate(chunks):
            final = n == len(chunks) - 1
            sentinel: Entity = {
                "PartitionKey": escape_key(instance_id),
                "RowKey": SENTINEL,
                "ExecutionId": execution_id,
                "IsCheckpointComplete": final,
            }
            if final:
                sentinel["CheckpointCompletedTimestamp"] = datetime.now(UTC)
            ops: list[Operation] = [("upsert-replace", row) for row in chunk]
            ops.append(("upsert-merge", sentinel))
            await self.writer.transaction(self.history.table_name, ops)

    async def delete_rows(self, table: TableClient, rows: Iterable[Entity]) -> None:
        ops: list[Operation] = [
            ("delete", {"PartitionKey": escape_key(r["PartitionKey"]), "RowKey": r["RowKey"]}) for r in rows
        ]
        for start in range(0, len(ops), MAX_BATCH):
            chunk = ops[start : start + MAX_BATCH]
            try:
                await self.writer.transaction(table.table_name, chunk)
            except Exception:
                for _, key in chunk:
                    with contextlib.suppress(ResourceNotFoundError):
                        await table.delete_entity(key["PartitionKey"], key["RowKey"])

    async def delete_partition(self, table: TableClient, instance_id: str) -> int:
        rows = [
            {"PartitionKey": instance_id, "RowKey": r["RowKey"]}
            async for r in table.query_entities(
                "PartitionKey eq @pk",
                parameters={"pk": escape_key(instance_id)},
                select=["PartitionKey", "RowKey"],
            )
        ]
        await self.delete_rows(table, rows)
        return len(rows)

    async def delete_blobs(self, instance_id: str) -> None:
        """The instance's large-message blobs (a purge removes them too)."""
        async for blob in self.blobs.list_blobs(name_starts_with=escape_key(instance_id) + "/"):
            with contextlib.suppress(ResourceNotFoundError):
                await self.blobs.delete_blob(blob.name)

    # -- messages ----------------------------------------------------------------------------
    async def add_message(self, entity: Entity) -> None:
        row = await self.compress(clean(entity), MESSAGE_LARGE_PROPERTIES)
        await self.writer.upsert(self.messages.table_name, row)
        if "BodyBlobName" in row:
            self._message_blobs[(entity["PartitionKey"], row["RowKey"])] = row["BodyBlobName"]

    async def read_messages(self, instance_id: str) -> list[Entity]:
        rows = []
        async for row in self.messages.query_entities(
            "PartitionKey eq @pk", parameters={"pk": escape_key(instance_id)}
        ):
            entity = dict(row)
            entity["PartitionKey"] = instance_id
            if isinstance(entity.get("BodyBlobName"), str):
                self._message_blobs[(instance_id, entity["RowKey"])] = entity["BodyBlobName"]
            rows.append(await self.decompress(entity))
        rows.sort(key=lambda r: r["RowKey"])
        return rows

    async def delete_messages(self, instance_id: str, row_keys: Iterable[str]) -> None:
        """Delete applied messages and the blobs of large ones (as the provider deletes a
        processed message's blob)."""
        keys = list(row_keys)
        await self.delete_rows(self.messages, [{"PartitionKey": instance_id, "RowKey": k} for k in keys])
        for key in keys:
            if (name := self._message_blobs.pop((instance_id, key), None)) is not None:
                with contextlib.suppress(ResourceNotFoundError):
                    await self.blobs.delete_blob(name)
