"""One orchestration per appointment: ``appt-<bookingCode>`` (docs/ARCHITECTURE.md, "Lifecycle").

The orchestrator is deterministic and thin: it waits for the next event (a timer, an external
event, an entry of the appointment's outbox, or the outcome of an activity), lets
``lifecycle.decide`` rule, and carries out the returned actions: the meeting steps in order,
then the phase's record and its notifications in one wait. It decides nothing.

Its name carries a version: a change to what it schedules, or in what order, replays
non-deterministically on instances of an older build, so it is deployed under a new name
(docs/ARCHITECTURE.md, "Changing the orchestrator").

Timers: ``create_timer`` on the V3 replay schema (which the host sends) is the SDK's
``LongTimerTask``: it cuts a wait longer than the storage provider's maximum into legs itself.

Events: every phase waits for *every* external event, with one wait per name that lives until
its event is consumed. Two events delivered in one batch therefore both count (the second wins
the next round), and an event that is illegal in the current phase is consumed and ignored.

The orchestrator listens for every event name whenever it waits for anything (``Ears``): an
activity, the phase's work, a look at the outbox. What it hears meanwhile is queued, in arrival
order, and decided once the work is done. This is not only for order: the SDK keeps an event
raised while no wait of its name is open as a deferred completion and runs it again for every
wait of that name opened later, without ever removing it (``TaskOrchestrationExecutor.
set_task_value`` stores ``deferred_tasks[name]``, ``DurableOrchestrationContext._add_to_open_tasks``
runs it; azure-functions-durable-python issue #507, open). Each new wait would get the same event
at once, and the orchestration would loop on it forever; under load that happened to an
appointment whose customer joined while its execution was continuing as new. With a wait of
every name open at every yield, no event is ever deferred.

No lost events: the triggers commit each meeting event to the appointment's outbox in the same
Table transaction as their own write, then raise it. The orchestration acknowledges an event it
applied; in the phases that take trigger events it looks at the outbox every ``OUTBOX_POLL`` and
applies, in commit order, what never arrived (a trigger that died between its write and the raise).
Cancel and reschedule need no outbox: the record itself says so, and is read before every deadline.

Continue-as-new: after a reschedule (new times) and when the join window has opened (the
meeting's phases then replay only their own history, not the booking's weeks of timers). The
input carries the state (``LifecycleState.to_input``) and ``lifecycle.start`` resumes its phase
without recording or notifying again. Activity outcomes still queued (a failed meeting
creation) are decided before leaving, since no store holds them; anything else still queued,
and any event raised meanwhile, which the restart discards (the SDK cannot preserve unprocessed
events), is in the outbox or the record, which the new execution reads at its first episode.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskState

from activities.lifecycle import (
    apply_phase,
    create_meeting,
    delete_meeting,
    load_schedule,
    send_notification,
    subscribe_call_events,
    update_meeting,
)
from appointments import lifecycle
from appointments.call_events import CALL_EVENTS_UNAVAILABLE
from appointments.errors import IllegalTransition
from appointments.lifecycle import (
    EXTERNAL_EVENTS,
    TIMER_EVENTS,
    Action,
    ContinueAsNew,
    CreateMeeting,
    Decision,
    DeleteMeeting,
    Event,
    EventType,
    LifecycleState,
    MeetingAttention,
    MeetingFailed,
    Notify,
    RecordPhase,
    UpdateMeeting,
    event_from_payload,
)
from appointments.model import Phase
from appointments.timerules import iso

bp = df.Blueprint()
log = logging.getLogger(__name__)

# v2: record and notifications in one wait; v3: continue-as-new when the join window opens;
# v4: listens for events while it waits for activities (events heard meanwhile are decided in
# arrival order after the work, where v3 took them in name order at its next wait); v5: one
# ``apply_phase`` per decision (record, acknowledgement, notifications and look together).
LIFECYCLE_ORCHESTRATOR = "appointment_lifecycle_v5"
INSTANCE_PREFIX = "appt-"
OUTBOX_ID = "outboxId"  # the key of an external event's payload naming its outbox entry
OUTBOX_POLL = timedelta(minutes=2)
# The input's count of the executions before this one (each continue-as-new adds one). It is part
# of every notification key: ``new_guid`` derives a GUID from the instance id, the episode's time
# and a counter that starts again in each execution, so two executions whose episodes share a
# timestamp (a frozen or virtual clock) would derive the same keys, and the notifier would take
# the later execution's notifications for sent.
EXECUTION = "execution"
# Phases in which the triggers raise events (and so may have left one in the outbox).
POLLED_PHASES = frozenset().union(*(lifecycle.phases_accepting(e) for e in lifecycle.PREDICTABLE_EVENTS)) - {
    Phase.BOOKED
}
# Graph and Table Storage fail transiently (throttling, outages): retry, bounded. The Python
# SDK's RetryOptions carry only the first interval and the attempts (no backoff coefficient):
# 8 attempts 5 s apart ride out about 40 s; an adapter already retried 429s within each attempt.
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=8)

Work = Generator[Any, Any, Any]


@dataclass(frozen=True)
class Incoming:
    """An event to decide on, with the outbox entry it stands for (if any)."""

    event: Event
    entry: str | None = None
    polled: bool = False  # read from the outbox, not raised: acknowledged even if illegal now
    follow_up: bool = False  # an activity's outcome: held by no store, so decided before a restart
    deadline: bool = False  # a due timer, not yet checked against the record and the outbox


@dataclass(frozen=True)
class CarriedOut:
    """What carrying out a decision brought: the events its outcomes raise, what the look read,
    and whether a deadline's check found something missed (then nothing was done)."""

    follow_ups: list[Incoming]
    schedule: Any = None
    missed: bool = False


def instance_id(booking_code: str) -> str:
    return INSTANCE_PREFIX + booking_code


def _log(context: df.DurableOrchestrationContext, level: int, message: str, *args: object) -> None:
    if not context.is_replaying:
        log.log(level, message, *args)


class Ears:
    """One open wait per external event name, and the events heard while waiting for other work."""

    def __init__(self, context: df.DurableOrchestrationContext) -> None:
        self.context = context
        self.waits: dict[EventType, Any] = {
            name: context.wait_for_external_event(name.value) for name in EXTERNAL_EVENTS
        }
        self.heard: list[Incoming] = []

    def take(self, winner: Any) -> list[Incoming]:
        """The event of the completed wait ``winner``; a new wait of its name takes its place."""
        name = next(n for n, task in self.waits.items() if task is winner)
        self.waits[name] = self.context.wait_for_external_event(name.value)
        payload = _event_data(winner.result)
        try:
            event = event_from_payload(name.value, payload, self.context.current_utc_datetime)
        except (KeyError, ValueError, TypeError):
            _log(
                self.context,
                logging.WARNING,
                "ignoring malformed %s event for %s",
                name.value,
                self.context.instance_id,
            )
            return []
        entry = payload.get(OUTBOX_ID) if isinstance(payload, dict) else None
        return [Incoming(event, str(entry) if entry else None)]

    def drain(self) -> list[Incoming]:
        heard, self.heard = self.heard, []
        return heard


def _listening(context: df.DurableOrchestrationContext, task: Any, ears: Ears) -> Work:
    """``yield task``, with every event name's wait open meanwhile (see the module: an event must
    never arrive while no wait of its name is open). Returns the task's result or raises its error."""
    while True:
        winner = yield context.task_any([task, *ears.waits.values()])
        if winner is task:
            break
        ears.heard += ears.take(winner)
    if task.state is TaskState.FAILED:
        raise task.result
    return task.result


def _carry_out(
    context: df.DurableOrchestrationContext,
    ears: Ears,
    before: LifecycleState,
    decision: Decision,
    ack: tuple[str, ...] = (),
    *,
    execution: int,
    look: bool = False,
    guard: dict[str, Any] | None = None,
) -> Generator[Any, Any, CarriedOut]:
    """Carry out the decision's actions; returns the events their outcomes raise, and with
    ``look`` what ``load_schedule`` returns (read in the same activity).

    ``guard`` (a due deadline's decision, see ``_deadline_guard``): the decision's first activity
    first checks the record and the outbox, as ``_reconcile`` would, and does nothing if they
    show something missed; then the result says ``missed``, with what it read.

    The meeting steps run first, one after the other, in the decision's order (``decide`` puts
    them before the phase: the record never says join_open before the join link exists). Then one
    ``apply_phase`` does the rest: the phase's record, the acknowledgement of the outbox entries
    that led here (``ack``), the notifications and the look. A record that fails past its retries
    fails the orchestration (ops rewind it), as before; a notification whose mail failed is retried
    on its own (``_retry_notifications``) and, failing past its retries, logged.
    """
    code = decision.state.booking_code
    follow_ups: list[Incoming] = []
    record: RecordPhase | None = None
    notifications: list[dict[str, Any]] = []
    for action in decision.actions:
        match action:
            case CreateMeeting():
                request: dict[str, Any] = {"bookingCode": code}
                if guard is not None:
                    request["guard"], guard = guard, None
                try:
                    result = yield from _listening(
                        context, context.call_activity_with_retry(create_meeting, RETRY, request), ears
                    )
                except Exception as err:  # Graph down past every retry: the appointment goes on
                    _log(context, logging.ERROR, "create_meeting failed for %s: %s", context.instance_id, err)
                    result = {"ok": False, "reason": "meeting_creation_failed"}
                if result.get("missed"):
                    return CarriedOut([], result.get("schedule"), missed=True)
                if result.get("ok") and result.get("subscribe"):  # the meeting stands, unsubscribed
                    result = yield from _subscribe(context, ears, code)
                now = context.current_utc_datetime
                if not result.get("ok"):
                    reason = str(result.get("reason") or "meeting_creation_failed")
                    follow_ups.append(Incoming(MeetingFailed(now, reason), follow_up=True))
                elif result.get("attention"):  # it exists, but e.g. Graph refused its call events
                    attention = MeetingAttention(now, str(result["attention"]))
                    follow_ups.append(Incoming(attention, follow_up=True))
            case RecordPhase():
                record = action
            case UpdateMeeting() | DeleteMeeting():
                yield from _meeting_change(context, ears, code, action)
            case Notify():
                notifications.append(_notify_payload(context, code, before, action, execution))
            case ContinueAsNew():
                pass  # the loop's one exit carries it out, after the notifications
    payload: dict[str, Any] = {"bookingCode": code}
    if record is not None:
        payload["record"] = _record_payload(record)
    if ack:
        payload["ack"] = list(ack)
    if notifications:
        payload["notifications"] = notifications
    if len(payload) == 1:  # nothing to apply: at most a look
        assert guard is None, "a guarded decision has work to carry the check"
        _set_status(context, before, decision)
        schedule = (yield from _listening(context, _load(context, before), ears)) if look else None
        return CarriedOut(follow_ups, schedule)
    if look:
        payload["look"] = True
    if guard is not None:
        payload["guard"] = guard
    _set_status(context, before, decision)
    task = context.call_activity_with_retry(apply_phase, RETRY, payload)
    applied = yield from _listening(context, task, ears)
    if applied.get("missed"):
        context.set_custom_status(before.custom_status())  # nothing was done
        return CarriedOut([], applied.get("schedule"), missed=True)
    failed = set(applied.get("failed") or ())
    if failed:
        yield from _retry_notifications(context, ears, [n for n in notifications if n["key"] in failed])
    return CarriedOut(follow_ups, applied.get("schedule"))


def _set_status(context: df.DurableOrchestrationContext, before: LifecycleState, decision: Decision) -> None:
    if decision.state != before:  # e.g. a new code's expiry, with or without a new phase
        context.set_custom_status(decision.state.custom_status())


def _deadline_guard(state: LifecycleState, decision: Decision) -> dict[str, Any] | None:
    """What a due deadline's decision asks its first activity to check before acting: the state's
    phase and revision, and whether that phase takes trigger events (then the outbox is read too).
    None when no activity of the decision can carry the check: it has none, or a meeting change
    other than creating the meeting comes first (then the orchestrator looks first instead)."""
    steps = [a for a in decision.actions if not isinstance(a, ContinueAsNew)]
    meeting = [a for a in steps if isinstance(a, CreateMeeting | UpdateMeeting | DeleteMeeting)]
    if not steps or (meeting and not isinstance(meeting[0], CreateMeeting)):
        return None
    return {"phase": state.phase.value, "revision": state.revision, "outbox": state.phase in POLLED_PHASES}


def _retry_notifications(
    context: df.DurableOrchestrationContext, ears: Ears, notifications: list[dict[str, Any]]
) -> Work:
    """Send again, each on its own with Durable's retries, the notifications whose mail failed in
    ``apply_phase``: after the retry interval (the notifier's Sent Items check on a retry counts on
    a few seconds having passed), all at once, waiting for every one. One that still fails is
    logged: a notification that cannot be sent must not stop the appointment."""
    pause = timedelta(milliseconds=RETRY.first_retry_interval_in_milliseconds)
    yield from _listening(context, context.create_timer(context.current_utc_datetime + pause), ears)
    tasks = [context.call_activity_with_retry(send_notification, RETRY, n) for n in notifications]
    yield from _settle(context, ears, tasks)
    failed = [task.result for task in tasks if task.state is TaskState.FAILED]
    if failed:
        _log(
            context,
            logging.ERROR,
            "%d notification(s) failed for %s after retries: %s",
            len(failed),
            context.instance_id,
            failed[0],
        )


def _settle(context: df.DurableOrchestrationContext, ears: Ears, tasks: list[Any]) -> Work:
    """Wait until every task has finished, succeeded or failed (``task_all`` stops at the first
    failure, while the others still run). Replays the same: it only reads the tasks' states."""
    pending = tasks
    while pending:
        with contextlib.suppress(Exception):  # each task's failure is read from its state by the caller
            yield from _listening(context, context.task_all(pending), ears)
        pending = [task for task in pending if not task.is_completed]


def _record_payload(action: RecordPhase) -> dict[str, Any]:
    return {
        "phase": action.phase.value,
        "since": iso(action.since),
        "revision": action.revision,
        "attention": action.attention,
    }


def _notify_payload(
    context: df.DurableOrchestrationContext,
    code: str,
    before: LifecycleState,
    action: Notify,
    execution: int,
) -> dict[str, Any]:
    return {
        "bookingCode": code,
        "kind": action.kind.value,
        "recipient": action.recipient.value,
        # Replay-safe and unique per notification (and execution): the activity sends each key once.
        "key": f"{code}/{execution}/{context.new_guid()}",
        "previousStart": iso(before.start),
        "previousEnd": iso(before.end),
        "reminder": action.reminder.value if action.reminder else None,
    }


def _meeting_change(context: df.DurableOrchestrationContext, ears: Ears, code: str, action: Action) -> Work:
    payload: dict[str, Any] = {"bookingCode": code}
    activity = delete_meeting
    if isinstance(action, UpdateMeeting):
        activity = update_meeting
        payload |= {"start": iso(action.start), "end": iso(action.end)}
    try:
        yield from _listening(context, context.call_activity_with_retry(activity, RETRY, payload), ears)
    except Exception as err:  # retries exhausted: the appointment goes on; ops see the log
        _log(context, logging.ERROR, "%s failed for %s after retries: %s", activity, context.instance_id, err)


def _subscribe(context: df.DurableOrchestrationContext, ears: Ears, code: str) -> Work:
    """Subscribe to a created meeting's call events after ``create_meeting`` could not (Graph
    failed transiently). Past its retries the meeting still works, without Teams' call-ended
    (the expert's End and the timers close it): the attention ``call_events_unavailable``."""
    task = context.call_activity_with_retry(subscribe_call_events, RETRY, {"bookingCode": code})
    try:
        return (yield from _listening(context, task, ears))
    except Exception as err:
        _log(context, logging.ERROR, "subscribe_call_events failed for %s: %s", context.instance_id, err)
        return {"ok": True, "attention": CALL_EVENTS_UNAVAILABLE}


def _load(context: df.DurableOrchestrationContext, state: LifecycleState) -> Any:
    """Schedule ``load_schedule``: the record and the outbox's pending entries (see ``_missed``)."""
    return context.call_activity_with_retry(load_schedule, RETRY, {"bookingCode": state.booking_code})


def _reconcile(context: df.DurableOrchestrationContext, ears: Ears, state: LifecycleState) -> Work:
    """Catch up with what the record and the outbox say (``_missed``)."""
    record = yield from _listening(context, _load(context, state), ears)
    return _missed(context, state, record)


def _missed(context: df.DurableOrchestrationContext, state: LifecycleState, record: Any) -> list[Incoming]:
    """The events the lifecycle missed, from ``load_schedule``'s answer (``lifecycle.missed``).

    The record is the customer's truth for times and cancellation (an event lost by a crashed
    client, or one that arrived while the orchestration continued as new); the outbox holds the
    meeting events a trigger committed but may never have raised.
    """
    found = lifecycle.missed(record, state.phase, state.revision, context.current_utc_datetime)
    if found.malformed:
        _log(context, logging.WARNING, "ignoring a malformed outbox entry for %s", context.instance_id)
    return [Incoming(event, entry, polled=entry is not None) for event, entry in found.events]


def _event_data(raw: Any) -> Any:
    """A raised event's data. The host parses a raised event's body once, and the SDK client
    json.dumps the data before posting it as JSON, so a dict arrives as its JSON text (as on Azure)."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return None
    return raw


def _next_events(context: df.DurableOrchestrationContext, state: LifecycleState, ears: Ears) -> Work:
    """Wait for the next timer or external event; returns the events it brings (with any heard
    meanwhile)."""
    deadline = lifecycle.next_deadline(state)
    now = context.current_utc_datetime
    wake = deadline[0] if deadline else None
    if state.phase in POLLED_PHASES:
        wake = min(wake, now + OUTBOX_POLL) if wake else now + OUTBOX_POLL
    timer = context.create_timer(wake) if wake is not None else None
    winner = yield context.task_any([*ears.waits.values(), *([timer] if timer is not None else [])])
    now = context.current_utc_datetime
    if timer is not None and winner is timer:
        if deadline is not None and now >= deadline[0]:
            # The deadline has come, whether this was its timer or a poll that woke late: act on
            # it now, rather than set a timer in the past. Its decision's first activity checks
            # first that nothing was missed (``_deadline_guard``).
            return [Incoming(TIMER_EVENTS[deadline[1]](now), deadline=True)]
        # A poll: make sure nothing was missed.
        missed: list[Incoming] = yield from _reconcile(context, ears, state)
        return missed + ears.drain()
    if timer is not None and not timer.is_completed:
        timer.cancel()
    return ears.take(winner)


@bp.function_name(LIFECYCLE_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context")
def appointment_lifecycle(context: df.DurableOrchestrationContext) -> Work:
    data = context.get_input()
    execution = int(data.get(EXECUTION, 0))
    state = LifecycleState.from_input(data)
    decision = lifecycle.start(state, context.current_utc_datetime)
    # A new execution has no custom status of its own yet, also when it resumes a phase.
    context.set_custom_status(decision.state.custom_status())
    # The first look at the record and the outbox goes along with the first phase and the
    # confirmations: recording ``booked`` changes nothing that look reads (it never overwrites
    # a cancellation or a newer revision). An execution that continued as new finds there
    # whatever the previous one left undone or was raised while it restarted.
    # One pending wait per event name, open from the first yield on, kept across iterations and
    # renewed only once consumed: events that arrive in the same batch as the winner stay
    # completed and win next time.
    ears = Ears(context)
    first = yield from _carry_out(context, ears, state, decision, execution=execution, look=True)
    queue = first.follow_ups
    state = decision.state
    queue += _missed(context, state, first.schedule)
    queue += ears.drain()
    restart: ContinueAsNew | None = None
    while not state.phase.is_terminal:
        if restart is not None:
            # Before leaving, the activity outcomes that no store holds (MeetingFailed,
            # MeetingAttention); the rest is in the outbox or the record for the new execution.
            queue = [incoming for incoming in queue if incoming.follow_up]
            if not queue:
                break
        elif not queue:
            queue += yield from _next_events(context, state, ears)
            continue
        incoming = queue.pop(0)
        try:
            decision = lifecycle.decide(state, incoming.event)
        except (IllegalTransition, ValueError) as err:
            _log(
                context, logging.INFO, "ignoring %s for %s: %s", incoming.event.type, context.instance_id, err
            )
            decision = lifecycle.refused(state, incoming.event)
            # A raised event that comes too early (its predecessor is still in the outbox) stays
            # there for the next poll, which applies the entries in commit order.
            if not incoming.polled:
                incoming = Incoming(incoming.event)
        # Applied (or moot): the outbox need not deliver it again; acknowledged with the phase.
        ack = (incoming.entry,) if incoming.entry is not None else ()
        guard = _deadline_guard(state, decision) if incoming.deadline else None
        if incoming.deadline and guard is None:  # nothing to carry the check: look first
            missed = yield from _reconcile(context, ears, state)
            if missed:
                queue += missed + ears.drain()
                continue  # the deadline comes back (already due) once these are decided
        done = yield from _carry_out(context, ears, state, decision, ack, execution=execution, guard=guard)
        if done.missed:  # nothing was done: decide what was missed first
            queue += _missed(context, state, done.schedule) + ears.drain()
            continue
        queue += done.follow_ups
        queue += ears.drain()
        state = decision.state
        restart = restart or decision.continue_as_new
    if restart is not None and not state.phase.is_terminal:
        context.continue_as_new({**state.to_input(), EXECUTION: execution + 1})
        return None
    return {"phase": state.phase.value}
