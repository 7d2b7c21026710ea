"""History events: the JSON shape the Python SDK replays, and their table rows.

In memory an event is the dict the SDK's ``HistoryEvent(**event)`` takes: ``EventType`` (int),
``EventId``, ``Timestamp`` (``%Y-%m-%dT%H:%M:%S.%fZ``) and type-specific keys (``Name``,
``Input``, ``Result``, ``TaskScheduledId``, ``TimerId``, ``FireAt``, ``Reason``, ``Details``...).
``IsPlayed`` is added when a context is built. In the History table ``EventType`` is the name,
as the Azure Storage provider writes it, and the timestamp is the ``_Timestamp`` column.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from azure.durable_functions.models.history.HistoryEventType import HistoryEventType as T

from .store import Entity, history_row_key

Event = dict[str, Any]

_NAMES = {t.value: "".join(p.capitalize() for p in t.name.split("_")) for t in T}
_NAMES[T.SUB_ORCHESTRATION_INSTANCE_CREATED.value] = "SubOrchestrationInstanceCreated"
_VALUES = {name: value for value, name in _NAMES.items()}

# Keys that are not columns of their own in the row (or are the row's own bookkeeping).
_SKIP = {"EventType", "Timestamp", "IsPlayed"}


def ts(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def event(kind: T, when: datetime, event_id: int = -1, **fields: Any) -> Event:
    return {"EventType": kind.value, "EventId": event_id, "Timestamp": ts(when), **fields}


def type_name(event_type: int) -> str:
    return _NAMES.get(event_type, str(event_type))


def to_row(instance_id: str, execution_id: str, index: int, ev: Event) -> Entity:
    row: Entity = {
        "PartitionKey": instance_id,
        "RowKey": history_row_key(index),
        "EventType": type_name(ev["EventType"]),
        "ExecutionId": execution_id,
        "_Timestamp": parse_ts(ev["Timestamp"]),
        "IsPlayed": True,
    }
    for key, value in ev.items():
        if key not in _SKIP:
            row[key] = value
    return row


def from_row(row: Entity) -> Event:
    ev: Event = {"EventType": _VALUES[row["EventType"]], "Timestamp": ts(row["_Timestamp"])}
    for key, value in row.items():
        if (
            key
            in {
                "PartitionKey",
                "RowKey",
                "ExecutionId",
                "_Timestamp",
                "EventType",
                "IsPlayed",
                "Timestamp",
                "etag",
            }
            or key.startswith("odata")
            or key.endswith("@odata.type")
        ):
            continue
        ev[key] = value
    ev.setdefault("EventId", -1)
    if ev["EventType"] == T.EXECUTION_STARTED:
        # The table drops None columns, but the SDK reads ExecutionStarted.Version unconditionally.
        ev.setdefault("Version", None)
    return ev


def for_status(ev: Event, with_output: bool) -> dict[str, Any]:
    """One entry of ``historyEvents`` in a status answer (roughly the real host's shape)."""
    out: dict[str, Any] = {"EventType": type_name(ev["EventType"]), "Timestamp": ev["Timestamp"][:23] + "Z"}
    for key in (
        "EventId",
        "Name",
        "FunctionName",
        "TaskScheduledId",
        "TimerId",
        "FireAt",
        "Reason",
        "OrchestrationStatus",
        "InstanceId",
    ):
        if key in ev and ev[key] not in (None, -1):
            out[key] = ev[key]
    if with_output:
        for key in ("Input", "Result", "Details"):
            if ev.get(key) is not None:
                out[key] = ev[key]
    return out
