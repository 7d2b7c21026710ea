"""The engine's data: persisted messages, its per-execution bookkeeping and the work an episode asks for.

Statuses are the SDK's own ``OrchestrationRuntimeStatus``; their ``.value`` is what the Instances
table's ``RuntimeStatus`` column holds (DurableTask writes ``OrchestrationStatus.ToString()``, the
same names).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from azure.durable_functions.models.history.HistoryEventType import HistoryEventType as T
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus as S

from . import history as h
from .store import Entity

TERMINAL = frozenset({S.Completed, S.Failed, S.Terminated, S.Canceled})
ACTIVE = frozenset({S.Pending, S.Running, S.ContinuedAsNew, S.Suspended})
TERMINAL_NAMES = frozenset(s.value for s in TERMINAL)
ACTIVE_NAMES = frozenset(s.value for s in ACTIVE)


def status_of(row: Entity) -> S | None:
    value = row.get("RuntimeStatus")
    try:
        return S(value)
    except ValueError:
        return None


class Kind(StrEnum):
    """What a message asks of its instance (the names of the history events most of them become)."""

    EVENT_RAISED = "EventRaised"
    TASK_COMPLETED = "TaskCompleted"
    TASK_FAILED = "TaskFailed"
    TIMER_FIRED = "TimerFired"
    SUB_COMPLETED = "SubOrchestrationInstanceCompleted"
    SUB_FAILED = "SubOrchestrationInstanceFailed"
    TERMINATE = "Terminate"
    SUSPEND = "Suspend"
    RESUME = "Resume"


EVENT_OF_KIND = {
    Kind.EVENT_RAISED: T.EVENT_RAISED,
    Kind.TASK_COMPLETED: T.TASK_COMPLETED,
    Kind.TASK_FAILED: T.TASK_FAILED,
    Kind.TIMER_FIRED: T.TIMER_FIRED,
    Kind.SUB_COMPLETED: T.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
    Kind.SUB_FAILED: T.SUB_ORCHESTRATION_INSTANCE_FAILED,
}
# Messages that act on the instance itself rather than reaching the orchestrator's code.
CONTROL = frozenset({Kind.TERMINATE, Kind.SUSPEND, Kind.RESUME})


@dataclass
class Message:
    """A persisted message for one instance (``row_key`` None: a timer firing, derived)."""

    kind: Kind
    body: dict[str, Any]
    execution_id: str | None = None
    row_key: str | None = None
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_entity(self, partition_key: str) -> Entity:
        return {
            "PartitionKey": partition_key,
            "RowKey": self.row_key,
            "Kind": self.kind.value,
            "Body": json.dumps(self.body),
            "ExecutionId": self.execution_id,
            "MessageId": self.message_id,
        }

    @classmethod
    def from_entity(cls, row: Entity) -> Message:
        return cls(
            kind=Kind(row["Kind"]),
            body=json.loads(row["Body"]),
            execution_id=row.get("ExecutionId"),
            row_key=row["RowKey"],
            message_id=str(row.get("MessageId") or row["RowKey"]),
        )

    @property
    def task_key(self) -> int | None:
        """The sequence number this message answers (a task, sub-orchestration or timer), if any."""
        key = self.body.get("TaskScheduledId", self.body.get("TimerId"))
        return None if key is None else int(key)

    def to_event(self, when: datetime) -> h.Event:
        return h.event(EVENT_OF_KIND[self.kind], when, MessageId=self.message_id, **self.body)


@dataclass
class EngineState:
    """The engine's bookkeeping for the current execution, committed with the instance row."""

    seq: int = 0  # next sequence number (TaskScheduled/TimerCreated EventId)
    actions: int = 0  # top-level actions already turned into history
    leaf_ids: list[int | None] = field(default_factory=list)  # sequence number per leaf action
    retries: dict[str, dict[str, Any]] = field(default_factory=dict)  # by current task/timer id
    cancelled: list[int] = field(default_factory=list)
    history_count: int = 0
    consumed: list[str] = field(default_factory=list)  # message row keys the last commit applied
    parent: dict[str, Any] | None = None  # {"instanceId", "executionId", "taskId", "name"}

    @classmethod
    def loads(cls, text: str | None) -> EngineState:
        return cls(**json.loads(text)) if text else cls()

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    def next_seq(self) -> int:
        seq = self.seq
        self.seq += 1
        return seq


# -- work an episode asks for, carried out after its commit ------------------------------------
@dataclass(frozen=True)
class RunActivity:
    id: int
    name: str
    input: str | None


@dataclass(frozen=True)
class ArmTimer:
    id: int
    fire_at: datetime


@dataclass(frozen=True)
class StartChild:
    id: int
    name: str
    instance_id: str
    input: str | None


Work = RunActivity | ArmTimer | StartChild
