"""The durable engine: the host side of the out-of-process replay protocol, over Azure Tables.

Each instance has at most one *pump* (an asyncio task) that runs its episodes one after another:
take a batch of persisted messages, append them to the history as new events, call the app's
``Orchestrator.handle`` on the whole history, turn the actions it returns that are new since the
last episode into history events and work (activities, timers, sub-orchestrations), then commit.

Commit order (crash safety): history rows first (upserts, harmless if the episode is redone),
then the instance row with an If-Match ETag - that write is the commit point, it carries the
committed history length and the ids of the messages the episode consumed - then the consumed
messages are deleted, and only then is work dispatched. A crash before the commit redoes the
episode from the same persisted messages; a crash after it finds the consumed message ids in the
instance row and deletes them. Activities and timers are derived from the history on restart
(TaskScheduled without a result, TimerCreated without TimerFired), so they run again (at least
once, as on Azure) and an already-recorded result is never recorded twice.

Sequence numbers: the SDK numbers activities, timers and sub-orchestrations in the order it
yields them (its actions list is in that order), and the host numbers them the same way. Retries
(``call_activity_with_retry``) are driven by the host, as DTFx's RetryInterceptor does: after a
failed attempt it creates a timer, after the timer the next attempt, and after the last failed
attempt one more timer before the failure reaches the orchestrator. The SDK mirrors this with
NoOp tasks that take sequence numbers *while it replays the failure or timer event*, so an event
that drives a retry is always delivered first in its episode (and alone among such events).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType as T
from azure.durable_functions.models.utils.df_serialization import df_dumps

from ..clock import Clock, ClockMode
from . import history as h
from .registry import FunctionFailed, FunctionRunner
from .store import Entity, TaskHubStore
from .timers import TimerService

log = logging.getLogger("devhost.durable")

# The SDK warns when an event arrives for a task nobody waits for yet (an external event raised
# before the orchestrator asks for it): it buffers it, which is the intended behaviour here.
warnings.filterwarnings("ignore", message="Potential duplicate Task completion")

TERMINAL = frozenset({"Completed", "Failed", "Terminated", "Canceled"})
ACTIVE = ("Pending", "Running", "ContinuedAsNew")
OUT_OF_PROC_MARK = "\n\n$OutOfProcData$:"
# The V3 replay schema with the Azure Storage provider's timer limits: the SDK splits longer
# timers itself (LongTimerTask), as it does on Azure.
SCHEMA_V2, SCHEMA_V3 = 1, 2
MAX_SHORT_TIMER = "6.00:00:00"
LONG_TIMER_INTERVAL = "3.00:00:00"
MAX_BATCH_MESSAGES = 200


class EngineError(Exception):
    """Base of the errors the management API maps to HTTP answers."""


class InstanceNotFound(EngineError):
    pass


class InstanceConflict(EngineError):
    pass


class InstanceGone(EngineError):
    pass


class UnknownOrchestrator(EngineError):
    pass


def utcnow_ms(clock: Clock) -> datetime:
    now = clock.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _json_or_none(text: Any) -> Any:
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


@dataclass
class Message:
    """A persisted message for one instance (``row_key`` None: a timer firing, derived)."""

    kind: str
    body: dict[str, Any]
    execution_id: str | None = None
    row_key: str | None = None
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_entity(self, instance_id: str) -> Entity:
        return {
            "PartitionKey": instance_id,
            "RowKey": self.row_key,
            "Kind": self.kind,
            "Body": json.dumps(self.body),
            "ExecutionId": self.execution_id,
            "MessageId": self.message_id,
        }

    @classmethod
    def from_entity(cls, row: Entity) -> Message:
        return cls(
            kind=row["Kind"],
            body=json.loads(row["Body"]),
            execution_id=row.get("ExecutionId"),
            row_key=row["RowKey"],
            message_id=row.get("MessageId", row["RowKey"]),
        )

    def to_event(self, when: datetime) -> h.Event:
        kinds = {
            "EventRaised": T.EVENT_RAISED,
            "TaskCompleted": T.TASK_COMPLETED,
            "TaskFailed": T.TASK_FAILED,
            "TimerFired": T.TIMER_FIRED,
            "SubOrchestrationInstanceCompleted": T.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
            "SubOrchestrationInstanceFailed": T.SUB_ORCHESTRATION_INSTANCE_FAILED,
        }
        return h.event(kinds[self.kind], when, MessageId=self.message_id, **self.body)


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
    parent: dict[str, Any] | None = None  # {"instanceId", "executionId", "taskId"}

    @classmethod
    def loads(cls, text: str | None) -> EngineState:
        return cls(**json.loads(text)) if text else cls()

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass
class Runtime:
    """An instance that is not finished, as the engine holds it in memory."""

    instance_id: str
    row: Entity
    etag: str
    state: EngineState
    history: list[h.Event]
    inbox: list[Message] = field(default_factory=list)
    pump: asyncio.Task[None] | None = None
    armed: set[int] = field(default_factory=set)
    done_ids: set[int] = field(default_factory=set)  # tasks, timers, sub-orchestrations with a result
    gone: bool = False

    @property
    def execution_id(self) -> str:
        return str(self.row["ExecutionId"])


@dataclass
class Episode:
    batch: list[Message]
    events: list[h.Event]
    state: EngineState
    status: str
    output: Any = None
    custom_status: Any = None
    error: str | None = None
    continue_as_new: bool = False
    can_input: str | None = None
    work: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)


class Engine:
    """Runs the app's orchestrations and activities; the management API calls its methods."""

    def __init__(
        self, store: TaskHubStore, registry: FunctionRunner, clock: Clock, *, activity_threads: int = 16
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.runtimes: dict[str, Runtime] = {}
        self._pool = ThreadPoolExecutor(max_workers=activity_threads, thread_name_prefix="activity")
        self._episode_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="episode")
        self._busy = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._load_lock = asyncio.Lock()
        self.timers = TimerService(clock, self._timer_fired)
        self._row_counter = 0
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self.store.open()
        self.timers.start()
        status_filter = " or ".join(f"RuntimeStatus eq '{s}'" for s in ACTIVE)
        async for row in self.store.all_instances(status_filter):
            rt = await self._load(row)
            if rt is not None:
                log.info("resumed %s (%s)", rt.instance_id, rt.row.get("Name"))

    async def stop(self) -> None:
        self._closed = True
        await self.timers.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._episode_pool.shutdown(wait=False, cancel_futures=True)
        await self.store.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        self._busy += 1
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._busy -= 1
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("engine task failed", exc_info=t.exception())

        task.add_done_callback(done)
        return task

    def is_busy(self) -> bool:
        return self._busy > 0 or self.timers.has_due()

    async def wait_idle(self, limit: float = 30.0) -> bool:
        """Wait until no episode, activity or due timer is left (``False`` after ``limit`` s)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        quiet = 0
        while loop.time() < deadline:
            # Two quiet looks in a row: a finishing task may hand work on via call_soon.
            quiet = quiet + 1 if not self.is_busy() else 0
            if quiet >= 2:
                return True
            await asyncio.sleep(0.005)
        return False

    def _next_row_key(self) -> str:
        self._row_counter = (self._row_counter + 1) % 1_000_000
        return f"{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}{self._row_counter:06d}"

    # -- loading ---------------------------------------------------------------------------
    async def _load(self, row: Entity) -> Runtime | None:
        # One loader at a time: two deliveries to an unloaded instance must not load it twice.
        async with self._load_lock:
            if row["PartitionKey"] in self.runtimes:
                return self.runtimes[row["PartitionKey"]]
            fresh = await self.store.get_instance(row["PartitionKey"])
            if fresh is None or fresh.get("RuntimeStatus") in TERMINAL:
                return None
            return await self._load_locked(fresh)

    async def _load_locked(self, row: Entity) -> Runtime:
        instance_id = row["PartitionKey"]
        state = EngineState.loads(row.get("DevhostState"))
        execution_id = row["ExecutionId"]
        rows = await self.store.read_history(instance_id)
        stale = [
            r
            for r in rows
            if r.get("ExecutionId") != execution_id or int(r["RowKey"], 16) >= state.history_count
        ]
        events = [h.from_row(r) for r in rows if r not in stale]
        if stale:
            # Leftovers of an episode that crashed before its commit, or of a finished execution.
            await self.store.delete_rows(self.store.history, stale)
        rt = Runtime(instance_id, row, str(row["etag"]), state, events)
        self._index_history(rt, events)
        # Messages an episode already applied: listed by the last commit, or named in the history
        # (a message whose deletion was still under way when the host died).
        consumed = set(state.consumed)
        applied = {ev["MessageId"] for ev in events if "MessageId" in ev}
        leftovers = []
        for mrow in await self.store.read_messages(instance_id):
            if mrow["RowKey"] in consumed or mrow.get("MessageId") in applied:
                leftovers.append(mrow["RowKey"])
                continue
            rt.inbox.append(Message.from_entity(mrow))
        if leftovers:
            await self.store.delete_messages(instance_id, leftovers)
        self.runtimes[instance_id] = rt
        await self._resume_work(rt)
        self._kick(rt)
        return rt

    def _index_history(self, rt: Runtime, events: list[h.Event]) -> None:
        for ev in events:
            kind = ev["EventType"]
            if kind in (
                T.TASK_COMPLETED,
                T.TASK_FAILED,
                T.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
                T.SUB_ORCHESTRATION_INSTANCE_FAILED,
            ):
                rt.done_ids.add(int(ev["TaskScheduledId"]))
            elif kind == T.TIMER_FIRED:
                rt.done_ids.add(int(ev["TimerId"]))

    async def _resume_work(self, rt: Runtime) -> None:
        """After a restart: run again what was scheduled and has no result yet, re-arm timers."""
        pending_results = {int(m.body["TaskScheduledId"]) for m in rt.inbox if "TaskScheduledId" in m.body}
        cancelled = set(rt.state.cancelled)
        for ev in rt.history:
            kind, eid = ev["EventType"], ev.get("EventId", -1)
            if eid in rt.done_ids or eid in pending_results:
                continue
            if kind == T.TASK_SCHEDULED:
                self._dispatch_activity(rt, eid, ev["Name"], ev.get("Input"))
            elif kind == T.TIMER_CREATED and eid not in cancelled:
                self._arm(rt, eid, h.parse_ts(ev["FireAt"]))
            elif kind == T.SUB_ORCHESTRATION_INSTANCE_CREATED:
                await self._ensure_child(rt, eid, ev)

    # -- management operations -------------------------------------------------------------
    async def start_new(
        self, name: str, instance_id: str | None, input_json: str | None, parent: dict[str, Any] | None = None
    ) -> Entity:
        canonical = self.registry.canonical(name)
        if canonical is None or canonical not in self.registry.orchestrators:
            raise UnknownOrchestrator(
                f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator function."
            )
        name = canonical
        instance_id = instance_id or uuid.uuid4().hex
        now = utcnow_ms(self.clock)
        existing = await self.store.get_instance(instance_id)
        if existing is not None and existing.get("RuntimeStatus") not in TERMINAL:
            raise InstanceConflict(f"An instance with ID '{instance_id}' already exists.")
        state = EngineState(parent=parent)
        row: Entity = {
            "PartitionKey": instance_id,
            "RowKey": "",
            "Name": name,
            "Version": "",
            "Input": input_json,
            "RuntimeStatus": "Pending",
            "CreatedTime": now,
            "LastUpdatedTime": now,
            "ExecutionId": uuid.uuid4().hex,
            "DevhostState": state.dumps(),
            "ParentInstanceId": parent["instanceId"] if parent else None,
        }
        try:
            if existing is None:
                etag = await self.store.create_instance(row)
            else:
                # Restarting a finished instance: its old history and messages go first.
                await self.store.delete_partition(self.store.history, instance_id)
                await self.store.delete_partition(self.store.messages, instance_id)
                etag = await self.store.replace_instance(row, str(existing["etag"]))
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise InstanceConflict(f"An instance with ID '{instance_id}' already exists.") from exc
        rt = Runtime(instance_id, row, etag, state, [])
        self.runtimes[instance_id] = rt
        self._kick(rt)
        return row

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        row = await self._require(instance_id)
        if row["RuntimeStatus"] in TERMINAL:
            raise InstanceGone(f"Instance with ID {instance_id} is gone: either completed or failed")
        await self._deliver(instance_id, Message("EventRaised", {"Name": name, "Input": json.dumps(data)}))

    async def terminate(self, instance_id: str, reason: str) -> None:
        row = await self._require(instance_id)
        if row["RuntimeStatus"] in TERMINAL:
            raise InstanceGone(f"Instance with ID {instance_id} is already finished")
        await self._deliver(instance_id, Message("Terminate", {"Reason": reason}))

    async def _require(self, instance_id: str) -> Entity:
        rt = self.runtimes.get(instance_id)
        if rt is not None and not rt.gone:
            return rt.row
        row = await self.store.get_instance(instance_id)
        if row is None:
            raise InstanceNotFound(f"No instance with ID '{instance_id}' found.")
        return row

    async def get_status(
        self,
        instance_id: str,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = True,
    ) -> dict[str, Any] | None:
        row = await self.store.get_instance(instance_id)
        if row is None:
            return None
        status = self.status_json(row, show_input)
        if show_history:
            rows = await self.store.read_history(instance_id)
            events = [h.from_row(r) for r in rows if r.get("ExecutionId") == row["ExecutionId"]]
            count = EngineState.loads(row.get("DevhostState")).history_count
            status["historyEvents"] = [h.for_status(ev, show_history_output) for ev in events[:count]]
        return status

    @staticmethod
    def status_json(row: Entity, show_input: bool = True) -> dict[str, Any]:
        def iso(value: Any) -> str | None:
            if not isinstance(value, datetime):
                return None
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        return {
            "name": row.get("Name"),
            "instanceId": row["PartitionKey"],
            "runtimeStatus": row.get("RuntimeStatus"),
            "input": _json_or_none(row.get("Input")) if show_input else None,
            "customStatus": _json_or_none(row.get("CustomStatus")),
            "output": _json_or_none(row.get("Output")),
            "createdTime": iso(row.get("CreatedTime")),
            "lastUpdatedTime": iso(row.get("LastUpdatedTime")),
        }

    async def purge(self, instance_id: str) -> int:
        row = await self.store.get_instance(instance_id)
        if row is None:
            return 0
        rt = self.runtimes.pop(instance_id, None)
        if rt is not None:
            rt.gone = True
            self._disarm_all(rt)
        await self.store.delete_partition(self.store.history, instance_id)
        await self.store.delete_partition(self.store.messages, instance_id)
        with contextlib.suppress(Exception):
            await self.store.delete_instance(instance_id)
        return 1

    # -- delivery --------------------------------------------------------------------------
    async def _deliver(self, instance_id: str, msg: Message) -> None:
        """Persist ``msg`` durably, then hand it to the instance (loading it if needed)."""
        msg.row_key = msg.row_key or self._next_row_key()
        await self.store.add_message(msg.to_entity(instance_id))
        rt = self.runtimes.get(instance_id)
        if rt is None:
            row = await self.store.get_instance(instance_id)
            if row is None or row.get("RuntimeStatus") in TERMINAL:
                return
            rt = await self._load(row)  # reads the message we just wrote
            return
        if rt.gone:
            return
        rt.inbox.append(msg)
        self._kick(rt)

    def _kick(self, rt: Runtime) -> None:
        if rt.pump is None and not rt.gone and not self._closed:
            rt.pump = self._spawn(self._pump(rt))

    def _timer_fired(self, instance_id: str, execution_id: str, timer_id: int, fire_at: datetime) -> None:
        rt = self.runtimes.get(instance_id)
        if rt is None or rt.gone or rt.execution_id != execution_id or timer_id not in rt.armed:
            return
        rt.armed.discard(timer_id)
        rt.inbox.append(
            Message("TimerFired", {"TimerId": timer_id, "FireAt": h.ts(fire_at)}, execution_id=execution_id)
        )
        self._kick(rt)

    def _arm(self, rt: Runtime, timer_id: int, fire_at: datetime) -> None:
        rt.armed.add(timer_id)
        self.timers.arm(fire_at, rt.instance_id, rt.execution_id, timer_id)

    def _disarm_all(self, rt: Runtime) -> None:
        rt.armed.clear()

    # -- the pump --------------------------------------------------------------------------
    async def _pump(self, rt: Runtime) -> None:
        try:
            while not rt.gone:
                batch = self._take_batch(rt)
                if not batch and rt.state.history_count > 0:
                    break
                await self._episode(rt, batch)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Storage trouble (or a bug): leave the instance as committed; a restart resumes it.
            log.exception("episode of %s failed; instance left as last committed", rt.instance_id)
        finally:
            rt.pump = None

    def _is_stale(self, rt: Runtime, msg: Message) -> bool:
        if msg.execution_id and msg.execution_id != rt.execution_id:
            return True
        key = msg.body.get("TaskScheduledId", msg.body.get("TimerId"))
        return key is not None and int(key) in rt.done_ids

    def _drives_retry(self, rt: Runtime, msg: Message) -> bool:
        if msg.kind == "TaskFailed":
            rec = rt.state.retries.get(str(msg.body["TaskScheduledId"]))
            return rec is not None and rec["phase"] == "task"
        if msg.kind == "TimerFired":
            rec = rt.state.retries.get(str(msg.body["TimerId"]))
            return rec is not None and rec["phase"] == "timer"
        return False

    def _take_batch(self, rt: Runtime) -> list[Message]:
        fresh: list[Message] = []
        stale: list[Message] = []
        for msg in rt.inbox:
            (stale if self._is_stale(rt, msg) else fresh).append(msg)
        if stale:
            rt.inbox = fresh
            keys = [m.row_key for m in stale if m.row_key]
            if keys:
                self._spawn(self.store.delete_messages(rt.instance_id, keys))
        for msg in fresh:
            if msg.kind == "Terminate":
                return [msg]
        batch: list[Message] = []
        seen: set[int] = set()
        for msg in fresh:
            if self._drives_retry(rt, msg):
                if not batch:
                    batch.append(msg)
                break
            key = msg.body.get("TaskScheduledId", msg.body.get("TimerId"))
            if key is not None:
                if int(key) in seen:
                    continue  # a duplicate result (an activity that ran twice): first one wins
                seen.add(int(key))
            batch.append(msg)
            if len(batch) >= MAX_BATCH_MESSAGES:
                break
        return batch

    async def _episode(self, rt: Runtime, batch: list[Message]) -> None:
        now = utcnow_ms(self.clock)
        if batch and batch[0].kind == "Terminate":
            episode = self._terminate_episode(rt, batch, now)
        else:
            episode = await self._run(rt, batch, now)
            if episode.continue_as_new and len(batch) > 1:
                # Deliver only up to the message that made it continue as new; the rest go to
                # the new execution, as if each message had had its own episode.
                for k in range(1, len(batch)):
                    shorter = await self._run(rt, batch[:k], now)
                    if shorter.continue_as_new:
                        episode = shorter
                        break
        await self._commit(rt, episode, now)

    def _terminate_episode(self, rt: Runtime, batch: list[Message], now: datetime) -> Episode:
        reason = batch[0].body.get("Reason", "")
        events = [h.event(T.ORCHESTRATOR_STARTED, now)]
        if rt.state.history_count == 0:
            events.append(self._execution_started(rt, now))
        events += [
            h.event(T.EXECUTION_TERMINATED, now, Input=json.dumps(reason)),
            h.event(T.ORCHESTRATOR_COMPLETED, now),
            h.event(T.EXECUTION_COMPLETED, now, OrchestrationStatus="Terminated", Result=json.dumps(reason)),
        ]
        return Episode(
            batch,
            events,
            copy.deepcopy(rt.state),
            "Terminated",
            output=reason,
            custom_status=_json_or_none(rt.row.get("CustomStatus")),
        )

    def _execution_started(self, rt: Runtime, now: datetime) -> h.Event:
        parent = rt.state.parent
        return h.event(
            T.EXECUTION_STARTED,
            now,
            Name=rt.row["Name"],
            Input=rt.row.get("Input"),
            Version=None,
            OrchestrationInstance=json.dumps({"InstanceId": rt.instance_id, "ExecutionId": rt.execution_id}),
            ParentInstance=json.dumps(parent) if parent else None,
        )

    async def _run(self, rt: Runtime, batch: list[Message], now: datetime) -> Episode:
        name = rt.row["Name"]
        state = copy.deepcopy(rt.state)
        events = [h.event(T.ORCHESTRATOR_STARTED, now)]
        if state.history_count == 0:
            events.append(self._execution_started(rt, now))
        events += [m.to_event(now) for m in batch]
        if name not in self.registry.orchestrators:
            err = f"The orchestrator function '{name}' does not exist in this app."
            return self._finish(Episode(batch, events, state, "Failed", error=err), now)
        context = {
            "history": [dict(ev, IsPlayed=True) for ev in rt.history]
            + [dict(ev, IsPlayed=False) for ev in events],
            "instanceId": rt.instance_id,
            "isReplaying": bool(rt.history),
            "parentInstanceId": (state.parent or {}).get("instanceId"),
            "input": rt.row.get("Input"),
            "upperSchemaVersion": SCHEMA_V2,
            "upperSchemaVersionNew": SCHEMA_V3,
            "maximumShortTimerDuration": MAX_SHORT_TIMER,
            "longRunningTimerIntervalDuration": LONG_TIMER_INTERVAL,
        }
        try:
            raw = await self.registry.run_orchestrator(name, json.dumps(context))
            result = json.loads(raw)
            error = None
        except FunctionFailed as exc:
            text = str(exc)
            message, _, data = text.partition(OUT_OF_PROC_MARK)
            result = json.loads(data) if data else {}
            error = message
            if not data:
                log.error("orchestrator %s raised outside the SDK: %s", name, text)
        episode = Episode(batch, events, state, "Running", custom_status=result.get("customStatus"))
        self._retry_bookkeeping(rt, episode, now)
        if error is not None:
            episode.status, episode.error = "Failed", error
            return self._finish(episode, now)
        actions = result.get("actions") or [[]]
        flat: list[dict[str, Any]] = [a for group in actions for a in group]
        for action in flat[state.actions :]:
            self._schedule(rt, episode, action, now)
        state.actions = len(flat)
        self._collect_cancelled(episode, flat)
        if result.get("isDone"):
            if episode.continue_as_new:
                episode.status = "ContinuedAsNew"
            else:
                episode.status, episode.output = "Completed", result.get("output")
        return self._finish(episode, now)

    def _finish(self, episode: Episode, now: datetime) -> Episode:
        episode.events.append(h.event(T.ORCHESTRATOR_COMPLETED, now))
        if episode.status == "Completed":
            episode.events.append(
                h.event(
                    T.EXECUTION_COMPLETED,
                    now,
                    OrchestrationStatus="Completed",
                    Result=df_dumps(episode.output),
                )
            )
        elif episode.status == "Failed":
            episode.events.append(
                h.event(
                    T.EXECUTION_COMPLETED, now, OrchestrationStatus="Failed", Result=json.dumps(episode.error)
                )
            )
        elif episode.status == "ContinuedAsNew":
            episode.events.append(
                h.event(
                    T.EXECUTION_COMPLETED, now, OrchestrationStatus="ContinuedAsNew", Result=episode.can_input
                )
            )
        return episode

    def _retry_bookkeeping(self, rt: Runtime, episode: Episode, now: datetime) -> None:
        state = episode.state
        for msg in episode.batch:
            if msg.kind in ("TaskCompleted", "TaskFailed"):
                key = str(msg.body["TaskScheduledId"])
                rec = state.retries.get(key)
                if rec is None or rec["phase"] != "task":
                    continue
                del state.retries[key]
                if msg.kind == "TaskFailed":
                    # DTFx's RetryInterceptor: a timer after every failed attempt, the last included.
                    delay_ms = rec["interval"] * rec.get("backoff", 1.0) ** (rec["attempt"] - 1)
                    if rec.get("maxInterval"):
                        delay_ms = min(delay_ms, rec["maxInterval"])
                    timer_id = self._next_seq(state)
                    fire_at = now + timedelta(milliseconds=delay_ms)
                    state.retries[str(timer_id)] = dict(rec, phase="timer")
                    episode.events.append(h.event(T.TIMER_CREATED, now, timer_id, FireAt=h.ts(fire_at)))
                    episode.work.append(("timer", {"id": timer_id, "fire_at": fire_at}))
            elif msg.kind == "TimerFired":
                key = str(msg.body["TimerId"])
                rec = state.retries.pop(key, None)
                if rec is None or rec["attempt"] >= rec["max"]:
                    continue
                task_id = self._next_seq(state)
                state.retries[str(task_id)] = dict(rec, phase="task", attempt=rec["attempt"] + 1)
                episode.events.append(
                    h.event(T.TASK_SCHEDULED, now, task_id, Name=rec["name"], Input=rec["input"])
                )
                episode.work.append(("activity", {"id": task_id, "name": rec["name"], "input": rec["input"]}))

    @staticmethod
    def _next_seq(state: EngineState) -> int:
        seq = state.seq
        state.seq += 1
        return seq

    def _schedule(self, rt: Runtime, episode: Episode, action: dict[str, Any], now: datetime) -> None:
        state, kind = episode.state, action.get("actionType")
        if kind in (11, 12):  # WhenAny / WhenAll: their children, in order
            for child in action.get("compoundActions", []):
                self._schedule(rt, episode, child, now)
            return
        if kind == 6:  # WaitForExternalEvent: no sequence number, nothing to do
            state.leaf_ids.append(None)
            return
        if kind == 4:  # ContinueAsNew (the SDK counts a sequence number for it)
            state.leaf_ids.append(self._next_seq(state))
            episode.continue_as_new, episode.can_input = True, action.get("input")
            return
        seq = self._next_seq(state)
        state.leaf_ids.append(seq)
        if kind in (0, 1):
            name, inp = action["functionName"], action.get("input")
            episode.events.append(h.event(T.TASK_SCHEDULED, now, seq, Name=name, Input=inp))
            episode.work.append(("activity", {"id": seq, "name": name, "input": inp}))
            if kind == 1:
                opts = action.get("retryOptions", {})
                state.retries[str(seq)] = {
                    "phase": "task",
                    "name": name,
                    "input": inp,
                    "attempt": 1,
                    "max": int(opts.get("maxNumberOfAttempts", 1)),
                    "interval": float(opts.get("firstRetryIntervalInMilliseconds", 1000)),
                    "backoff": float(opts.get("backoffCoefficient", 1.0)),
                    "maxInterval": opts.get("maxRetryIntervalInMilliseconds"),
                }
        elif kind == 5:
            fire_at = datetime.fromisoformat(action["fireAt"].replace("Z", "+00:00"))
            if fire_at.tzinfo is None:
                fire_at = fire_at.replace(tzinfo=UTC)
            episode.events.append(h.event(T.TIMER_CREATED, now, seq, FireAt=h.ts(fire_at)))
            if not action.get("isCanceled"):
                episode.work.append(("timer", {"id": seq, "fire_at": fire_at}))
        elif kind in (2, 3):
            child_id = action.get("instanceId") or f"{rt.instance_id}:{seq}"
            name, inp = action["functionName"], action.get("input")
            episode.events.append(
                h.event(
                    T.SUB_ORCHESTRATION_INSTANCE_CREATED, now, seq, Name=name, Input=inp, InstanceId=child_id
                )
            )
            episode.work.append(
                ("suborchestration", {"id": seq, "name": name, "input": inp, "instance_id": child_id})
            )
        else:
            log.warning(
                "%s: action type %s (entities, call_http) is not supported by devhost", rt.instance_id, kind
            )

    @staticmethod
    def _leaves(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for action in actions:
            if action.get("actionType") in (11, 12):
                out += Engine._leaves(action.get("compoundActions", []))
            else:
                out.append(action)
        return out

    def _collect_cancelled(self, episode: Episode, flat: list[dict[str, Any]]) -> None:
        """Timers the orchestrator cancelled (``timer.cancel()`` after ``task_any``) never fire."""
        ids = episode.state.leaf_ids
        cancelled = set(episode.state.cancelled)
        for index, leaf in enumerate(self._leaves(flat)):
            if leaf.get("actionType") == 5 and leaf.get("isCanceled") and index < len(ids):
                seq = ids[index]
                if seq is not None and seq not in cancelled:
                    cancelled.add(seq)
                    episode.cancelled.append(seq)
        episode.state.cancelled = sorted(cancelled)

    # -- commit ----------------------------------------------------------------------------
    async def _commit(self, rt: Runtime, episode: Episode, now: datetime) -> None:
        state = episode.state
        start = state.history_count
        rows = [
            h.to_row(rt.instance_id, rt.execution_id, start + i, ev) for i, ev in enumerate(episode.events)
        ]
        await self.store.write_history(rt.instance_id, rows)
        state.history_count = start + len(episode.events)
        state.consumed = [m.row_key for m in episode.batch if m.row_key]
        row = dict(rt.row)
        row.pop("etag", None)
        row["LastUpdatedTime"] = now
        row["CustomStatus"] = json.dumps(episode.custom_status) if episode.custom_status is not None else None
        status = episode.status
        if status == "ContinuedAsNew":
            # A new execution: fresh history and bookkeeping, the new input; the old rows go.
            state = EngineState(parent=state.parent, consumed=state.consumed)
            row.update(
                ExecutionId=uuid.uuid4().hex, Input=episode.can_input, RuntimeStatus="Running", Output=None
            )
        else:
            row["RuntimeStatus"] = status
            if status == "Completed":
                row["Output"] = df_dumps(episode.output)
            elif status == "Failed":
                name = rt.row["Name"]
                row["Output"] = json.dumps(f"Orchestrator function '{name}' failed: {episode.error}")
            elif status == "Terminated":
                row["Output"] = json.dumps(episode.output)
            if status in TERMINAL:
                row["CompletedTime"] = now
        row["DevhostState"] = state.dumps()
        try:
            rt.etag = await self.store.replace_instance(row, rt.etag)
        except ResourceModifiedError:
            # Someone else (a purge, a restart of the id) wrote the row: this runtime is obsolete.
            log.warning("%s changed underneath the engine; dropping the in-memory copy", rt.instance_id)
            rt.gone = True
            self.runtimes.pop(rt.instance_id, None)
            return
        # Committed.
        consumed = set(state.consumed)
        rt.row, rt.state = row, state
        rt.inbox = [m for m in rt.inbox if m.row_key not in consumed and m not in episode.batch]
        if consumed and status == "ContinuedAsNew":
            # The old history (with the message ids) goes away: delete before anything else.
            await self.store.delete_messages(rt.instance_id, consumed)
        elif consumed:
            # Not awaited: an applied message left behind is recognised by its id in the history.
            self._spawn(self.store.delete_messages(rt.instance_id, consumed))
        if status == "ContinuedAsNew":
            rt.history, rt.done_ids = [], set()
            self._disarm_all(rt)
            # Awaited, not spawned: the new execution's rows reuse the same row keys.
            await self._delete_old_executions(rt.instance_id, rt.execution_id)
            return
        rt.history.extend(episode.events)
        self._index_history(rt, episode.events)
        for seq in episode.cancelled:
            rt.armed.discard(seq)
        if status in TERMINAL:
            rt.gone = True
            self._disarm_all(rt)
            self.runtimes.pop(rt.instance_id, None)
            if state.parent:
                await self._notify_parent(rt, row, state.parent)
            return
        for kind, work in episode.work:
            if kind == "activity":
                self._dispatch_activity(rt, work["id"], work["name"], work["input"])
            elif kind == "timer":
                if work["id"] not in state.cancelled:
                    self._arm(rt, work["id"], work["fire_at"])
            elif kind == "suborchestration":
                await self._start_child(rt, work["id"], work["name"], work["instance_id"], work["input"])

    async def _delete_old_executions(self, instance_id: str, execution_id: str) -> None:
        rows = [r for r in await self.store.read_history(instance_id) if r.get("ExecutionId") != execution_id]
        await self.store.delete_rows(self.store.history, rows)

    # -- activities ------------------------------------------------------------------------
    def _dispatch_activity(self, rt: Runtime, task_id: int, name: str, input_json: str | None) -> None:
        self._spawn(self._run_activity(rt.instance_id, rt.execution_id, task_id, name, input_json))

    async def _run_activity(
        self, instance_id: str, execution_id: str, task_id: int, name: str, input_json: str | None
    ) -> None:
        canonical = self.registry.canonical(name)
        try:
            if canonical is None or canonical not in self.registry.activities:
                raise FunctionFailed(
                    f"LookupError: The activity function '{name}' does not exist in this app."
                )
            result = await self.registry.run_activity(canonical, input_json)
            msg = Message(
                "TaskCompleted",
                {"TaskScheduledId": task_id, "Result": result if result is not None else "null"},
                execution_id=execution_id,
            )
        except FunctionFailed as exc:
            log.warning("activity %s (%s #%s) failed: %s", name, instance_id, task_id, exc)
            msg = Message(
                "TaskFailed",
                {
                    "TaskScheduledId": task_id,
                    "Reason": f"Activity function '{name}' failed: {exc}",
                    "Details": str(exc),
                },
                execution_id=execution_id,
            )
        msg.message_id = f"task-{execution_id}-{task_id}"
        await self._deliver(instance_id, msg)

    # -- sub-orchestrations ----------------------------------------------------------------
    async def _start_child(
        self, rt: Runtime, task_id: int, name: str, child_id: str, input_json: str | None
    ) -> None:
        parent = {"instanceId": rt.instance_id, "executionId": rt.execution_id, "taskId": task_id}
        try:
            await self.start_new(name, child_id, input_json, parent=parent)
        except EngineError as exc:
            await self._deliver(
                rt.instance_id,
                Message(
                    "SubOrchestrationInstanceFailed",
                    {"TaskScheduledId": task_id, "Reason": str(exc), "Details": str(exc)},
                    rt.execution_id,
                ),
            )

    async def _ensure_child(self, rt: Runtime, task_id: int, ev: h.Event) -> None:
        child = await self.store.get_instance(ev["InstanceId"])
        if child is None:
            await self._start_child(rt, task_id, ev["Name"], ev["InstanceId"], ev.get("Input"))
        elif child.get("RuntimeStatus") in TERMINAL:
            parent = EngineState.loads(child.get("DevhostState")).parent
            if parent and parent.get("executionId") == rt.execution_id:
                await self._notify_parent(None, child, parent)

    async def _notify_parent(self, rt: Runtime | None, row: Entity, parent: dict[str, Any]) -> None:
        task_id = parent["taskId"]
        if row["RuntimeStatus"] == "Completed":
            msg = Message(
                "SubOrchestrationInstanceCompleted",
                {"TaskScheduledId": task_id, "Result": row.get("Output")},
                parent["executionId"],
            )
        else:
            reason = str(_json_or_none(row.get("Output")))
            body = {"TaskScheduledId": task_id, "Reason": reason, "Details": reason}
            msg = Message("SubOrchestrationInstanceFailed", body, parent["executionId"])
        msg.message_id = f"sub-{parent['executionId']}-{task_id}"
        await self._deliver(parent["instanceId"], msg)


def clock_is_real(clock: Clock) -> bool:
    return clock.mode is ClockMode.REAL
