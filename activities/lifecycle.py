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
from adapters.telemetry import traced_activity
from appointments.catalogue import topic_label
from appointments.model import Phase
from appointments.ports import MeetingRequest, PermanentGatewayError
from appointments.timerules import iso, parse_utc

bp = df.Blueprint()

# The Python worker accepts a binding parameter's annotation only when it is a class or a
# ``typing`` generic: PEP 585's ``dict[str, Any]`` is refused at load ("binding payload has
# invalid non-type annotation"), which stops the whole app. ``typing.Dict`` passes.
Payload = typing.Dict[str, Any]  # noqa: UP006 - see above: the worker refuses dict[str, Any]
log = logging.getLogger(__name__)


@bp.activity_trigger(input_name="payload")
@traced_activity
def record_phase(payload: Payload) -> None:
    """Write the orchestration's phase to the Appointments record (portal reads never ask Durable),
    and acknowledge the outbox entries (``ack``) whose event led to it.

    One activity for both, so that an applied trigger event costs one activity, not two. They
    cannot share a Table transaction: the record lives in the customer's ``Appointments``
    partition, the outbox in the booking's ``MeetingState`` partition. Both writes are
    idempotent, and a record that already says the phase is not written again.
    """
    code = payload["bookingCode"]
    log.info("phase of %s: %s", code, payload["phase"])  # the phase change, for ops
    try:
        bootstrap.services().repo.set_phase(
            code,
            Phase(payload["phase"]),
            parse_utc(payload["since"]),
            revision=payload.get("revision"),
            attention=payload.get("attention"),
        )
    except KeyError:  # the record is gone (erased): nothing to keep in step
        log.warning("no record for %s; phase %s not written", code, payload["phase"])
    if payload.get("ack"):
        bootstrap.services().appointments.outbox.ack(code, list(payload["ack"]))


@bp.activity_trigger(input_name="payload")
@traced_activity
def load_schedule(payload: Payload) -> dict[str, Any] | None:
    """The record's times, revision and phase, and the outbox's pending events (commit order):
    lets the lifecycle heal from an event that never came."""
    services = bootstrap.services()
    a = services.repo.get_by_code(payload["bookingCode"])
    if a is None:
        return None
    pending = [
        {"id": e.entry_id, "event": e.event, "payload": e.payload}
        for e in services.appointments.outbox.pending(a.booking_code)
    ]
    return {
        "start": iso(a.start),
        "end": iso(a.end),
        "revision": a.revision,
        "phase": a.phase.value,
        "pending": pending,
    }


@bp.activity_trigger(input_name="payload")
def ack_events(payload: Payload) -> None:
    """The orchestration has applied these outbox entries: forget them (idempotent). Only for an
    event that records no phase; otherwise ``record_phase`` acknowledges it."""
    bootstrap.services().appointments.outbox.ack(payload["bookingCode"], list(payload["ids"]))


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
    attention = await bootstrap.call_events().subscribe(a, meeting)
    result: dict[str, Any] = {"ok": True, "meetingId": meeting.meeting_id, "created": meeting.created}
    if attention:
        result["attention"] = attention
    return result


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
    """Render and send one notification, once per key (a retried activity sends nothing twice)."""
    previous = parse_utc(payload["previousStart"]) if payload.get("previousStart") else None
    previous_end = parse_utc(payload["previousEnd"]) if payload.get("previousEnd") else None
    sent = await bootstrap.notifier().send(
        booking_code=payload["bookingCode"],
        kind=payload["kind"],
        recipient=payload["recipient"],
        key=payload["key"],
        previous_start=previous,
        previous_end=previous_end,
        reminder=payload.get("reminder"),
    )
    return {"sent": sent}
