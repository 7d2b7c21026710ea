"""The app's own lifecycle leaves a task hub that DurableTask.AzureStorage's rules can read."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from tests.e2e.conftest import Stack
from tests.integration.durabletask_reader import DurableTaskReader


def test_a_finished_lifecycle_reads_back_by_durabletask_rules(
    stack: Stack, storage_connection_string: str
) -> None:
    """A no-show appointment (timers, activities, custom status) read as the provider reads it."""
    booked = stack.book(f"cust-{uuid.uuid4().hex[:10]}")
    code = booked["bookingCode"]
    window = datetime.fromisoformat(booked["start"].replace("Z", "+00:00")) - timedelta(minutes=15)
    stack.host.advance((window - stack.now()).total_seconds())
    stack.host.advance(minutes=61)
    assert stack.phase(code) == "no_show"
    assert stack.runtime_status(code) == "Completed"
    reader = DurableTaskReader(storage_connection_string, stack.host.task_hub)
    instance = reader.instance(f"appt-{code}")
    assert instance.row["RuntimeStatus"] == "Completed"
    kinds = [e["EventType"] for e in instance.history]
    assert {"TimerCreated", "TimerFired", "TaskScheduled", "TaskCompleted"} <= set(kinds)
    assert kinds[-2:] == ["ExecutionCompleted", "OrchestratorCompleted"]
    assert isinstance(
        next(e for e in instance.history if e["EventType"] == "TimerCreated")["FireAt"], datetime
    )
