"""A task hub reader that follows DurableTask.AzureStorage's own rules, to prove the devhost's hub
is one that tools written against the real provider (the Durable Functions Monitor, DurableTask's
AzureTableTrackingStore) can read. Rules from Azure/durabletask,
``src/DurableTask.AzureStorage/Tracking/AzureTableTrackingStore.cs`` (GetHistoryEventsAsync,
ConvertFromAsync, DecompressLargeEntityProperties), ``Tracking/KeySanitation.cs`` and
``Tracking/TableEntityConverter.cs``; event type names from ``DurableTask.Core/History/EventType.cs``.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

# DurableTask.Core EventType names, by value.
EVENT_TYPES = [
    "ExecutionStarted",
    "ExecutionCompleted",
    "ExecutionFailed",
    "ExecutionTerminated",
    "TaskScheduled",
    "TaskCompleted",
    "TaskFailed",
    "SubOrchestrationInstanceCreated",
    "SubOrchestrationInstanceCompleted",
    "SubOrchestrationInstanceFailed",
    "TimerCreated",
    "TimerFired",
    "OrchestratorStarted",
    "OrchestratorCompleted",
    "EventSent",
    "EventRaised",
    "ContinueAsNew",
    "GenericEvent",
    "HistoryState",
    "ExecutionSuspended",
    "ExecutionResumed",
]
STATUSES = {
    "Running",
    "Completed",
    "ContinuedAsNew",
    "Failed",
    "Canceled",
    "Terminated",
    "Pending",
    "Suspended",
}
JSON_MEMBERS = {"ExecutionStarted": ("OrchestrationInstance", "ParentInstance", "Tags")}
DATETIME_MEMBERS = ("_Timestamp", "FireAt")


class HubFormatError(AssertionError):
    """The hub breaks a rule the real provider relies on."""


def unescape(key: str) -> str:
    out, i = [], 0
    table = {"^": "^", "0": "/", "1": "\\", "2": "#", "3": "?"}
    while i < len(key):
        if key[i] == "^":
            nxt = key[i + 1]
            out.append(table.get(nxt) or chr(ord(nxt) - ord("À")))
            i += 2
        else:
            out.append(key[i])
            i += 1
    return "".join(out)


@dataclass
class Instance:
    instance_id: str
    row: dict[str, Any]
    history: list[dict[str, Any]]


class DurableTaskReader:
    def __init__(self, connection_string: str, hub: str) -> None:
        tables = TableServiceClient.from_connection_string(connection_string)
        self.instances = tables.get_table_client(f"{hub}Instances")
        self.history = tables.get_table_client(f"{hub}History")
        self.blobs = BlobServiceClient.from_connection_string(connection_string).get_container_client(
            f"{hub.lower()}-largemessages"
        )
        self.hub = hub

    def _download(self, name: str) -> str:
        return gzip.decompress(self.blobs.download_blob(name).readall()).decode("utf-8")

    def instance(self, instance_id: str) -> Instance:
        escaped = instance_id
        for raw, esc in (("^", "^^"), ("/", "^0"), ("\\", "^1"), ("#", "^2"), ("?", "^3")):
            escaped = escaped.replace(raw, esc)
        row = dict(self.instances.get_entity(escaped, ""))
        self._check_instance(row)
        return Instance(unescape(row["PartitionKey"]), row, self.read_history(escaped, row["ExecutionId"]))

    def all_instances(self) -> list[Instance]:
        return [self.instance(unescape(r["PartitionKey"])) for r in self.instances.list_entities()]

    def _check_instance(self, row: dict[str, Any]) -> None:
        if row["RuntimeStatus"] not in STATUSES:
            raise HubFormatError(f"RuntimeStatus {row['RuntimeStatus']!r}")
        for column in ("Name", "ExecutionId", "TaskHubName", "CustomStatus", "Tags"):
            if not isinstance(row.get(column), str):
                raise HubFormatError(f"{row['PartitionKey']}: {column} is {row.get(column)!r}")
        if row["TaskHubName"] != self.hub:
            raise HubFormatError(f"TaskHubName {row['TaskHubName']!r}")
        if not isinstance(row.get("Generation"), int):
            raise HubFormatError(f"Generation {row.get('Generation')!r}")
        for column in ("CreatedTime", "LastUpdatedTime"):
            if not isinstance(row.get(column), datetime):
                raise HubFormatError(f"{column} is not a DateTime")
        json.loads(row["CustomStatus"])  # "null" or JSON text

    def read_history(self, partition_key: str, expected_execution: str) -> list[dict[str, Any]]:
        """GetHistoryEventsAsync: the sentinel row names the execution; its rows, decompressed."""
        rows = sorted(
            (
                dict(r)
                for r in self.history.query_entities("PartitionKey eq @pk", parameters={"pk": partition_key})
            ),
            key=lambda r: r["RowKey"],
        )
        sentinel = next((r for r in rows if r["RowKey"] == "sentinel"), None)
        if sentinel is None:
            raise HubFormatError(f"{partition_key}: no sentinel row")
        if (
            sentinel.get("ExecutionId") != expected_execution
            or sentinel.get("IsCheckpointComplete") is not True
        ):
            raise HubFormatError(f"{partition_key}: sentinel {sentinel}")
        events = []
        for row in rows:
            if row is sentinel or row.get("ExecutionId") != expected_execution:
                continue
            if row["EventType"] not in EVENT_TYPES:
                raise HubFormatError(f"EventType {row['EventType']!r}")
            for key in [k for k in row if k.endswith("BlobName")]:
                row[key.removesuffix("BlobName")] = self._download(row.pop(key))
            for key in DATETIME_MEMBERS:
                if key in row and not isinstance(row[key], datetime):
                    raise HubFormatError(f"{row['EventType']}.{key} is not a DateTime: {row[key]!r}")
            for key in JSON_MEMBERS.get(row["EventType"], ()):
                row[key] = json.loads(row[key])
            if not isinstance(row.get("EventId"), int):
                raise HubFormatError(f"{row['EventType']}.EventId {row.get('EventId')!r}")
            events.append(row)
        if [int(e["RowKey"], 16) for e in events] != list(range(len(events))):
            raise HubFormatError(f"{partition_key}: row keys are not the sequence 0..n-1 in X16")
        self._check_order(partition_key, events)
        return events

    @staticmethod
    def _check_order(pk: str, events: list[dict[str, Any]]) -> None:
        kinds = [e["EventType"] for e in events]
        if kinds[:2] != ["OrchestratorStarted", "ExecutionStarted"]:
            raise HubFormatError(f"{pk}: starts {kinds[:2]}")
        if kinds[-1] != "OrchestratorCompleted":
            raise HubFormatError(f"{pk}: ends {kinds[-1]}")
        if "ExecutionCompleted" in kinds and kinds.index("ExecutionCompleted") != len(kinds) - 2:
            raise HubFormatError(
                f"{pk}: ExecutionCompleted is not right before the last OrchestratorCompleted"
            )
        scheduled = {
            e["EventId"]
            for e in events
            if e["EventType"] in ("TaskScheduled", "SubOrchestrationInstanceCreated")
        }
        for e in events:
            answers = e["EventType"] in ("TaskCompleted", "TaskFailed", "SubOrchestrationInstanceCompleted")
            if answers and e["TaskScheduledId"] not in scheduled:
                raise HubFormatError(f"{pk}: {e['EventType']} for unscheduled {e['TaskScheduledId']}")
        timers = {e["EventId"] for e in events if e["EventType"] == "TimerCreated"}
        for e in events:
            if e["EventType"] == "TimerFired" and e["TimerId"] not in timers:
                raise HubFormatError(f"{pk}: TimerFired for unknown timer {e['TimerId']}")
