"""One orchestration per appointment: ``appt-<bookingCode>`` (docs/ARCHITECTURE.md, "Lifecycle").

The orchestrator is deterministic and thin: it waits for the next event (a timer, an external
event, an entry of the appointment's outbox, or the outcome of an activity), lets
``lifecycle.decide`` rule, and carries out the returned actions in order. It decides nothing.

Timers: ``create_timer`` on the V3 replay schema (which the host sends) is the SDK's
``LongTimerTask``: it cuts a wait longer than the storage provider's maximum into legs itself.

Events: every phase waits for *every* external event, with one wait per name that lives until
its event is consumed. Two events delivered in one batch therefore both count (the second wins
the next round), and an event that is illegal in the current phase is consumed and ignored.

No lost events: the triggers commit each meeting event to the appointment's outbox in the same
Table transaction as their own write, then raise it. The orchestration acknowledges an event it
applied; in the phases that take trigger events it looks at the outbox every ``OUTBOX_POLL`` and
applies, in commit order, what never arrived (a trigger that died between its write and the raise).
Cancel and reschedule need no outbox: the record itself says so, and is read before every deadline.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from activities.lifecycle import (
    ack_events,
    create_meeting,
    delete_meeting,
    load_schedule,
    record_phase,
    send_notification,
    update_meeting,
)
from appointments import lifecycle
from appointments.errors import IllegalTransition
from appointments.lifecycle import (
    EXTERNAL_EVENTS,
    TIMER_EVENTS,
    Action,
    Cancelled,
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
    Rescheduled,
    UpdateMeeting,
    event_from_payload,
)
from appointments.model import Phase
from appointments.timerules import iso, parse_utc

bp = df.Blueprint()
log = logging.getLogger(__name__)

LIFECYCLE_ORCHESTRATOR = "appointment_lifecycle"
INSTANCE_PREFIX = "appt-"
OUTBOX_ID = "outboxId"  # the key of an external event's payload naming its outbox entry
OUTBOX_POLL = timedelta(minutes=2)
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


def instance_id(booking_code: str) -> str:
    return INSTANCE_PREFIX + booking_code


def _log(context: df.DurableOrchestrationContext, level: int, message: str, *args: object) -> None:
    if not context.is_replaying:
        log.log(level, message, *args)


def _carry_out(context: df.DurableOrchestrationContext, before: LifecycleState, decision: Decision) -> Work:
    """Run the decision's actions in order; returns the events their outcomes raise."""
    code = decision.state.booking_code
    follow_ups: list[Incoming] = []
    notifications = []
    for action in decision.actions:
        match action:
            case CreateMeeting():
                try:
                    result = yield context.call_activity_with_retry(
                        create_meeting, RETRY, {"bookingCode": code}
                    )
                except Exception as err:  # Graph down past every retry: the appointment goes on
                    _log(context, logging.ERROR, "create_meeting failed for %s: %s", context.instance_id, err)
                    result = {"ok": False, "reason": "meeting_creation_failed"}
                now = context.current_utc_datetime
                if not result.get("ok"):
                    reason = str(result.get("reason") or "meeting_creation_failed")
                    follow_ups.append(Incoming(MeetingFailed(now, reason)))
                elif result.get("attention"):  # it exists, but e.g. Graph refused its call events
                    follow_ups.append(Incoming(MeetingAttention(now, str(result["attention"]))))
            case RecordPhase():
                context.set_custom_status(decision.state.custom_status())
                yield context.call_activity_with_retry(record_phase, RETRY, _record_payload(code, action))
            case UpdateMeeting() | DeleteMeeting():
                yield from _meeting_change(context, code, action)
            case Notify():
                notifications.append(
                    context.call_activity_with_retry(
                        send_notification, RETRY, _notify_payload(context, code, before, action)
                    )
                )
            case ContinueAsNew():
                pass  # the loop's one exit carries it out, after the notifications
    if notifications:
        try:
            yield context.task_all(notifications)
        except Exception as err:  # a notification that cannot be sent must not stop the appointment
            _log(
                context,
                logging.ERROR,
                "a notification failed for %s after retries: %s",
                context.instance_id,
                err,
            )
    return follow_ups


def _record_payload(code: str, action: RecordPhase) -> dict[str, Any]:
    return {
        "bookingCode": code,
        "phase": action.phase.value,
        "since": iso(action.since),
        "revision": action.revision,
        "attention": action.attention,
    }


def _notify_payload(
    context: df.DurableOrchestrationContext, code: str, before: LifecycleState, action: Notify
) -> dict[str, Any]:
    return {
        "bookingCode": code,
        "kind": action.kind.value,
        "recipient": action.recipient.value,
        # Replay-safe and unique per notification: the activity sends each key once.
        "key": f"{code}/{context.new_guid()}",
        "previousStart": iso(before.start),
        "previousEnd": iso(before.end),
        "reminder": action.reminder.value if action.reminder else None,
    }


def _meeting_change(context: df.DurableOrchestrationContext, code: str, action: Action) -> Work:
    payload: dict[str, Any] = {"bookingCode": code}
    activity = delete_meeting
    if isinstance(action, UpdateMeeting):
        activity = update_meeting
        payload |= {"start": iso(action.start), "end": iso(action.end)}
    try:
        yield context.call_activity_with_retry(activity, RETRY, payload)
    except Exception as err:  # retries exhausted: the appointment goes on; ops see the log
        _log(context, logging.ERROR, "%s failed for %s after retries: %s", activity, context.instance_id, err)


def _reconcile(context: df.DurableOrchestrationContext, state: LifecycleState) -> Work:
    """Catch up with what the record and the outbox say: the events the lifecycle missed.

    The record is the customer's truth for times and cancellation (an event lost by a crashed
    client, or one that arrived while the orchestration continued as new); the outbox holds the
    meeting events a trigger committed but may never have raised.
    """
    record = yield context.call_activity_with_retry(load_schedule, RETRY, {"bookingCode": state.booking_code})
    now = context.current_utc_datetime
    if record is None:
        return []
    missed: list[Incoming] = []
    if record["phase"] == Phase.CANCELLED.value and not state.phase.is_terminal:
        missed.append(Incoming(Cancelled(now)))
    elif int(record["revision"]) > state.revision:
        start, end = parse_utc(record["start"]), parse_utc(record["end"])
        missed.append(Incoming(Rescheduled(now, start, end, int(record["revision"]))))
    for entry in record.get("pending", []):
        try:
            event = event_from_payload(entry["event"], entry["payload"], now)
            missed.append(Incoming(event, str(entry["id"]), polled=True))
        except (KeyError, ValueError, TypeError):
            _log(context, logging.WARNING, "ignoring a malformed outbox entry for %s", context.instance_id)
    return missed


def _event_data(raw: Any) -> Any:
    """A raised event's data. The host parses a raised event's body once, and the SDK client
    json.dumps the data before posting it as JSON, so a dict arrives as its JSON text (as on Azure)."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return None
    return raw


def _next_events(
    context: df.DurableOrchestrationContext, state: LifecycleState, waits: dict[EventType, Any]
) -> Work:
    """Wait for the next timer or external event; returns the events it brings."""
    deadline = lifecycle.next_deadline(state)
    now = context.current_utc_datetime
    wake = deadline[0] if deadline else None
    if state.phase in POLLED_PHASES:
        wake = min(wake, now + OUTBOX_POLL) if wake else now + OUTBOX_POLL
    timer = context.create_timer(wake) if wake is not None else None
    winner = yield context.task_any([*waits.values(), *([timer] if timer is not None else [])])
    now = context.current_utc_datetime
    if timer is not None and winner is timer:
        # Before acting on a deadline (or on a poll), make sure nothing was missed.
        missed: list[Incoming] = yield from _reconcile(context, state)
        if missed or deadline is None or now < deadline[0]:
            return missed
        # The deadline has come, whether this was its timer or a poll that woke late: act on it
        # now, rather than set a timer in the past.
        return [Incoming(TIMER_EVENTS[deadline[1]](now))]
    if timer is not None and not timer.is_completed:
        timer.cancel()
    name = next(n for n, task in waits.items() if task is winner)
    waits[name] = context.wait_for_external_event(name.value)
    payload = _event_data(winner.result)
    try:
        event = event_from_payload(name.value, payload, now)
    except (KeyError, ValueError, TypeError):
        _log(context, logging.WARNING, "ignoring malformed %s event for %s", name.value, context.instance_id)
        return []
    entry = payload.get(OUTBOX_ID) if isinstance(payload, dict) else None
    return [Incoming(event, str(entry) if entry else None)]


@bp.function_name(LIFECYCLE_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context")
def appointment_lifecycle(context: df.DurableOrchestrationContext) -> Work:
    state = LifecycleState.from_input(context.get_input())
    decision = lifecycle.start(state, context.current_utc_datetime)
    queue: list[Incoming] = yield from _carry_out(context, state, decision)
    state = decision.state
    queue += yield from _reconcile(context, state)
    # One pending wait per event name, kept across iterations and renewed only once consumed:
    # events that arrive in the same batch as the winner stay completed and win next time.
    waits = {name: context.wait_for_external_event(name.value) for name in EXTERNAL_EVENTS}
    while not decision.is_done:
        if not queue:
            queue += yield from _next_events(context, state, waits)
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
        if incoming.entry is not None:  # applied (or moot): the outbox need not deliver it again
            yield context.call_activity_with_retry(
                ack_events, RETRY, {"bookingCode": state.booking_code, "ids": [incoming.entry]}
            )
        queue += yield from _carry_out(context, state, decision)
        state = decision.state
    if decision.continue_as_new is not None:
        context.continue_as_new(state.to_input())
        return None
    return {"phase": state.phase.value}
