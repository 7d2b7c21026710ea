"""Activities of the appointment lifecycle. Each is idempotent: Durable may run it again.

They receive booking codes, never personal data, and look up what they need.
"""

from __future__ import annotations

import asyncio
import logging
import typing
from typing import Any

import azure.durable_functions as df

import bootstrap
from adapters.notifier import SENT, Request
from adapters.telemetry import traced_activity
from appointments import lifecycle
from appointments.catalogue import topic_label
from appointments.model import Appointment, Phase
from appointments.ports import MeetingRequest, PermanentGatewayError, TransientGatewayError
from appointments.timerules import iso, parse_utc

bp = df.Blueprint()

# The Python worker accepts a binding parameter's annotation only when it is a class or a
# ``typing`` generic: PEP 585's ``dict[str, Any]`` is refused at load ("binding payload has
# invalid non-type annotation"), which stops the whole app. ``typing.Dict`` passes.
Payload = typing.Dict[str, Any]  # noqa: UP006 - see above: the worker refuses dict[str, Any]
log = logging.getLogger(__name__)


@bp.activity_trigger(input_name="payload")
@traced_activity
async def apply_phase(payload: Payload) -> dict[str, Any]:
    """What one decision leaves to do on storage, in one activity: write the orchestration's phase
    to the Appointments record (``record``: portal reads never ask Durable), acknowledge the outbox
    entries whose event led to it (``ack``), send its notifications (``notifications``, each once
    per key), and with ``look`` return what ``load_schedule`` returns.

    One activity instead of one per part: each activity costs the orchestration an episode and a
    replay of its history, and the parts share one read of the record. Every part is idempotent,
    so Durable may run it all again: the record is not written again when it already says the
    phase, and a notification whose key was sent is skipped. A failed storage write raises (and
    Durable retries); a failed mail does not stop the others and is returned in ``failed`` (its
    key), for the orchestration to retry on its own.
    """
    services = bootstrap.services()
    code = payload["bookingCode"]
    a = await asyncio.to_thread(services.repo.get_by_code, code)
    missed = await _missed_since(payload.get("guard"), a)
    if missed is not None:
        return missed
    record = payload.get("record")
    if record is not None:
        log.info("phase of %s: %s", code, record["phase"])  # the phase change, for ops
        if a is None:  # the record is gone (erased): nothing to keep in step
            log.warning("no record for %s; phase %s not written", code, record["phase"])
        else:
            a = await asyncio.to_thread(
                services.repo.set_phase,
                code,
                Phase(record["phase"]),
                parse_utc(record["since"]),
                revision=record.get("revision"),
                attention=record.get("attention"),
                current=a,
            )
    if payload.get("ack"):
        await asyncio.to_thread(services.appointments.outbox.ack, code, list(payload["ack"]))
    failed: list[str] = []
    requests = [_notify_request(n) for n in payload.get("notifications") or ()]
    if requests and a is not None:
        outcomes = await bootstrap.notifier().deliver(code, requests, a)
        for key, outcome in outcomes.items():
            if isinstance(outcome, Exception):
                log.warning("notification %s for %s failed: %s", key, code, outcome)
                failed.append(key)
    result: dict[str, Any] = {"failed": failed}
    if payload.get("look"):
        result["schedule"] = None if a is None else await asyncio.to_thread(_schedule, a)
    return result


async def _missed_since(guard: Payload | None, a: Appointment | None) -> dict[str, Any] | None:
    """A due deadline's check (``guard``: the lifecycle's phase and revision, and whether to read
    the outbox): if the record or the outbox shows what the lifecycle missed (``lifecycle.missed``,
    the orchestrator's own test), the answer that says so, with what was read; None to go on."""
    if guard is None or a is None:
        return None
    schedule = await asyncio.to_thread(_schedule, a, bool(guard.get("outbox")))
    now = bootstrap.services().clock.now()
    found = lifecycle.missed(schedule, Phase(guard["phase"]), int(guard["revision"]), now)
    if not found.events:
        return None
    log.info("deadline of %s not acted on: the record or the outbox shows what came first", a.booking_code)
    return {"missed": True, "schedule": schedule, "failed": []}


def _notify_request(payload: Payload) -> Request:
    return Request(
        kind=payload["kind"],
        recipient=payload["recipient"],
        key=payload["key"],
        previous_start=parse_utc(payload["previousStart"]) if payload.get("previousStart") else None,
        previous_end=parse_utc(payload["previousEnd"]) if payload.get("previousEnd") else None,
        reminder=payload.get("reminder"),
    )


def _schedule(a: Appointment, outbox: bool = True) -> dict[str, Any]:
    """The record's times, revision and phase, and the outbox's pending events (commit order;
    not read with ``outbox=False``, for a phase in which no trigger writes there)."""
    pending = [
        {"id": e.entry_id, "event": e.event, "payload": e.payload}
        for e in (bootstrap.services().appointments.outbox.pending(a.booking_code) if outbox else ())
    ]
    return {
        "start": iso(a.start),
        "end": iso(a.end),
        "revision": a.revision,
        "phase": a.phase.value,
        "pending": pending,
    }


@bp.activity_trigger(input_name="payload")
@traced_activity
def load_schedule(payload: Payload) -> dict[str, Any] | None:
    """The record's times, revision and phase, and the outbox's pending events (commit order):
    lets the lifecycle heal from an event that never came."""
    a = bootstrap.services().repo.get_by_code(payload["bookingCode"])
    return None if a is None else _schedule(a)


@bp.activity_trigger(input_name="payload")
@traced_activity
async def create_meeting(payload: Payload) -> dict[str, Any]:
    """createOrGet the Teams meeting (keyed by booking code), store its join link, subscribe
    to its call events.

    A transient failure raises, so Durable retries (every step is idempotent); a permanent
    one (a 4xx) never fails the lifecycle: a refused meeting returns ``ok: false`` with a
    reason, a refused subscription ``ok: true`` with an ``attention`` reason (the meeting
    works; only Teams' call-ended is missing, and End and the timers still close it).
    """
    services = bootstrap.services()
    code = payload["bookingCode"]
    a = await asyncio.to_thread(services.repo.get_by_code, code)
    missed = await _missed_since(payload.get("guard"), a)
    if missed is not None:
        return missed
    if a is None:
        return {"ok": False, "reason": "appointment_missing"}
    gateway = await bootstrap.meetings_ready()
    request = MeetingRequest(
        booking_code=code,
        organizer_id=a.expert_id,
        # The subject comes from the topic only: the customer's name never goes to Graph.
        subject=f"{topic_label(a.topic_id, a.language)} ({code})",
        start=a.start,
        end=a.end,
    )
    try:
        meeting = await gateway.create_or_get(request)
        if not meeting.created:
            # An existing meeting (a retry, or a reschedule since): make sure the times are current.
            await gateway.update_times(a.expert_id, meeting.meeting_id, a.start, a.end)
    except PermanentGatewayError as exc:
        log.error("creating the meeting for %s failed: %s", code, exc)
        return {"ok": False, "reason": "meeting_creation_failed"}
    await asyncio.to_thread(services.repo.set_meeting, code, meeting.meeting_id, meeting.join_url)
    result: dict[str, Any] = {"ok": True, "meetingId": meeting.meeting_id, "created": meeting.created}
    try:
        attention = await bootstrap.call_events().subscribe(a, meeting)
    except TransientGatewayError as exc:
        # The meeting stands and its link is stored: a retry of this whole activity would ask
        # Graph for the meeting again, each time with its own chance to fail. The lifecycle
        # subscribes on its own instead (``subscribe_call_events``, with its own retries).
        log.warning("subscribing to %s's call events failed, the lifecycle retries: %s", code, exc)
        result["subscribe"] = True
        return result
    if attention:
        result["attention"] = attention
    return result


@bp.activity_trigger(input_name="payload")
@traced_activity
async def subscribe_call_events(payload: Payload) -> dict[str, Any]:
    """Subscribe to the stored meeting's call events, when ``create_meeting`` could not (a
    transient failure raises, and Durable retries); ``attention`` when Graph refuses."""
    await bootstrap.meetings_ready()
    now = bootstrap.services().clock.now()
    outcome = await bootstrap.call_events().resubscribe(payload["bookingCode"], now)
    if outcome == "not needed":  # no meeting stored, or the appointment is over
        return {"ok": True, "skipped": True}
    return {"ok": True} if outcome == "recreated" else {"ok": True, "attention": outcome}


@bp.activity_trigger(input_name="payload")
@traced_activity
async def update_meeting(payload: Payload) -> dict[str, Any]:
    a = await asyncio.to_thread(bootstrap.services().repo.get_by_code, payload["bookingCode"])
    if a is None or not a.meeting_id:
        return {"ok": True, "skipped": True}
    try:
        await (await bootstrap.meetings_ready()).update_times(
            a.expert_id, a.meeting_id, parse_utc(payload["start"]), parse_utc(payload["end"])
        )
    except PermanentGatewayError as exc:
        log.error("updating the meeting for %s failed: %s", a.booking_code, exc)
        return {"ok": False, "reason": "meeting_update_failed"}
    return {"ok": True}


@bp.activity_trigger(input_name="payload")
@traced_activity
async def delete_meeting(payload: Payload) -> dict[str, Any]:
    a = await asyncio.to_thread(bootstrap.services().repo.get_by_code, payload["bookingCode"])
    if a is None or not a.meeting_id:
        return {"ok": True, "skipped": True}
    gateway = await bootstrap.meetings_ready()
    subscription_id = await asyncio.to_thread(bootstrap.services().repo.get_subscription, a.booking_code)
    if subscription_id:
        try:  # its notifications would only be refused from now on; a 404 (expired) is fine
            await gateway.delete_subscription(subscription_id)
        except PermanentGatewayError as exc:
            log.warning("deleting the call-event subscription for %s failed: %s", a.booking_code, exc)
    try:
        await gateway.delete(a.expert_id, a.meeting_id)
    except PermanentGatewayError as exc:
        log.error("deleting the meeting for %s failed: %s", a.booking_code, exc)
        return {"ok": False, "reason": "meeting_delete_failed"}
    return {"ok": True}


@bp.activity_trigger(input_name="payload")
@traced_activity
async def send_notification(payload: Payload) -> dict[str, Any]:
    """Send one notification, once per key: the retry of one that ``apply_phase`` reported failed
    (a failed mail raises, and Durable retries)."""
    r = _notify_request(payload)
    outcome = (await bootstrap.notifier().deliver(payload["bookingCode"], [r]))[r.key]
    if isinstance(outcome, Exception):
        raise outcome
    return {"sent": outcome is SENT}
