"""History events: the JSON shape the Python SDK replays, their table rows, and the status view.

In memory an event is the dict the SDK's ``HistoryEvent(**event)`` takes: ``EventType`` (int),
``EventId``, ``Timestamp`` (``%Y-%m-%dT%H:%M:%S.%fZ``) and type-specific keys (``Name``,
``Input``, ``Result``, ``TaskScheduledId``, ``TimerId``, ``FireAt``, ``Reason``, ``Details``...).

A row is what DurableTask.AzureStorage's ``TableEntityConverter`` makes of the event
(``src/DurableTask.AzureStorage/Tracking/TableEntityConverter.cs`` in Azure/durabletask): every
``[DataMember]`` as a column, ``EventType`` by name, ``Timestamp`` renamed ``_Timestamp`` (a
reserved column), DateTime members (``_Timestamp``, ``FireAt``) as DateTime, and complex members
(``OrchestrationInstance``, ``ParentInstance``, ``Tags``) as JSON text, ``"null"`` when absent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from azure.durable_functions.models.history.HistoryEventType import HistoryEventType as T

from .store import Entity

Event = dict[str, Any]

_NAMES = {t.value: "".join(p.capitalize() for p in t.name.split("_")) for t in T}
_VALUES = {name: value for value, name in _NAMES.items()}

# Columns of a row that are not event fields.
_ROW_ONLY = {"PartitionKey", "RowKey", "ExecutionId", "_Timestamp", "EventType", "Timestamp", "etag"}
# Complex [DataMember]s, serialised as JSON text by TableEntityConverter (Utils.SerializeToJson).
_JSON_MEMBERS = {
    T.EXECUTION_STARTED: ("OrchestrationInstance", "ParentInstance", "Tags"),
}
_DATETIME_MEMBERS = ("FireAt",)


def ts(when: datetime) -> str:
    """``2026-12-01T10:00:00.000000Z``: what the engine writes (isoformat: strftime is 3× slower)."""
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_ts(text: str) -> datetime:
    """The engine's own timestamps back (``ts``); fromisoformat is 40× faster than strptime."""
    when = datetime.fromisoformat(text)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def event(kind: T, when: datetime, event_id: int = -1, **fields: Any) -> Event:
    return {"EventType": kind.value, "EventId": event_id, "Timestamp": ts(when), **fields}


def type_name(event_type: int) -> str:
    return _NAMES.get(event_type, str(event_type))


def for_sdk(ev: Event, *, played: bool) -> Event:
    """The event as the SDK's replay reads it (``IsPlayed`` set per episode)."""
    return dict(ev, IsPlayed=played)


def to_row(partition_key: str, execution_id: str, index: int, ev: Event) -> Entity:
    kind = T(ev["EventType"])
    row: Entity = {
        "PartitionKey": partition_key,
        "RowKey": f"{index:016X}",  # "X16": the event's position in the execution's history
        "EventType": type_name(kind),
        "ExecutionId": execution_id,
        "_Timestamp": parse_ts(ev["Timestamp"]),
        "IsPlayed": False,
    }
    for key, value in ev.items():
        if key in ("EventType", "Timestamp", "IsPlayed"):
            continue
        if key in _DATETIME_MEMBERS and isinstance(value, str):
            value = parse_ts(value)
        row[key] = value
    for key in _JSON_MEMBERS.get(kind, ()):
        row[key] = json.dumps(ev.get(key), separators=(",", ":"))
    return row


def from_row(row: Entity) -> Event:
    kind = _VALUES[row["EventType"]]
    stamp = row["_Timestamp"]
    ev: Event = {"EventType": kind, "Timestamp": ts(stamp) if isinstance(stamp, datetime) else stamp}
    for key, value in row.items():
        if key in _ROW_ONLY or key == "IsPlayed" or key.startswith("odata") or key.endswith("@odata.type"):
            continue
        if isinstance(value, datetime):
            value = ts(value)
        ev[key] = value
    for key in _JSON_MEMBERS.get(T(kind), ()):
        if isinstance(ev.get(key), str):
            ev[key] = json.loads(ev[key])
    ev.setdefault("EventId", -1)
    if kind == T.EXECUTION_STARTED:
        # The table drops None columns, but the SDK reads ExecutionStarted.Version unconditionally.
        ev.setdefault("Version", None)
    return ev


def _parse(text: Any) -> Any:
    """``DurableClient.ParseToJToken``: JSON where it parses, the raw text otherwise."""
    if text is None:
        return None
    value = str(text).strip()
    if not value:
        return ""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _status_ts(text: str) -> str:
    return text[:23] + "Z" if text.endswith("Z") else text


def for_status(events: list[Event], *, show_output: bool, show_input: bool) -> list[dict[str, Any]]:
    """``historyEvents`` of a status answer, shaped as the extension's DurableClient shapes them
    (``ContextImplementations/DurableClient.cs`` GetDurableOrchestrationStatusAsync): event types
    by name; OrchestratorStarted/Completed dropped; TaskScheduled and SubOrchestrationInstanceCreated
    folded into their results (FunctionName, ScheduledTime, Input); results parsed; EventId and
    IsPlayed removed."""
    items: list[dict[str, Any]] = []
    scheduled: dict[tuple[str, int], int] = {}
    drop: set[int] = set()
    for ev in events:
        kind = T(ev["EventType"])
        item: dict[str, Any] = {
            k: v for k, v in ev.items() if k not in ("EventType", "IsPlayed", "MessageId")
        }
        item = {"EventType": type_name(kind), **item}
        item["Timestamp"] = _status_ts(ev["Timestamp"])
        index = len(items)
        if kind in (T.TASK_SCHEDULED, T.SUB_ORCHESTRATION_INSTANCE_CREATED):
            scheduled[(type_name(kind), int(ev["EventId"]))] = index
            item.pop("Version", None)
        elif kind in (
            T.TASK_COMPLETED,
            T.TASK_FAILED,
            T.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
            T.SUB_ORCHESTRATION_INSTANCE_FAILED,
        ):
            prefix = (
                "TaskScheduled"
                if kind in (T.TASK_COMPLETED, T.TASK_FAILED)
                else "SubOrchestrationInstanceCreated"
            )
            origin = scheduled.get((prefix, int(ev.get("TaskScheduledId", -1))))
            if origin is not None:
                source = items[origin]
                item["ScheduledTime"] = source["Timestamp"]
                item["FunctionName"] = source.get("Name")
                if show_input:
                    item["Input"] = source.get("Input")
                drop.add(origin)
            item.pop("TaskScheduledId", None)
            succeeded = kind in (T.TASK_COMPLETED, T.SUB_ORCHESTRATION_INSTANCE_COMPLETED)
            if succeeded and not show_output:
                item.pop("Result", None)
            elif succeeded:
                item["Result"] = _parse(item.get("Result"))
        elif kind == T.EXECUTION_STARTED:
            item["FunctionName"] = item.pop("Name", None)
            for key in ("OrchestrationInstance", "ParentInstance", "Version", "Tags"):
                item.pop(key, None)
        elif kind == T.EXECUTION_COMPLETED:
            if show_output:
                item["Result"] = _parse(item.get("Result"))
            else:
                item.pop("Result", None)
        elif kind == T.TIMER_FIRED:
            item.pop("TimerId", None)
        elif kind in (T.ORCHESTRATOR_STARTED, T.ORCHESTRATOR_COMPLETED):
            drop.add(index)
        if not show_input:
            item.pop("Input", None)
        item.pop("EventId", None)
        items.append(item)
    return [item for i, item in enumerate(items) if i not in drop]
