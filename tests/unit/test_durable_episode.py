"""The durable engine's episode logic, pure: the SDK's real replay, no storage, no worker.

``SdkReplayDouble`` stands in for the worker here only: it hands the context to the SDK's
``Orchestrator.handle`` in-process. The engine itself runs functions only through the worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType as T
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus as S

from devhost.durable import episode as ep
from devhost.durable import history as h
from devhost.durable.model import ArmTimer, EngineState, Kind, Message, RunActivity, StartChild
from devhost.durable.store import escape_key, unescape_key

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass
class SdkReplayDouble:
    """Runs episodes of one orchestrator function through the SDK, keeping history and state."""

    fn: Any
    input: Any = None
    instance_id: str = "inst-1"
    execution_id: str = "exec-1"
    history: list[h.Event] = field(default_factory=list)
    state: EngineState = field(default_factory=EngineState)
    now: datetime = T0

    def instance(self) -> ep.Instance:
        inp = json.dumps(self.input) if self.input is not None else None
        return ep.Instance(self.instance_id, self.execution_id, "orch", inp)

    def episode(self, *batch: Message, fn: Any = None) -> ep.Episode:
        instance = self.instance()
        events = ep.opening(instance, self.state, list(batch), self.now)
        context = ep.context_json(instance, self.history, events)
        try:
            answer, error = json.loads(df.Orchestrator.create(fn or self.fn)(context)), None
        except Exception as exc:  # the SDK raises with its state appended, as the worker reports it
            error, answer = ep.split_failure(str(exc))
        result = ep.decide(instance, self.history, self.state, list(batch), events, answer, error, self.now)
        self.history = self.history + result.events
        self.state = result.state
        self.state.history_count = len(self.history)
        return result


def completed(task_id: int, value: Any) -> Message:
    return Message(Kind.TASK_COMPLETED, {"TaskScheduledId": task_id, "Result": json.dumps(value)})


def failed(task_id: int) -> Message:
    return Message(Kind.TASK_FAILED, {"TaskScheduledId": task_id, "Reason": "boom", "Details": "boom"})


def fired(timer_id: int, at: datetime) -> Message:
    return Message(Kind.TIMER_FIRED, {"TimerId": timer_id, "FireAt": h.ts(at)})


def types(events: list[h.Event]) -> list[str]:
    return [h.type_name(e["EventType"]) for e in events]


def test_replay_that_schedules_another_activity_fails_as_non_deterministic() -> None:
    """History says a2 was scheduled; code that now schedules a1 fails the orchestration."""

    def first(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        return (yield context.call_activity("a2", 1))

    def changed(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        return (yield context.call_activity("a1", 1))

    run = SdkReplayDouble(first)
    assert [w for w in run.episode().work] == [RunActivity(0, "a2", "1")]
    result = run.episode(completed(0, "stale"), fn=changed)
    assert result.status is S.Failed
    assert result.error is not None
    assert result.error.startswith("Non-Deterministic workflow detected:")
    assert "'a2'" in result.error and "'a1'" in result.error
    assert result.work == []
    assert types(result.events)[-2:] == ["ExecutionCompleted", "OrchestratorCompleted"]


def test_replay_that_drops_a_scheduled_timer_fails_as_non_deterministic() -> None:
    """A timer in the history that the replay no longer creates is a code change too."""

    def first(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        yield context.create_timer(context.current_utc_datetime + timedelta(minutes=5))
        return "woke"

    def changed(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        return "no timer"
        yield  # a generator all the same

    run = SdkReplayDouble(first)
    run.episode()
    result = run.episode(fired(0, T0 + timedelta(minutes=5)), fn=changed)
    assert result.status is S.Failed
    assert "timer task with sequence number 0" in str(result.error)


def test_activity_names_match_ignoring_case_on_replay() -> None:
    """DurableTask compares names with OrdinalIgnoreCase: a case change is not a code change."""

    def first(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        return (yield context.call_activity("Shout", "x"))

    def renamed(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        return (yield context.call_activity("shout", "x"))

    run = SdkReplayDouble(first)
    run.episode()
    result = run.episode(completed(0, "X"), fn=renamed)
    assert result.status is S.Completed
    assert result.output == "X"


def status_of_size(size: int) -> Any:
    def orch(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        context.set_custom_status("x" * size)
        yield context.call_activity("a", 1)

    return orch


def test_custom_status_over_16_kb_fails_the_orchestration_with_the_converters_message() -> None:
    """20,000 characters are 39 KB of UTF-16: more than SetCustomStatus accepts; 8,000 (15.6 KB) pass."""
    result = SdkReplayDouble(status_of_size(20_000)).episode()
    assert result.status is S.Failed
    assert result.error == (
        "Orchestrator function 'orch' failed: The UTF-16 size of the JSON-serialized payload must not "
        "exceed 16 KB. The current payload size is 39 KB."
    )
    assert result.work == []
    kept = SdkReplayDouble(status_of_size(8_000)).episode()
    assert kept.status is S.Running
    assert kept.custom_status == json.dumps("x" * 8_000)


def test_last_failed_retry_gets_a_timer_that_fires_at_once() -> None:
    """RetryInterceptor: a delay after each failed attempt but the last, whose timer is immediate."""
    retry = df.RetryOptions(first_retry_interval_in_milliseconds=60_000, max_number_of_attempts=2)

    def orch(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        try:
            yield context.call_activity_with_retry("flaky", retry, "k")
        except Exception:
            return "gave up"
        return "ok"

    run = SdkReplayDouble(orch)
    run.episode()
    first = run.episode(failed(0))
    assert first.work == [ArmTimer(1, T0 + timedelta(minutes=1))]
    run.now = T0 + timedelta(minutes=1)
    second = run.episode(fired(1, run.now))
    assert second.work == [RunActivity(2, "flaky", '"k"')]
    last = run.episode(failed(2))
    assert last.work == [ArmTimer(3, run.now)]
    done = run.episode(fired(3, run.now))
    assert done.status is S.Completed
    assert done.output == "gave up"


def test_sub_orchestration_without_an_id_is_named_after_the_parent_execution() -> None:
    """DurableTask names a child "<execution id>:<sequence number>"."""

    def orch(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        yield context.call_activity("a", 1)
        return (yield context.call_sub_orchestrator("child", 2))

    run = SdkReplayDouble(orch, execution_id="e7")
    run.episode()
    result = run.episode(completed(0, None))
    assert result.work == [StartChild(1, "child", "e7:1", "2")]


def test_execution_completed_comes_before_orchestrator_completed() -> None:
    """The dispatcher appends OrchestratorCompleted after the completion decision."""

    def orch(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        return (yield context.call_activity("a", 1))

    run = SdkReplayDouble(orch)
    assert types(run.episode().events) == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "TaskScheduled",
        "OrchestratorCompleted",
    ]
    done = run.episode(completed(0, 5))
    assert types(done.events) == [
        "OrchestratorStarted",
        "TaskCompleted",
        "ExecutionCompleted",
        "OrchestratorCompleted",
    ]
    assert done.events[2]["Result"] == "5"


def test_failure_is_plain_text_in_the_history_and_output() -> None:
    """ "Orchestrator function '<name>' failed: <message>", not a JSON string."""

    def orch(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        yield context.call_activity("a", 1)
        raise ValueError("the orchestrator gave up")

    run = SdkReplayDouble(orch)
    run.episode()
    result = run.episode(completed(0, 1))
    assert result.status is S.Failed
    assert result.error == "Orchestrator function 'orch' failed: the orchestrator gave up"
    assert result.events[-2]["Result"] == result.error


def test_call_http_fails_the_orchestration_naming_it_instead_of_hanging() -> None:
    """The devhost does not run call_http: the orchestration fails at once, saying so."""

    def orch(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        return (yield context.call_http("GET", "https://example.invalid/"))

    result = SdkReplayDouble(orch).episode()
    assert result.status is S.Failed
    assert result.error == (
        "Orchestrator function 'orch' failed: call_http is not supported by the devhost's durable engine."
    )


def test_raised_event_input_reaches_the_orchestrator_as_the_host_stored_it() -> None:
    """The host parses the body once: a JSON string "9361" stays the string "9361"."""

    def orch(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        return (yield context.wait_for_external_event("Go"))

    run = SdkReplayDouble(orch)
    run.episode()
    result = run.episode(Message(Kind.EVENT_RAISED, {"Name": "Go", "Input": json.dumps("9361")}))
    assert result.output == "9361"


def test_terminate_suspend_and_resume_run_no_orchestrator_code() -> None:
    """Control messages become ExecutionTerminated/Suspended/Resumed with the reason."""
    instance = ep.Instance("i", "e", "orch", None)
    state = EngineState(history_count=3)
    for kind, status, event in (
        (Kind.SUSPEND, S.Suspended, T.EXECUTION_SUSPENDED),
        (Kind.RESUME, S.Running, T.EXECUTION_RESUMED),
        (Kind.TERMINATE, S.Terminated, T.EXECUTION_TERMINATED),
    ):
        result = ep.control_episode(instance, state, [Message(kind, {"Reason": "why"})], S.Running, T0)
        assert result.status is status
        assert [e["EventType"] for e in result.events] == [
            T.ORCHESTRATOR_STARTED,
            event,
            T.ORCHESTRATOR_COMPLETED,
        ]
        assert result.output == "why"


def test_history_rows_use_durabletask_types_and_shapes() -> None:
    """FireAt is a DateTime, ParentInstance is DurableTask's ParentInstance JSON, Tags "null"."""
    timer = h.event(T.TIMER_CREATED, T0, 3, FireAt=h.ts(T0 + timedelta(hours=1)))
    row = h.to_row("p", "e", 5, timer)
    assert row["RowKey"] == "0000000000000005"
    assert row["EventType"] == "TimerCreated"
    assert row["FireAt"] == T0 + timedelta(hours=1)
    assert row["_Timestamp"] == T0
    assert h.from_row(row)["FireAt"] == timer["FireAt"]
    parent = {"instanceId": "par", "executionId": "pe", "taskId": 4, "name": "parent"}
    started = ep.execution_started(ep.Instance("c", "ce", "child", None, parent=parent), T0)
    srow = h.to_row("c", "ce", 0, started)
    assert json.loads(srow["ParentInstance"]) == {
        "Name": "parent",
        "Version": "",
        "OrchestrationInstance": {"InstanceId": "par", "ExecutionId": "pe"},
        "TaskScheduleId": 4,
    }
    assert srow["Tags"] == "null"
    assert json.loads(srow["OrchestrationInstance"]) == {"InstanceId": "c", "ExecutionId": "ce"}
    root = h.to_row("r", "re", 0, ep.execution_started(ep.Instance("r", "re", "root", None), T0))
    assert root["ParentInstance"] == "null"


def test_show_history_drops_orchestrator_events_and_folds_scheduling_into_results() -> None:
    """The extension's DurableClient shapes historyEvents this way."""
    events = [
        h.event(T.ORCHESTRATOR_STARTED, T0),
        h.event(T.EXECUTION_STARTED, T0, Name="orch", Input='"in"', Version="", OrchestrationInstance={}),
        h.event(T.TASK_SCHEDULED, T0, 0, Name="shout", Input='"a"'),
        h.event(T.ORCHESTRATOR_COMPLETED, T0),
        h.event(T.ORCHESTRATOR_STARTED, T0 + timedelta(seconds=1)),
        h.event(T.TASK_COMPLETED, T0 + timedelta(seconds=1), TaskScheduledId=0, Result='"A"'),
        h.event(
            T.EXECUTION_COMPLETED, T0 + timedelta(seconds=1), OrchestrationStatus="Completed", Result='["A"]'
        ),
        h.event(T.ORCHESTRATOR_COMPLETED, T0 + timedelta(seconds=1)),
    ]
    shown = h.for_status(events, show_output=True, show_input=True)
    assert [e["EventType"] for e in shown] == ["ExecutionStarted", "TaskCompleted", "ExecutionCompleted"]
    assert shown[0]["FunctionName"] == "orch"
    assert shown[1]["FunctionName"] == "shout"
    assert shown[1]["ScheduledTime"] == "2026-12-01T09:00:00.000Z"
    assert shown[1]["Result"] == "A"
    assert "TaskScheduledId" not in shown[1] and "EventId" not in shown[1]
    assert shown[2]["Result"] == ["A"]
    hidden = h.for_status(events, show_output=False, show_input=False)
    assert "Result" not in hidden[1] and "Input" not in hidden[0]


def test_instance_ids_are_escaped_as_key_sanitation_does() -> None:
    """/ \\ # ? and control characters are escaped with ^ and come back unchanged."""
    raw = "a/b\\c#d?e^f\x01g"
    assert escape_key(raw) == "a^0b^1c^2d^3e^^f^" + chr(ord("À") + 1) + "g"
    assert unescape_key(escape_key(raw)) == raw


def test_failed_sub_orchestration_with_retry_starts_again_after_the_interval() -> None:
    """call_sub_orchestrator_with_retry: the child is created again, and the last failure waits no further."""
    retry = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=2)

    def orch(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        try:
            return (yield context.call_sub_orchestrator_with_retry("child", retry, 1))
        except Exception:
            return "gave up"

    def child_failed(task_id: int) -> Message:
        return Message(Kind.SUB_FAILED, {"TaskScheduledId": task_id, "Reason": "no", "Details": "no"})

    run = SdkReplayDouble(orch, execution_id="e1")
    assert run.episode().work == [StartChild(0, "child", "e1:0", "1")]
    assert run.episode(child_failed(0)).work == [ArmTimer(1, T0 + timedelta(seconds=1))]
    run.now = T0 + timedelta(seconds=1)
    assert run.episode(fired(1, run.now)).work == [StartChild(2, "child", "e1:2", "1")]
    assert run.episode(child_failed(2)).work == [ArmTimer(3, run.now)]
    done = run.episode(fired(3, run.now))
    assert (done.status, done.output) == (S.Completed, "gave up")
