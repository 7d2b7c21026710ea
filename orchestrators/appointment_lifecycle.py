"""One orchestration per appointment: ``appt-<bookingCode>`` (DESIGN §3).

The orchestrator is deterministic and thin. It asks the domain which timer to set
(``next_deadline``), waits for that timer or any external event, turns the winner into
a domain ``Event``, lets ``decide`` rule, and carries out the returned actions through
activities. Illegal events (a race the HTTP gate could not see) are ignored, never fatal.

Long waits: a Python durable timer may wait at most 6 days on the Azure Storage
provider, so a wait is cut into legs of at most ``MAX_TIMER`` and the loop simply
waits again until the real deadline.

Events: every phase waits for *every* external event, with one wait per name that
lives until its event is consumed. Two events delivered in one batch therefore both
count (the second wins the next round), and an event that is illegal in the current
phase is consumed and ignored instead of lingering in the SDK's buffer until a later
phase would take it out of context.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from activities.lifecycle import (
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
    ActionType,
    Decision,
    Event,
    EventType,
    LifecycleState,
)
from appointments.timerules import iso, parse_utc

bp = df.Blueprint()
log = logging.getLogger(__name__)

LIFECYCLE_ORCHESTRATOR = "appointment_lifecycle"
INSTANCE_PREFIX = "appt-"
MAX_TIMER = timedelta(days=3)
# Graph and Table Storage fail transiently (throttling, outages): retry, bounded. The Python
# SDK's RetryOptions carry only the first interval and the attempts (no backoff coefficient):
# 8 attempts 5 s apart ride out about 40 s; an adapter already retried 429s within each attempt.
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=8)


def instance_id(booking_code: str) -> str:
    return INSTANCE_PREFIX + booking_code


Work = Generator[Any, Any, Any]


def _event_from(name: str, payload: Any, at: Any) -> Event:
    if isinstance(payload, str):
        # The host parses a raised event's body once, and the SDK client json.dumps the data
        # before posting it as JSON, so a dict arrives as its JSON text (as on Azure).
        try:
            payload = json.loads(payload)
        except ValueError:
            payload = None
    data = payload if isinstance(payload, dict) else {}
    event_type = EventType(name)
    start = parse_utc(data["start"]) if data.get("start") else None
    end = parse_utc(data["end"]) if data.get("end") else None
    expires = parse_utc(data["expiresAt"]) if data.get("expiresAt") else None
    revision = int(data["revision"]) if data.get("revision") is not None else None
    occurred = parse_utc(data["occurredAt"]) if data.get("occurredAt") else None
    return Event(
        event_type,
        at=at,
        start=start,
        end=end,
        expires_at=expires,
        revision=revision,
        reason=data.get("source"),
        occurred_at=occurred,
    )


def _carry_out(context: df.DurableOrchestrationContext, before: LifecycleState, decision: Decision) -> Work:
    """Run the decision's actions; returns the state to continue with."""
    state = decision.state
    code = state.booking_code
    actions = list(decision.actions)

    # The meeting first: once the record says join_open, the join link must exist.
    for action in [a for a in actions if a.type is ActionType.CREATE_MEETING]:
        actions.remove(action)
        result = yield context.call_activity_with_retry(create_meeting, RETRY, {"bookingCode": code})
        if not result.get("ok"):
            failed = lifecycle.decide(
                state,
                Event(
                    EventType.MEETING_FAILED,
                    at=context.current_utc_datetime,
                    reason=result.get("reason", "meeting_creation_failed"),
                ),
            )
            state = failed.state
            actions += list(failed.actions)
        elif result.get("attention"):  # the meeting exists, but e.g. Graph refused its call events
            state = replace(state, attention=result["attention"])

    if state.phase is not before.phase or state.attention != before.attention or before.since is None:
        context.set_custom_status(state.custom_status())
        yield context.call_activity_with_retry(
            record_phase,
            RETRY,
            {
                "bookingCode": code,
                "phase": state.phase.value,
                "since": iso(state.since or context.current_utc_datetime),
                "revision": state.revision,
                "attention": state.attention,
            },
        )

    notifications = []
    for action in actions:
        if action.type in (ActionType.UPDATE_MEETING, ActionType.DELETE_MEETING):
            activity, payload = (delete_meeting, {"bookingCode": code})
            if action.type is ActionType.UPDATE_MEETING:
                assert action.start and action.end
                activity, payload = (
                    update_meeting,
                    {**payload, "start": iso(action.start), "end": iso(action.end)},
                )
            try:
                yield context.call_activity_with_retry(activity, RETRY, payload)
            except Exception as err:  # retries exhausted: the appointment goes on; ops see the log
                if not context.is_replaying:
                    log.error(
                        "%s failed for %s after retries: %s", action.type.value, context.instance_id, err
                    )
        elif action.type is ActionType.NOTIFY:
            assert action.kind and action.recipient
            notifications.append(
                context.call_activity_with_retry(
                    send_notification,
                    RETRY,
                    {
                        "bookingCode": code,
                        "kind": action.kind,
                        "recipient": action.recipient.value,
                        # Replay-safe and unique per notification: the activity sends each key once.
                        "key": f"{code}/{context.new_guid()}",
                        "previousStart": iso(before.start),
                        "previousEnd": iso(before.end),
                        "reminder": action.reminder.value if action.reminder else None,
                    },
                )
            )
    if notifications:
        try:
            yield context.task_all(notifications)
        except Exception as err:  # a notification that cannot be sent must not stop the appointment
            if not context.is_replaying:
                log.error("a notification failed for %s after retries: %s", context.instance_id, err)
    return state


def _reconcile(context: df.DurableOrchestrationContext, state: LifecycleState) -> Work:
    """Compare with the Appointments record; returns the event the lifecycle missed, if any.

    Events can be lost: a client that crashed between writing the record and raising the
    event, or an event that arrived while the orchestration continued as new. The record
    is the customer's truth for times and cancellation, so the lifecycle catches up.
    """
    record = yield context.call_activity_with_retry(load_schedule, RETRY, {"bookingCode": state.booking_code})
    now = context.current_utc_datetime
    if record is None:
        return None
    if record["phase"] == "cancelled" and not state.phase.is_terminal:
        return Event(EventType.CANCELLED, at=now)
    if int(record["revision"]) > state.revision:
        return Event(
            EventType.RESCHEDULED,
            at=now,
            start=parse_utc(record["start"]),
            end=parse_utc(record["end"]),
            revision=int(record["revision"]),
        )
    return None


@bp.function_name(LIFECYCLE_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context")
def appointment_lifecycle(context: df.DurableOrchestrationContext) -> Work:
    initial = LifecycleState.from_input(context.get_input())
    started = lifecycle.start(initial, context.current_utc_datetime)
    state = yield from _carry_out(context, initial, started)
    missed = yield from _reconcile(context, state)

    # One pending wait per event name, kept across iterations and renewed only once consumed:
    # events that arrive in the same batch as the winner stay completed and win next time.
    waits = {name: context.wait_for_external_event(name.value) for name in EXTERNAL_EVENTS}
    while not state.phase.is_terminal:
        if missed is not None:
            event, missed = missed, None
            decision = lifecycle.decide(state, event)
            state = yield from _carry_out(context, state, decision)
            if any(a.type is ActionType.CONTINUE_AS_NEW for a in decision.actions):
                context.continue_as_new(state.to_input())
                return None
            continue
        deadline = lifecycle.next_deadline(state)
        tasks = list(waits.values())
        timer = None
        if deadline is not None:
            leg_end = min(deadline[0], context.current_utc_datetime + MAX_TIMER)
            timer = context.create_timer(leg_end)
            tasks.append(timer)
        winner = yield context.task_any(tasks)
        now = context.current_utc_datetime
        if timer is not None and winner is timer:
            assert deadline is not None
            if leg_end < deadline[0]:
                continue  # one leg of a long wait is over; wait again
            # Before acting on a deadline, make sure it is still the right one.
            missed = yield from _reconcile(context, state)
            if missed is not None:
                continue
            reminder = state.reminders_due()[0][1].value if deadline[1] is EventType.REMINDER_DUE else None
            event = Event(deadline[1], at=now, reason=reminder)
        else:
            if timer is not None and not timer.is_completed:
                timer.cancel()
            name = next(n for n, task in waits.items() if task is winner)
            waits[name] = context.wait_for_external_event(name.value)
            try:
                event = _event_from(name.value, winner.result, now)
            except (KeyError, ValueError, TypeError):
                if not context.is_replaying:
                    log.warning("ignoring malformed %s event for %s", name.value, context.instance_id)
                continue
        try:
            decision = lifecycle.decide(state, event)
        except (IllegalTransition, ValueError) as err:
            if not context.is_replaying:
                log.info("ignoring %s for %s: %s", event.type.value, context.instance_id, err)
            continue
        before = state
        state = yield from _carry_out(context, before, decision)
        if any(a.type is ActionType.CONTINUE_AS_NEW for a in decision.actions):
            context.continue_as_new(state.to_input())
            return None
    return {"phase": state.phase.value}
