"""The engine's REST writer writes what azure-data-tables writes and fails as it fails."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from devhost.durable.table_writer import TableWriter


@pytest.fixture
def table(storage_connection_string: str) -> Any:
    name = "W" + uuid.uuid4().hex[:12]
    return TableServiceClient.from_connection_string(storage_connection_string).create_table(name)


def run[T](connection: str, work: Callable[[TableWriter], Awaitable[T]]) -> T:
    async def scenario() -> T:
        writer = TableWriter(connection)
        try:
            return await work(writer)
        finally:
            await writer.close()

    return asyncio.run(scenario())


ROW = {
    "PartitionKey": "appt-K'7^2ä (x)",  # a quote, the escape character, non-ASCII, parentheses
    "RowKey": "000000000000000A",
    "Name": "löytö ✓",
    "EventId": 7,
    "IsPlayed": False,
    "Ratio": 0.25,
    "Timestamp_": datetime(2030, 3, 4, 10, 0, 0, 123000, tzinfo=UTC),
}


def test_an_upsert_is_read_back_by_the_sdk_with_the_types_the_sdk_would_have_written(
    storage_connection_string: str, table: Any
) -> None:
    etag = run(storage_connection_string, lambda w: w.upsert(table.table_name, ROW))
    ours = table.get_entity(ROW["PartitionKey"], ROW["RowKey"])
    table.upsert_entity({**ROW, "RowKey": "sdk"}, mode=UpdateMode.REPLACE)
    theirs = table.get_entity(ROW["PartitionKey"], "sdk")

    assert ours.metadata["etag"] == etag
    assert {k: v for k, v in ours.items() if k != "RowKey"} == {
        k: v for k, v in theirs.items() if k != "RowKey"
    }
    assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in theirs.items()}


def test_a_replace_with_a_stale_etag_is_refused_and_changes_nothing(
    storage_connection_string: str, table: Any
) -> None:
    async def work(w: TableWriter) -> None:
        first = await w.insert(table.table_name, ROW)
        await w.replace(table.table_name, {**ROW, "Name": "second"}, first)
        with pytest.raises(ResourceModifiedError):
            await w.replace(table.table_name, {**ROW, "Name": "third"}, first)
        with pytest.raises(ResourceExistsError):
            await w.insert(table.table_name, ROW)

    run(storage_connection_string, work)
    assert table.get_entity(ROW["PartitionKey"], ROW["RowKey"])["Name"] == "second"


def test_a_transaction_is_all_or_nothing(storage_connection_string: str, table: Any) -> None:
    pk = ROW["PartitionKey"]
    sentinel = {"PartitionKey": pk, "RowKey": "sentinel", "IsCheckpointComplete": True}

    async def work(w: TableWriter) -> None:
        await w.transaction(
            table.table_name,
            [("upsert-replace", {**ROW, "RowKey": f"{i:016X}"}) for i in range(3)]
            + [("upsert-merge", sentinel)],
        )
        with pytest.raises(ResourceNotFoundError):
            await w.transaction(
                table.table_name,
                [
                    ("delete", {"PartitionKey": pk, "RowKey": f"{0:016X}"}),
                    ("delete", {"PartitionKey": pk, "RowKey": "no such row"}),
                ],
            )

    run(storage_connection_string, work)
    keys = sorted(e["RowKey"] for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": pk}))
    assert keys == [f"{i:016X}" for i in range(3)] + ["sentinel"]  # the failed delete took nothing
    assert table.get_entity(pk, "sentinel")["IsCheckpointComplete"] is True
