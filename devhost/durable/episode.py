"""One episode, pure: the orchestrator's answer and the messages it saw become history and work.

Nothing here does I/O. ``Engine`` (the shell) takes a batch of messages, builds the context with
``context_json``, has the worker run the orchestrator once, hands the answer to ``decide`` and
commits the ``Episode`` it returns. The rules below follow DurableTask.Core's dispatcher and the
Durable extension's out-of-process shim (paths in the Azure/durabletask and
Azure/azure-functions-durable-extension repositories):

- Event order in an episode (``src/DurableTask.Core/TaskOrchestrationDispatcher.cs``):
  OrchestratorStarted, [ExecutionStarted], the new messages' events, the events of the new
  actions, [ExecutionCompleted], and OrchestratorCompleted last.
- Non-determinism (``src/DurableTask.Core/TaskOrchestrationContext.cs``, HandleTaskScheduledEvent,
  HandleTimerCreatedEvent, HandleSubOrchestrationCreatedEvent): each TaskScheduled, TimerCreated
  and SubOrchestrationInstanceCreated in the history must be matched, by sequence number, by an
  action of the same kind (and the same name, ignoring case) in the replay; otherwise the
  orchestration fails with ``NonDeterministicOrchestrationException``.
- Custom status (``src/WebJobs.Extensions.DurableTask/ContextImplementations/DurableOrchestrationContext.cs``
  SetCustomStatus and ``MessagePayloadDataConverter.cs``): at most 16 KB of UTF-16; more fails the
  orchestrator function with the converter's ArgumentException message.
- Failures (``Listener/TaskOrchestrationShim.cs``, ``Listener/OutOfProcOrchestrationShim.cs``):
  "Orchestrator function '<name>' failed: <message>", as plain text in the ExecutionCompleted
  Result and the instance's Output.
- Retries (``src/DurableTask.Core/RetryInterceptor.cs``): after a failed attempt a timer of
  ``firstRetryInterval * backoff^(attempt-1)`` (capped by maxRetryInterval), then the next attempt;
  after the last failed attempt a "dummy timer for back-compat" that fires at once, then the
  failure reaches the orchestrator. The Python SDK mirrors these timers with NoOp tasks that take
  sequence numbers while it replays the failure or timer event.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.durable_functions.models.actions.ActionType import ActionType as A
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType as T
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus as S
from azure.durable_functions.models.utils.df_serialization import df_dumps

from . import history as h
from .model import ArmTimer, EngineState, Kind, Message, RunActivity, StartChild, Work

# The V3 replay schema with the Azure Storage provider's timer limits: the SDK splits longer
# timers itself (LongTimerTask), as it does on Azure.
SCHEMA_V2, SCHEMA_V3 = 1, 2
MAX_SHORT_TIMER = "6.00:00:00"
LONG_TIMER_INTERVAL = "3.00:00:00"
MAX_CUSTOM_STATUS_KB = 16
OUT_OF_PROC_MARK = "\n\n$OutOfProcData$:"

COMPOUND = frozenset({A.WHEN_ANY, A.WHEN_ALL})
ACTIVITY = frozenset({A.CALL_ACTIVITY, A.CALL_ACTIVITY_WITH_RETRY})
SUB_ORCHESTRATOR = frozenset({A.CALL_SUB_ORCHESTRATOR, A.CALL_SUB_ORCHESTRATOR_WITH_RETRY})
# What the devhost does not run: refused when the app loads, failed here if one arrives anyway.
UNSUPPORTED = {
    A.CALL_ENTITY: "call_entity",
    A.SIGNAL_ENTITY: "signal_entity",
    A.CALL_HTTP: "call_http",
}


@dataclass(frozen=True)
class Instance:
    """What an episode needs to know of its instance."""

    instance_id: str
    execution_id: str
    name: str
    input: str | None
    parent: dict[str, Any] | None = None
    custom_status: str | None = None
    generation: int = 0


@dataclass
class Episode:
    batch: list[Message]
    events: list[h.Event]
    state: EngineState
    status: S
    output: Any = None
    custom_status: str | None = None  # JSON text, as the instance row holds it
    error: str | None = None
    can_input: str | None = None
    work: list[Work] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    instance_execution: str = ""  # the execution id, for ids the engine makes up

    @property
    def continue_as_new(self) -> bool:
        return self.status is S.ContinuedAsNew


def execution_started(instance: Instance, now: datetime) -> h.Event:
    """ExecutionStarted as DurableTask.Core/History/ExecutionStartedEvent.cs carries it."""
    parent = instance.parent
    parent_instance = None
    if parent:
        # DurableTask.Core/ParentInstance.cs: Name, Version, OrchestrationInstance, TaskScheduleId.
        parent_instance = {
            "Name": parent.get("name"),
            "Version": "",
            "OrchestrationInstance": {
                "InstanceId": parent["instanceId"],
                "ExecutionId": parent["executionId"],
            },
            "TaskScheduleId": parent["taskId"],
        }
    return h.event(
        T.EXECUTION_STARTED,
        now,
        Name=instance.name,
        Version="",
        Input=instance.input,
        OrchestrationInstance={"InstanceId": instance.instance_id, "ExecutionId": instance.execution_id},
        ParentInstance=parent_instance,
        Tags=None,
        Generation=instance.generation,
    )


def opening(instance: Instance, state: EngineState, batch: list[Message], now: datetime) -> list[h.Event]:
    """The episode's first events: OrchestratorStarted, ExecutionStarted once, the messages."""
    events = [h.event(T.ORCHESTRATOR_STARTED, now)]
    if state.history_count == 0:
        events.append(execution_started(instance, now))
    events += [m.to_event(now) for m in batch if m.kind not in (Kind.SUSPEND, Kind.RESUME)]
    return events


def _input_token(text: str | None) -> Any:
    """``GetInputAsJson``: the stored input as a JSON value (the SDK decodes a string once more)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def context_json(instance: Instance, history: list[h.Event], events: list[h.Event]) -> str:
    """What the extension sends an out-of-process orchestrator
    (``Bindings/OrchestrationTriggerAttributeBindingProvider.cs`` OrchestrationContextToString)."""
    context = {
        "history": [h.for_sdk(ev, played=True) for ev in history]
        + [h.for_sdk(ev, played=False) for ev in events],
        "instanceId": instance.instance_id,
        "isReplaying": bool(history),
        "parentInstanceId": (instance.parent or {}).get("instanceId"),
        "input": _input_token(instance.input),
        "upperSchemaVersion": SCHEMA_V2,
        "upperSchemaVersionNew": SCHEMA_V3,
        "maximumShortTimerDuration": MAX_SHORT_TIMER,
        "longRunningTimerIntervalDuration": LONG_TIMER_INTERVAL,
    }
    return json.dumps(context)


def split_failure(text: str) -> tuple[str, dict[str, Any]]:
    """The worker's failure text: the message and, after the SDK's mark, the orchestrator's state."""
    message, _, data = text.partition(OUT_OF_PROC_MARK)
    return message, (json.loads(data) if data else {})


def failure_text(name: str, message: str) -> str:
    return f"Orchestrator function '{name}' failed: {message}"


def custom_status_error(text: str | None) -> str | None:
    """``MessagePayloadDataConverter.Serialize(value, 16)``: integer KB of UTF-16, truncated."""
    if text is None:
        return None
    size_kb = int(len(text.encode("utf-16-le")) / 1024.0)
    if size_kb > MAX_CUSTOM_STATUS_KB:
        return (
            f"The UTF-16 size of the JSON-serialized payload must not exceed {MAX_CUSTOM_STATUS_KB:,} KB. "
            f"The current payload size is {size_kb:,} KB."
        )
    return None


def decide(
    instance: Instance,
    history: list[h.Event],
    state: EngineState,
    batch: list[Message],
    events: list[h.Event],
    answer: dict[str, Any],
    error: str | None,
    now: datetime,
) -> Episode:
    """The episode that the orchestrator's ``answer`` (or its failure ``error``) makes of ``events``."""
    state = copy.deepcopy(state)
    events = list(events)
    raw_status = answer.get("customStatus")
    custom = json.dumps(raw_status) if raw_status is not None else instance.custom_status
    episode = Episode(batch, events, state, S.Running, custom_status=custom)
    episode.instance_execution = instance.execution_id
    retry_bookkeeping(episode, now)
    if (too_big := custom_status_error(custom)) is not None:
        episode.custom_status = instance.custom_status
        return fail(instance, episode, failure_text(instance.name, too_big), now)
    if error is not None:
        return fail(instance, episode, failure_text(instance.name, error), now)
    actions = answer.get("actions") or [[]]
    flat: list[dict[str, Any]] = [a for group in actions for a in group]
    mismatch = nondeterminism(history + events, state, leaves(flat), bool(answer.get("isDone")))
    if mismatch is not None:
        return fail(instance, episode, mismatch, now)
    for action in flat[state.actions :]:
        problem = schedule(instance, episode, action, now)
        if problem is not None:
            return fail(instance, episode, failure_text(instance.name, problem), now)
    state.actions = len(flat)
    collect_cancelled(episode, flat)
    if answer.get("isDone") and not episode.continue_as_new:
        episode.status, episode.output = S.Completed, answer.get("output")
        episode.events.append(
            h.event(
                T.EXECUTION_COMPLETED,
                now,
                OrchestrationStatus=S.Completed.value,
                Result=df_dumps(episode.output),
            )
        )
    elif episode.continue_as_new:
        episode.events.append(
            h.event(
                T.EXECUTION_COMPLETED,
                now,
                OrchestrationStatus=S.ContinuedAsNew.value,
                Result=episode.can_input,
            )
        )
    episode.events.append(h.event(T.ORCHESTRATOR_COMPLETED, now))
    return episode


def fail(instance: Instance, episode: Episode, message: str, now: datetime) -> Episode:
    """Fail the execution: no work, ExecutionCompleted(Failed) with the message as plain text."""
    episode.status, episode.error, episode.work = S.Failed, message, []
    episode.events.append(
        h.event(T.EXECUTION_COMPLETED, now, OrchestrationStatus=S.Failed.value, Result=message)
    )
    episode.events.append(h.event(T.ORCHESTRATOR_COMPLETED, now))
    return episode


def control_episode(
    instance: Instance, state: EngineState, batch: list[Message], current: S, now: datetime
) -> Episode:
    """Terminate, suspend or resume: no orchestrator code runs (DurableTask's dispatcher handles
    ExecutionTerminated/Suspended/Resumed itself)."""
    msg = batch[0]
    reason = msg.body.get("Reason")
    events = [h.event(T.ORCHESTRATOR_STARTED, now)]
    if state.history_count == 0:
        events.append(execution_started(instance, now))
    episode = Episode(batch, events, copy.deepcopy(state), current, custom_status=instance.custom_status)
    if msg.kind is Kind.TERMINATE:
        episode.status, episode.output = S.Terminated, reason
        events.append(h.event(T.EXECUTION_TERMINATED, now, Input=reason))
    elif msg.kind is Kind.SUSPEND:
        episode.status, episode.output = S.Suspended, reason
        events.append(h.event(T.EXECUTION_SUSPENDED, now, Reason=reason))
    else:
        episode.status, episode.output = S.Running, reason
        events.append(h.event(T.EXECUTION_RESUMED, now, Reason=reason))
    events.append(h.event(T.ORCHESTRATOR_COMPLETED, now))
    return episode


def changes_nothing(msg: Message, current: S) -> bool:
    """A resume of an instance that is not suspended, or a suspend of one that is."""
    suspended = current is S.Suspended
    return (msg.kind is Kind.RESUME and not suspended) or (msg.kind is Kind.SUSPEND and suspended)


# -- retries ---------------------------------------------------------------------------------
def retry_bookkeeping(episode: Episode, now: datetime) -> None:
    state = episode.state
    for msg in episode.batch:
        if msg.kind in (Kind.TASK_COMPLETED, Kind.TASK_FAILED, Kind.SUB_COMPLETED, Kind.SUB_FAILED):
            key = str(msg.body["TaskScheduledId"])
            rec = state.retries.get(key)
            if rec is None or rec["phase"] != "task":
                continue
            del state.retries[key]
            if msg.kind in (Kind.TASK_FAILED, Kind.SUB_FAILED):
                if rec["attempt"] >= rec["max"]:
                    delay_ms = 0.0  # RetryInterceptor's back-compat timer: it fires at once
                else:
                    delay_ms = rec["interval"] * rec.get("backoff", 1.0) ** (rec["attempt"] - 1)
                    if rec.get("maxInterval"):
                        delay_ms = min(delay_ms, float(rec["maxInterval"]))
                timer_id = state.next_seq()
                fire_at = now + timedelta(milliseconds=delay_ms)
                state.retries[str(timer_id)] = dict(rec, phase="timer")
                episode.events.append(h.event(T.TIMER_CREATED, now, timer_id, FireAt=h.ts(fire_at)))
                episode.work.append(ArmTimer(timer_id, fire_at))
        elif msg.kind is Kind.TIMER_FIRED:
            rec = state.retries.pop(str(msg.body["TimerId"]), None)
            if rec is None or rec["attempt"] >= rec["max"]:
                continue
            task_id = state.next_seq()
            state.retries[str(task_id)] = dict(rec, phase="task", attempt=rec["attempt"] + 1)
            if rec.get("child") is None:
                episode.events.append(
                    h.event(T.TASK_SCHEDULED, now, task_id, Name=rec["name"], Input=rec["input"])
                )
                episode.work.append(RunActivity(task_id, rec["name"], rec["input"]))
                continue
            # The retried call creates the sub-orchestration again: the caller's id, or a new
            # "<execution id>:<sequence number>".
            child_id = rec["child"] or f"{episode.instance_execution}:{task_id}"
            episode.events.append(
                h.event(
                    T.SUB_ORCHESTRATION_INSTANCE_CREATED,
                    now,
                    task_id,
                    Name=rec["name"],
                    Input=rec["input"],
                    InstanceId=child_id,
                )
            )
            episode.work.append(StartChild(task_id, rec["name"], child_id, rec["input"]))


def drives_retry(state: EngineState, msg: Message) -> bool:
    """A failure or timer that moves a retry on (it must be alone in its episode, see above)."""
    if msg.kind in (Kind.TASK_FAILED, Kind.SUB_FAILED):
        rec = state.retries.get(str(msg.body["TaskScheduledId"]))
        return rec is not None and rec["phase"] == "task"
    if msg.kind is Kind.TIMER_FIRED:
        rec = state.retries.get(str(msg.body["TimerId"]))
        return rec is not None and rec["phase"] == "timer"
    return False


# -- actions ---------------------------------------------------------------------------------
def action_type(action: dict[str, Any]) -> A | None:
    try:
        return A(int(action.get("actionType", -1)))
    except ValueError:
        return None


def leaves(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for action in actions:
        if action_type(action) in COMPOUND:
            out += leaves(action.get("compoundActions", []))
        else:
            out.append(action)
    return out


def _sub_instance_id(instance: Instance, action: dict[str, Any], seq: int) -> str:
    # DurableTask.Core/TaskOrchestrationContext.cs CreateSubOrchestrationInstanceCore: without an
    # id, the child is "<parent execution id>:<sequence number>".
    return action.get("instanceId") or f"{instance.execution_id}:{seq}"


def schedule(instance: Instance, episode: Episode, action: dict[str, Any], now: datetime) -> str | None:
    """Turn one new top-level action into history and work; a message if it cannot be run."""
    state, kind = episode.state, action_type(action)
    if kind in COMPOUND:
        for child in action.get("compoundActions", []):
            problem = schedule(instance, episode, child, now)
            if problem is not None:
                return problem
        return None
    if kind is A.WAIT_FOR_EXTERNAL_EVENT:  # no sequence number, nothing to do
        state.leaf_ids.append(None)
        return None
    if kind is A.CONTINUE_AS_NEW:  # the SDK counts a sequence number for it
        state.leaf_ids.append(state.next_seq())
        episode.status, episode.can_input = S.ContinuedAsNew, action.get("input")
        return None
    if kind is None or kind in UNSUPPORTED:
        what = (
            UNSUPPORTED.get(kind, f"action type {action.get('actionType')}") if kind else "an unknown action"
        )
        return f"{what} is not supported by the devhost's durable engine."
    seq = state.next_seq()
    state.leaf_ids.append(seq)
    if kind in ACTIVITY:
        name, inp = action["functionName"], action.get("input")
        episode.events.append(h.event(T.TASK_SCHEDULED, now, seq, Name=name, Input=inp))
        episode.work.append(RunActivity(seq, name, inp))
        if kind is A.CALL_ACTIVITY_WITH_RETRY:
            state.retries[str(seq)] = _retry_record(action, name, inp, child=None)
    elif kind is A.CREATE_TIMER:
        fire_at = datetime.fromisoformat(action["fireAt"].replace("Z", "+00:00"))
        if fire_at.tzinfo is None:
            fire_at = fire_at.replace(tzinfo=UTC)
        episode.events.append(h.event(T.TIMER_CREATED, now, seq, FireAt=h.ts(fire_at)))
        if not action.get("isCanceled"):
            episode.work.append(ArmTimer(seq, fire_at))
    elif kind in SUB_ORCHESTRATOR:
        child_id = _sub_instance_id(instance, action, seq)
        name, inp = action["functionName"], action.get("input")
        episode.events.append(
            h.event(T.SUB_ORCHESTRATION_INSTANCE_CREATED, now, seq, Name=name, Input=inp, InstanceId=child_id)
        )
        episode.work.append(StartChild(seq, name, child_id, inp))
        if kind is A.CALL_SUB_ORCHESTRATOR_WITH_RETRY:
            state.retries[str(seq)] = _retry_record(action, name, inp, child=action.get("instanceId") or "")
    return None


def _retry_record(action: dict[str, Any], name: str, inp: str | None, child: str | None) -> dict[str, Any]:
    """What a retry needs to know (RetryOptions as the SDK sends them); ``child`` is None for an
    activity, else the caller's sub-orchestration id ("" when it chose none)."""
    opts = action.get("retryOptions", {})
    return {
        "phase": "task",
        "name": name,
        "input": inp,
        "child": child,
        "attempt": 1,
        "max": int(opts.get("maxNumberOfAttempts", 1)),
        "interval": float(opts.get("firstRetryIntervalInMilliseconds", 1000)),
        "backoff": float(opts.get("backoffCoefficient", 1.0)),
        "maxInterval": opts.get("maxRetryIntervalInMilliseconds"),
    }


def collect_cancelled(episode: Episode, flat: list[dict[str, Any]]) -> None:
    """Timers the orchestrator cancelled (``timer.cancel()`` after ``task_any``) never fire."""
    ids = episode.state.leaf_ids
    cancelled = set(episode.state.cancelled)
    for index, leaf in enumerate(leaves(flat)):
        if action_type(leaf) is A.CREATE_TIMER and leaf.get("isCanceled") and index < len(ids):
            seq = ids[index]
            if seq is not None and seq not in cancelled:
                cancelled.add(seq)
                episode.cancelled.append(seq)
    episode.state.cancelled = sorted(cancelled)


# -- non-determinism -------------------------------------------------------------------------
_RECORDED = {
    T.TASK_SCHEDULED: "activity",
    T.TIMER_CREATED: "timer",
    T.SUB_ORCHESTRATION_INSTANCE_CREATED: "sub-orchestration",
}


def _kind_of(action: dict[str, Any]) -> str:
    kind = action_type(action)
    if kind in ACTIVITY:
        return "activity"
    if kind is A.CREATE_TIMER:
        return "timer"
    if kind in SUB_ORCHESTRATOR:
        return "sub-orchestration"
    return str(kind.name if kind is not None else action.get("actionType"))


def nondeterminism(
    history: list[h.Event], state: EngineState, replayed: list[dict[str, Any]], done: bool
) -> str | None:
    """DurableTask's check: every scheduled event of the history is matched by the replay."""
    recorded = {
        int(ev["EventId"]): ev
        for ev in history
        if ev["EventType"] in _RECORDED and ev.get("EventId", -1) >= 0
    }
    for index, seq in enumerate(state.leaf_ids):
        if seq is None or seq not in recorded:
            continue  # an external-event wait or ContinueAsNew: nothing in the history to match
        ev = recorded[seq]
        what, name = _RECORDED[ev["EventType"]], ev.get("Name")
        if index >= len(replayed):
            if what == "timer":
                detail = (
                    "A previous execution of this orchestration scheduled a timer task with sequence "
                    f"number {seq} but the current replay execution hasn't (yet?) scheduled this task."
                )
            else:
                detail = (
                    f"A previous execution of this orchestration scheduled an {what} task with sequence "
                    f"ID {seq} and name '{name}' (version ''), but the current replay execution hasn't "
                    "(yet?) scheduled this task."
                )
            return f"Non-Deterministic workflow detected: {detail} {_CHANGED}"
        action = replayed[index]
        produced = _kind_of(action)
        if produced != what:
            return (
                f"Non-Deterministic workflow detected: A previous execution of this orchestration scheduled "
                f"an {what} task with sequence number {seq} named '{name}', but the current orchestration "
                f"replay instead produced a {produced} action with this sequence number. {_CHANGED}"
            )
        replay_name = action.get("functionName")
        if what != "timer" and str(replay_name).lower() != str(name).lower():
            return (
                f"Non-Deterministic workflow detected: A previous execution of this orchestration scheduled "
                f"an {what} task with sequence number {seq} named '{name}', but the current orchestration "
                f"replay instead scheduled an {what} task named '{replay_name}' with this sequence number. "
                f"{_CHANGED}"
            )
    return None


_CHANGED = "Was a change made to the orchestrator code after this instance had already started running?"
