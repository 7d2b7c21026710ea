"""The durable engine's shell: pumps, storage, the worker and timers around the pure episode logic.

Each instance has at most one *pump* (an asyncio task) that runs its episodes one after another:
take a batch of persisted messages, build the context (``episode.opening`` and
``episode.context_json``), have the worker run the orchestrator once, let ``episode.decide`` turn
the answer into history events and work, then commit.

Commit order (crash safety): history rows first (upserts, harmless if the episode is redone),
then the instance row with an If-Match ETag - that write is the commit point, it carries the
committed history length and the ids of the messages the episode consumed - then the consumed
messages are deleted, and only then is work dispatched. A crash before the commit redoes the
episode from the same persisted messages; a crash after it finds the consumed message ids in the
instance row and deletes them. Activities and timers are derived from the history on reload
(TaskScheduled without a result, TimerCreated without TimerFired), so they run again (at least
once, as on Azure) and an already-recorded result is never recorded twice.

A commit that fails (storage trouble) is never dropped: DurableTask keeps the message and its work
item and processes it again once the lease expires (``src/DurableTask.AzureStorage/
AzureStorageOrchestrationService.cs`` CompleteTaskOrchestrationWorkItemAsync / abandon). Here the
instance is reloaded from what storage holds, after a back-off, which redoes the episode or finds
it committed; until then the engine counts as busy, so ``/dev/idle`` does not report settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType as T
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus as S
from azure.durable_functions.models.utils.df_serialization import df_dumps

from ..clock import Clock
from . import episode as ep
from . import history as h
from .model import (
    ACTIVE_NAMES,
    CONTROL,
    TERMINAL,
    TERMINAL_NAMES,
    ArmTimer,
    EngineState,
    Kind,
    Message,
    RunActivity,
    StartChild,
    status_of,
)
from .registry import FunctionFailed, FunctionRunner, WorkerCrashed, refuse_unsupported
from .store import Entity, TaskHubStore
from .timers import TimerService

if TYPE_CHECKING:
    from ..schedules import TimerTriggers

log = logging.getLogger("devhost.durable")

# The SDK warns when an event arrives for a task nobody waits for yet (an external event raised
# before the orchestrator asks for it): it buffers it, which is the intended behaviour here.
warnings.filterwarnings("ignore", message="Potential duplicate Task completion")

MAX_BATCH_MESSAGES = 200
# host.json's concurrency limits when it sets none: the extension's default outside the (legacy)
# Consumption plan, 10 × the processor count (AzureStorageDurabilityProviderFactory).
DEFAULT_CONCURRENCY = 10 * (os.cpu_count() or 1)
MAX_PENDING_DELETES = 50  # applied messages deleted together (one transaction holds 100)
STATUS_CONTAINER = "azure-webjobs-hosts"
# Back-off before a failed episode is retried from storage (DurableTask waits for the lease).
RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)
# DurableClient.StartNewAsync (ContextImplementations/DurableClient.cs in the extension).
MAX_INSTANCE_ID_LENGTH = 256


class EngineError(Exception):
    """Base of the errors the management API maps to HTTP answers."""


class InstanceNotFound(EngineError):
    pass


class InstanceConflict(EngineError):
    """OrchestrationAlreadyExistsException: the id is taken by an instance that is not finished."""


class InstanceGone(EngineError):
    pass


class InvalidArgument(EngineError):
    """An ArgumentException in the extension: the HTTP API answers 400."""


class UnknownOrchestrator(InvalidArgument):
    pass


def utcnow_ms(clock: Clock) -> datetime:
    now = clock.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _json_or_none(text: Any) -> Any:
    return h._parse(text) if text not in (None, "") else None


def check_instance_id(instance_id: str) -> None:
    """The extension's rules for a caller-chosen id (DurableClient.StartNewAsync)."""
    if instance_id.startswith("@"):
        raise InvalidArgument("Orchestration instance ids must not start with @.")
    if any(c in "/\\?#" or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in instance_id):
        raise InvalidArgument(
            "Orchestration instance ids must not contain /, \\, #, ?, or control characters."
        )
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise InvalidArgument(f"Instance ID lengths must not exceed {MAX_INSTANCE_ID_LENGTH} characters.")


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
    failures: int = 0
    replay: bool = False  # run an episode even without messages (after a rewind)
    input_text: str | None = None  # the input itself (the row may hold a blob URL instead)
    applied: list[str] = field(default_factory=list)  # consumed messages not yet deleted

    @property
    def execution_id(self) -> str:
        return str(self.row["ExecutionId"])

    @property
    def status(self) -> S | None:
        return status_of(self.row)

    def instance(self) -> ep.Instance:
        return ep.Instance(
            instance_id=self.instance_id,
            execution_id=self.execution_id,
            name=str(self.row["Name"]),
            input=self.input_text,
            parent=self.state.parent,
            custom_status=None
            if self.row.get("CustomStatus") in (None, "null")
            else self.row["CustomStatus"],
            generation=int(self.row.get("Generation") or 0),
        )


class Engine:
    """Runs the app's orchestrations and activities; the management API calls its methods."""

    def __init__(
        self,
        store: TaskHubStore,
        registry: FunctionRunner,
        clock: Clock,
        *,
        max_activities: int = DEFAULT_CONCURRENCY,
        max_orchestrators: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.runtimes: dict[str, Runtime] = {}
        # host.json's durableTask.maxConcurrentActivityFunctions / maxConcurrentOrchestratorFunctions:
        # the work items one host instance processes at once; the rest wait in their queues. The
        # extension hands them to DurableTask as MaxConcurrentTaskActivityWorkItems and
        # MaxConcurrentTaskOrchestrationWorkItems (AzureStorageDurabilityProviderFactory), and
        # refuses a value that is not positive (DurableTaskOptions.Validate).
        for name, value in (
            ("maxConcurrentActivityFunctions", max_activities),
            ("maxConcurrentOrchestratorFunctions", max_orchestrators),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer value.")
        self._activity_slots = asyncio.Semaphore(max_activities)
        self._orchestrator_slots = asyncio.Semaphore(max_orchestrators)
        self._busy = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._load_lock = asyncio.Lock()
        self.timers = TimerService(clock, self._timer_fired)
        self._row_counter = 0
        self._closed = False
        self.triggers: TimerTriggers | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Open storage, resume every unfinished instance, start the timer triggers.

        Refuses (``UnsupportedFunction``, ``ScheduleError``, naming the function) an app with
        functions it cannot run, before anything runs."""
        from ..schedules import StatusStore, TimerTriggers

        refuse_unsupported(getattr(self.registry, "bindings", {}))
        TimerTriggers.schedules(self.registry)
        await self.store.open()
        self.timers.start()
        status_filter = " or ".join(f"RuntimeStatus eq '{s}'" for s in sorted(ACTIVE_NAMES))
        async for row in self.store.all_instances(status_filter):
            rt = await self._load(row["PartitionKey"])
            if rt is not None:
                log.info("resumed %s (%s)", rt.instance_id, rt.row.get("Name"))
        if getattr(self.registry, "timers", None):
            statuses = StatusStore(self.store.container(STATUS_CONTAINER), self.store.hub.lower())
            self.triggers = TimerTriggers(self.registry, self.clock, statuses, self._spawn)
            await self.triggers.start()

    async def stop(self) -> None:
        self._closed = True
        await self.timers.stop()
        if self.triggers is not None:
            await self.triggers.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
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
        due = self.triggers is not None and self.triggers.has_due()
        return self._busy > 0 or self.timers.has_due() or due

    async def wait_idle(self, limit: float = 30.0) -> bool:
        """Wait until no episode, activity, retry or due timer is left (``False`` after ``limit`` s)."""
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
    async def _load(self, instance_id: str) -> Runtime | None:
        # One loader at a time: two deliveries to an unloaded instance must not load it twice.
        async with self._load_lock:
            if instance_id in self.runtimes:
                return self.runtimes[instance_id]
            fresh = await self.store.get_instance(instance_id)
            if fresh is None or fresh.get("RuntimeStatus") in TERMINAL_NAMES:
                return None
            return await self._load_locked(fresh)

    async def _load_locked(self, row: Entity) -> Runtime:
        instance_id = row["PartitionKey"]
        state = EngineState.loads(row.get("DevhostState"))
        execution_id = row["ExecutionId"]
        rows = await self.store.read_history(instance_id)
        current = [r for r in rows if r.get("ExecutionId") == execution_id]
        stale = [r for r in current if int(r["RowKey"], 16) >= state.history_count]
        # Rows of earlier executions (continued as new) are skipped and left, as on Azure
        # (GetHistoryEventsAsync); the new execution's writes replace them position by position.
        events = [h.from_row(r) for r in current if r not in stale]
        if stale:
            # Leftovers of an episode that failed before its commit (Azure's retried episode
            # overwrites them at the same sequence numbers; here they go before it runs again).
            await self.store.delete_rows(self.store.history, stale)
        rt = Runtime(instance_id, row, str(row["etag"]), state, events)
        rt.input_text = await self.store.fetch_if_url(row.get("Input"))
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
        """After a reload: run again what was scheduled and has no result yet, re-arm timers."""
        pending_results = {m.task_key for m in rt.inbox if m.task_key is not None}
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
            # DurableTaskExtension.ThrowIfFunctionDoesNotExist.
            raise UnknownOrchestrator(
                f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator function. "
                f"Additional info: No orchestrator functions are currently registered!"
                if not self.registry.orchestrators
                else f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator function."
            )
        name = canonical
        if instance_id:
            if parent is None:
                check_instance_id(instance_id)
        else:
            instance_id = uuid.uuid4().hex
        now = utcnow_ms(self.clock)
        existing = await self.store.get_instance(instance_id)
        if existing is not None and existing.get("RuntimeStatus") in ACTIVE_NAMES:
            # AzureStorageOrchestrationService.CreateTaskOrchestrationAsync with the extension's
            # default dedupe statuses (OverridableStates.NonRunningStates).
            raise InstanceConflict(
                f"An Orchestration instance with the status {existing['RuntimeStatus']} already exists."
            )
        generation = int(existing.get("Generation") or 0) + 1 if existing is not None else 0
        state = EngineState(parent=parent)
        row: Entity = {
            "PartitionKey": instance_id,
            "RowKey": "",
            "Name": name,
            "Version": "",
            "Input": input_json,
            "RuntimeStatus": S.Pending.value,
            "CreatedTime": now,
            "LastUpdatedTime": now,
            "ExecutionId": uuid.uuid4().hex,
            "Generation": generation,
            "TaskHubName": self.store.hub,
            "Tags": "null",
            "CustomStatus": "null",
            "DevhostState": state.dumps(),
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
            raise InstanceConflict(
                f"An Orchestration instance with the ID {instance_id} already exists."
            ) from exc
        rt = Runtime(instance_id, row, etag, state, [], input_text=input_json)
        self.runtimes[instance_id] = rt
        self._kick(rt)
        return row

    async def raise_event(self, instance_id: str, name: str, data_json: str | None) -> None:
        """``data_json`` is the event's data as JSON text, as the HTTP API parsed it (once)."""
        row = await self._require(instance_id)
        if row["RuntimeStatus"] in TERMINAL_NAMES:
            raise InstanceGone(f"Instance with ID {instance_id} is gone: either completed or failed")
        await self._deliver(instance_id, Message(Kind.EVENT_RAISED, {"Name": name, "Input": data_json}))

    async def _control(self, instance_id: str, kind: Kind, reason: str | None) -> None:
        row = await self._require(instance_id)
        if row["RuntimeStatus"] in TERMINAL_NAMES:
            raise InstanceGone(f"Instance with ID {instance_id} is already finished")
        await self._deliver(instance_id, Message(kind, {"Reason": reason}))

    async def terminate(self, instance_id: str, reason: str | None) -> None:
        await self._control(instance_id, Kind.TERMINATE, reason)

    async def suspend(self, instance_id: str, reason: str | None) -> None:
        await self._control(instance_id, Kind.SUSPEND, reason)

    async def resume(self, instance_id: str, reason: str | None) -> None:
        await self._control(instance_id, Kind.RESUME, reason)

    async def restart(self, instance_id: str, new_instance_id: bool = True) -> str:
        """DurableClient.RestartAsync: the same orchestrator and input, under a new id by default."""
        row = await self.store.get_instance(instance_id)
        if row is None:
            raise InvalidArgument("InstanceId does not match a valid orchestration instance.")
        input_json = await self.store.fetch_if_url(row.get("Input"))
        started = await self.start_new(str(row["Name"]), None if new_instance_id else instance_id, input_json)
        return str(started["PartitionKey"])

    async def rewind(self, instance_id: str, reason: str | None) -> None:
        """Rewind a Failed instance (DurableTask.Core TaskOrchestrationDispatcher
        ProcessRewindOrchestrationDecision): the failure events become GenericEvents, the instance
        runs again, and the failed activities and sub-orchestrations are retried."""
        row = await self._require(instance_id)
        if row["RuntimeStatus"] != S.Failed.value:
            raise InvalidArgument(
                f"Only failed orchestrations can be rewound, but {instance_id} is {row['RuntimeStatus']}."
            )
        rows = [
            r
            for r in await self.store.read_history(instance_id)
            if r.get("ExecutionId") == row["ExecutionId"]
        ]
        children = {
            int(r["EventId"]): r["InstanceId"]
            for r in rows
            if r["EventType"] == "SubOrchestrationInstanceCreated"
        }
        rewritten = []
        for r in rows:
            if r["EventType"] == "SubOrchestrationInstanceFailed":
                child = children.get(int(r.get("TaskScheduledId", -1)))
                if child is not None:
                    with contextlib.suppress(EngineError):
                        await self.rewind(child, reason)
            elif r["EventType"] not in ("TaskFailed", "ExecutionCompleted"):
                continue
            when = r["_Timestamp"]
            rewound = h.event(T.GENERIC_EVENT, when, Data=f"Rewound: {r['EventType']}")
            rewritten.append(h.to_row(instance_id, row["ExecutionId"], int(r["RowKey"], 16), rewound))
        await self.store.write_history(instance_id, row["ExecutionId"], rewritten)
        new_row = {k: v for k, v in row.items() if k not in ("etag", "CompletedTime")}
        new_row.update(RuntimeStatus=S.Running.value, LastUpdatedTime=utcnow_ms(self.clock), Output=None)
        await self.store.replace_instance(new_row, str(row["etag"]))
        rt = await self._load(instance_id)
        if rt is not None:
            # The orchestrator runs once more, as the rewind work item does: it fails again if the
            # failure was its own, else it waits for the activities that run again.
            rt.replay = True
            self._kick(rt)

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
        status = await self.status_json(row, show_input)
        if show_history and row.get("RuntimeStatus") != S.Pending.value:
            rows = await self.store.read_history(instance_id)
            count = EngineState.loads(row.get("DevhostState")).history_count
            events = [h.from_row(r) for r in rows if r.get("ExecutionId") == row["ExecutionId"]][:count]
            status["historyEvents"] = h.for_status(
                events, show_output=show_history_output, show_input=show_input
            )
        return status

    async def status_json(self, row: Entity, show_input: bool = True) -> dict[str, Any]:
        """StatusResponsePayload (HttpApiHandler.ConvertFrom): times as ``ToString("s") + "Z"``."""

        def iso(value: Any) -> str | None:
            if not isinstance(value, datetime):
                return None
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        inp = await self.store.fetch_if_url(row.get("Input")) if show_input else None
        return {
            "name": row.get("Name"),
            "instanceId": row["PartitionKey"],
            "runtimeStatus": row.get("RuntimeStatus"),
            "input": _json_or_none(inp) if show_input else None,
            "customStatus": _json_or_none(row.get("CustomStatus")),
            "output": _json_or_none(await self.store.fetch_if_url(row.get("Output"))),
            "createdTime": iso(row.get("CreatedTime")),
            "lastUpdatedTime": iso(row.get("LastUpdatedTime")),
        }

    async def purge(self, instance_id: str) -> int:
        # AzureTableTrackingStore.PurgeInstanceHistoryAsync(instanceId): whatever its status.
        row = await self.store.get_instance(instance_id)
        if row is None:
            return 0
        rt = self.runtimes.pop(instance_id, None)
        if rt is not None:
            rt.gone = True
            rt.armed.clear()
        await self.store.delete_partition(self.store.history, instance_id)
        await self.store.delete_partition(self.store.messages, instance_id)
        await self.store.delete_blobs(instance_id)
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
            await self._load(instance_id)  # reads the message we just wrote
            return
        if rt.gone:
            return
        rt.inbox.append(msg)
        self._kick(rt)

    async def _deliver_surely(self, instance_id: str, msg: Message) -> None:
        """Deliver a result that exists nowhere else (an activity's, a child's): storage trouble
        delays it, never drops it (the same row key each time, so a retry is an upsert)."""
        attempt = 0
        while True:
            try:
                await self._deliver(instance_id, msg)
                return
            except Exception:
                if self._closed:
                    raise
                log.exception("delivering %s to %s failed; trying again", msg.kind.value, instance_id)
                await asyncio.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
                attempt += 1

    def _flush_deletes(self, rt: Runtime) -> None:
        if rt.applied:
            keys, rt.applied = rt.applied, []
            self._spawn(self.store.delete_messages(rt.instance_id, keys))

    def _kick(self, rt: Runtime) -> None:
        if rt.pump is None and not rt.gone and not self._closed:
            rt.pump = self._spawn(self._pump(rt))

    def _timer_fired(self, instance_id: str, execution_id: str, timer_id: int, fire_at: datetime) -> None:
        rt = self.runtimes.get(instance_id)
        if rt is None or rt.gone or rt.execution_id != execution_id or timer_id not in rt.armed:
            return
        rt.armed.discard(timer_id)
        rt.inbox.append(
            Message(
                Kind.TIMER_FIRED, {"TimerId": timer_id, "FireAt": h.ts(fire_at)}, execution_id=execution_id
            )
        )
        self._kick(rt)

    def _arm(self, rt: Runtime, timer_id: int, fire_at: datetime) -> None:
        rt.armed.add(timer_id)
        self.timers.arm(fire_at, rt.instance_id, rt.execution_id, timer_id)

    # -- the pump --------------------------------------------------------------------------
    async def _pump(self, rt: Runtime) -> None:
        try:
            while not rt.gone:
                # An orchestration work item is fetched (its messages batched) when a slot is free.
                async with self._orchestrator_slots:
                    batch = self._take_batch(rt)
                    if not batch and rt.state.history_count > 0 and not rt.replay:
                        self._flush_deletes(rt)
                        break
                    rt.replay = False
                    await self._episode(rt, batch)
                rt.failures = 0
        except asyncio.CancelledError:
            raise
        except Exception:
            # Storage trouble (or a bug): the messages stay persisted; reload and redo the episode.
            log.exception("episode of %s failed; it is retried from storage", rt.instance_id)
            self._spawn(self._retry(rt))
        finally:
            rt.pump = None

    async def _retry(self, rt: Runtime) -> None:
        delay = RETRY_DELAYS[min(rt.failures, len(RETRY_DELAYS) - 1)]
        rt.gone = True
        if self.runtimes.get(rt.instance_id) is rt:
            del self.runtimes[rt.instance_id]
        await asyncio.sleep(delay)
        try:
            fresh = await self._load(rt.instance_id)
        except Exception:
            log.exception("reloading %s failed; trying again", rt.instance_id)
            fresh = None
            rt.failures += 1
            rt.gone = False
            self._spawn(self._retry(rt))
            return
        if fresh is not None:
            fresh.failures = rt.failures + 1

    def _is_stale(self, rt: Runtime, msg: Message) -> bool:
        if msg.execution_id and msg.execution_id != rt.execution_id:
            return True
        key = msg.task_key
        return key is not None and key in rt.done_ids

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
            if msg.kind is Kind.TERMINATE:
                return [msg]
        for msg in fresh:
            if msg.kind in (Kind.SUSPEND, Kind.RESUME):
                return [msg]
        suspended = rt.status is S.Suspended
        if suspended:
            return []  # DurableTask holds everything else back until the instance is resumed
        batch: list[Message] = []
        seen: set[int] = set()
        for msg in fresh:
            if msg.kind in CONTROL:
                continue
            if ep.drives_retry(rt.state, msg):
                if not batch:
                    batch.append(msg)
                break
            key = msg.task_key
            if key is not None:
                if key in seen:
                    continue  # a duplicate result (an activity that ran twice): first one wins
                seen.add(key)
            batch.append(msg)
            if len(batch) >= MAX_BATCH_MESSAGES:
                break
        return batch

    async def _episode(self, rt: Runtime, batch: list[Message]) -> None:
        now = utcnow_ms(self.clock)
        # Control messages that would not change anything (resume of a running instance) are
        # consumed without an episode.
        current = rt.status or S.Running
        if batch and ep.changes_nothing(batch[0], current):
            # Resuming a running instance or suspending a suspended one: consumed, nothing recorded.
            episode = ep.Episode(
                batch,
                [],
                copy.deepcopy(rt.state),
                current,
                output=rt.row.get("Output"),
                custom_status=rt.row.get("CustomStatus"),
            )
        elif batch and batch[0].kind in CONTROL:
            episode = ep.control_episode(rt.instance(), rt.state, batch, current, now)
        else:
            # The whole batch is one episode. If it continues as new, what it did not consume
            # is dropped with it: the extension's out-of-process shim calls
            # ContinueAsNew(action.Input), and IDurableOrchestrationContext.ContinueAsNew's
            # preserveUnprocessedEvents defaults to false ("any unprocessed external events will
            # be discarded"). Events that arrive after the episode reach the new execution.
            episode = await self._run(rt, batch, now)
        await self._commit(rt, episode, now)

    async def _run(self, rt: Runtime, batch: list[Message], now: datetime) -> ep.Episode:
        instance = rt.instance()
        events = ep.opening(instance, rt.state, batch, now)
        answer: dict[str, Any] = {}
        error: str | None = None
        canonical = self.registry.canonical(instance.name)
        if canonical is None or canonical not in self.registry.orchestrators:
            error = f"The orchestrator function '{instance.name}' does not exist in this app."
        else:
            try:
                raw = await self.registry.run_orchestrator(
                    canonical, ep.context_json(instance, rt.history, events)
                )
                answer = json.loads(raw)
            except FunctionFailed as exc:
                error, answer = ep.split_failure(str(exc))
                if not answer:
                    log.error("orchestrator %s raised outside the SDK: %s", instance.name, exc)
        return ep.decide(instance, rt.history, rt.state, batch, events, answer, error, now)

    # -- commit ----------------------------------------------------------------------------
    async def _commit(self, rt: Runtime, episode: ep.Episode, now: datetime) -> None:
        state = episode.state
        start = state.history_count
        rows = [
            h.to_row(rt.instance_id, rt.execution_id, start + i, ev) for i, ev in enumerate(episode.events)
        ]
        await self.store.write_history(rt.instance_id, rt.execution_id, rows)
        state.history_count = start + len(episode.events)
        state.consumed = [m.row_key for m in episode.batch if m.row_key]
        row = dict(rt.row)
        row.pop("etag", None)
        row["LastUpdatedTime"] = now
        row["TaskHubName"] = self.store.hub
        # AzureTableTrackingStore.UpdateStateAsync: `newRuntimeState.Status ?? "null"`.
        row["CustomStatus"] = episode.custom_status if episode.custom_status is not None else "null"
        status = episode.status
        if status is S.ContinuedAsNew:
            # A new execution: fresh history and bookkeeping, the new input; the old rows go.
            state = EngineState(parent=state.parent, consumed=state.consumed)
            # Generation stays: only a new start of the id counts one up (CreateTaskOrchestrationAsync).
            row.update(
                ExecutionId=uuid.uuid4().hex,
                Input=episode.can_input,
                RuntimeStatus=S.Running.value,
                Output=None,
            )
        else:
            row["RuntimeStatus"] = status.value
            if status is S.Completed:
                row["Output"] = df_dumps(episode.output)
            elif status is S.Failed:
                row["Output"] = episode.error
            elif status in (S.Terminated, S.Suspended) or any(m.kind is Kind.RESUME for m in episode.batch):
                # Terminate, suspend and resume reasons become the Output (UpdateStateAsync).
                row["Output"] = episode.output
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
        if status is S.ContinuedAsNew:
            rt.input_text = episode.can_input
        rt.inbox = [m for m in rt.inbox if m.row_key not in consumed and m not in episode.batch]
        if consumed and status is S.ContinuedAsNew:
            # The old history (with the message ids) goes away: delete before anything else.
            await self.store.delete_messages(rt.instance_id, [*rt.applied, *consumed])
            rt.applied = []
        elif consumed:
            # Deleted in one transaction once the instance has nothing more to do (or after
            # MAX_PENDING_DELETES), not one request per episode: an applied message left behind
            # is recognised by its id in the history (``_load_locked``), as after a crash.
            rt.applied.extend(k for k in consumed if k)
            if len(rt.applied) >= MAX_PENDING_DELETES or status in TERMINAL:
                self._flush_deletes(rt)
        if status is S.ContinuedAsNew:
            rt.history, rt.done_ids = [], set()
            rt.armed.clear()
            # The finished execution's History rows stay, as on Azure: AzureTableTrackingStore.
            # UpdateStateAsync writes each execution's events at their sequence numbers
            # (UpsertReplace over the older generation's rows) and deletes only the old
            # execution's large-message blobs; GetHistoryEventsAsync stops at the first row of a
            # previous generation. Every reader here takes the current ExecutionId's rows only.
            return
        rt.history.extend(episode.events)
        self._index_history(rt, episode.events)
        for seq in episode.cancelled:
            rt.armed.discard(seq)
        if status in TERMINAL:
            rt.gone = True
            rt.armed.clear()
            self.runtimes.pop(rt.instance_id, None)
            if state.parent:
                await self._notify_parent(row, state.parent)
            return
        for work in episode.work:
            if isinstance(work, RunActivity):
                self._dispatch_activity(rt, work.id, work.name, work.input)
            elif isinstance(work, ArmTimer):
                if work.id not in state.cancelled:
                    self._arm(rt, work.id, work.fire_at)
            elif isinstance(work, StartChild):
                await self._start_child(rt, work.id, work.name, work.instance_id, work.input)

    # -- activities ------------------------------------------------------------------------
    def _dispatch_activity(self, rt: Runtime, task_id: int, name: str, input_json: str | None) -> None:
        self._spawn(self._run_activity(rt.instance_id, rt.execution_id, task_id, name, input_json))

    async def _run_activity(
        self, instance_id: str, execution_id: str, task_id: int, name: str, input_json: str | None
    ) -> None:
        async with self._activity_slots:  # the work item waits in its queue until a slot is free
            await self._activity_work_item(instance_id, execution_id, task_id, name, input_json)

    async def _activity_work_item(
        self, instance_id: str, execution_id: str, task_id: int, name: str, input_json: str | None
    ) -> None:
        canonical = self.registry.canonical(name)
        try:
            if canonical is None or canonical not in self.registry.activities:
                raise FunctionFailed(
                    f"The function '{name}' doesn't exist, is disabled, or is not an activity function."
                )
            result = await self._activity_surely(canonical, input_json)
            msg = Message(
                Kind.TASK_COMPLETED,
                {"TaskScheduledId": task_id, "Result": result if result is not None else "null"},
                execution_id=execution_id,
            )
        except FunctionFailed as exc:
            log.warning("activity %s (%s #%s) failed: %s", name, instance_id, task_id, exc)
            msg = Message(
                Kind.TASK_FAILED,
                {
                    "TaskScheduledId": task_id,
                    "Reason": f"Activity function '{name}' failed: {exc}",
                    "Details": str(exc),
                },
                execution_id=execution_id,
            )
        msg.message_id = f"task-{execution_id}-{task_id}"
        await self._deliver_surely(instance_id, msg)

    async def _activity_surely(self, name: str, input_json: str | None) -> str | None:
        """Run an activity; again if its worker process died under it (at least once, as on Azure)."""
        attempt = 0
        while True:
            try:
                return await self.registry.run_activity(name, input_json)
            except WorkerCrashed as exc:
                log.warning("activity %s lost with its worker process (%s); running it again", name, exc)
                await asyncio.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
                attempt += 1

    # -- sub-orchestrations ----------------------------------------------------------------
    async def _start_child(
        self, rt: Runtime, task_id: int, name: str, child_id: str, input_json: str | None
    ) -> None:
        parent = {
            "instanceId": rt.instance_id,
            "executionId": rt.execution_id,
            "taskId": task_id,
            "name": rt.row["Name"],
        }
        try:
            await self.start_new(name, child_id, input_json, parent=parent)
        except EngineError as exc:
            await self._deliver(
                rt.instance_id,
                Message(
                    Kind.SUB_FAILED,
                    {"TaskScheduledId": task_id, "Reason": str(exc), "Details": str(exc)},
                    rt.execution_id,
                ),
            )

    async def _ensure_child(self, rt: Runtime, task_id: int, ev: h.Event) -> None:
        child = await self.store.get_instance(ev["InstanceId"])
        if child is None:
            await self._start_child(rt, task_id, ev["Name"], ev["InstanceId"], ev.get("Input"))
        elif child.get("RuntimeStatus") in TERMINAL_NAMES:
            parent = EngineState.loads(child.get("DevhostState")).parent
            if parent and parent.get("executionId") == rt.execution_id:
                await self._notify_parent(child, parent)

    async def _notify_parent(self, row: Entity, parent: dict[str, Any]) -> None:
        task_id = parent["taskId"]
        output = await self.store.fetch_if_url(row.get("Output"))
        if row["RuntimeStatus"] == S.Completed.value:
            msg = Message(
                Kind.SUB_COMPLETED,
                {"TaskScheduledId": task_id, "Result": output},
                parent["executionId"],
            )
        else:
            reason = str(_json_or_none(output))
            body = {"TaskScheduledId": task_id, "Reason": reason, "Details": reason}
            msg = Message(Kind.SUB_FAILED, body, parent["executionId"])
        msg.message_id = f"sub-{parent['executionId']}-{task_id}"
        await self._deliver_surely(parent["instanceId"], msg)
