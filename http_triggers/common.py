"""What the triggers share: who is calling, the appointment's JSON view, delivering lifecycle events."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from functools import wraps
from typing import Any

import azure.durable_functions as df
import azure.functions as func

import bootstrap
from appointments.catalogue import CHANNEL_LABELS, TOPICS
from appointments.errors import DomainError, Forbidden, Unauthenticated
from appointments.lifecycle import PREDICTABLE_EVENTS, EventType, LifecycleState, Policy
from appointments.localtime import format_datetime, format_duration
from appointments.model import Appointment, Expert
from appointments.ports import OutboxEntry
from appointments.principal import Principal, parse_principal
from appointments.service import CommitsEvents
from appointments.timerules import iso
from orchestrators.appointment_lifecycle import LIFECYCLE_ORCHESTRATOR, OUTBOX_ID, instance_id

log = logging.getLogger(__name__)
PRINCIPAL_HEADER = "x-ms-client-principal"
RUNNING = (df.OrchestrationRuntimeStatus.Running, df.OrchestrationRuntimeStatus.Pending)


async def call[T](fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking domain/Table work off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def principal(req: func.HttpRequest) -> Principal:
    settings = bootstrap.services().settings
    return parse_principal(
        req.headers.get(PRINCIPAL_HEADER), trusted=settings.platform_auth_enabled or settings.dev_mode
    )


def signed_in_customer(req: func.HttpRequest) -> str | None:
    """The caller's customer id if a valid principal comes with the request, else None (no 401)."""
    try:
        return principal(req).user_id if req.headers.get(PRINCIPAL_HEADER) else None
    except Unauthenticated:
        return None


def customer(req: func.HttpRequest) -> Principal:
    return principal(req)


def booking_owner(req: func.HttpRequest, code: str) -> str:
    """The customer id to act as on booking ``code``: the signed-in customer, or, without a login,
    the owner of the one booking an ``X-Booking-Token`` from the lookup names. Blocking."""
    from appointments import manage_token
    from appointments.codes import normalize_booking_code
    from appointments.errors import NotFound

    token = req.headers.get(manage_token.HEADER)
    if req.headers.get(PRINCIPAL_HEADER) or not token:
        return customer(req).user_id
    s = bootstrap.services()
    allowed = manage_token.verify(token, s.settings.code_pepper.value, s.clock.now())
    if allowed is None:
        raise Unauthenticated("booking_link_expired")
    found = s.repo.get_by_code(allowed) if allowed == normalize_booking_code(code) else None
    if found is None:
        raise NotFound("appointment_not_found")
    return found.customer_id


def expert(req: func.HttpRequest) -> Principal:
    who = principal(req)
    if not who.is_expert:
        raise Forbidden("experts_only")
    return who


def appointment_view(a: Appointment, experts: dict[str, Expert] | None = None) -> dict[str, Any]:
    """The appointment as the portal shows it. The owner's own contact details are masked."""
    s = bootstrap.services()
    lang = a.language
    expert = (experts or {}).get(a.expert_id) or s.directory.get(a.expert_id)
    view: dict[str, Any] = {
        "bookingCode": a.booking_code,
        "channel": a.channel.value,
        "channelLabel": CHANNEL_LABELS[a.channel][lang],
        "topic": {"id": a.topic_id, "label": TOPICS[a.topic_id].label(lang)},
        "start": iso(a.start),
        "end": iso(a.end),
        "startLocal": format_datetime(a.start, lang),
        "durationMinutes": a.duration_minutes,
        "durationLabel": format_duration(a.duration_minutes, lang),
        "language": lang,
        "expert": {
            "id": a.expert_id,
            "displayName": expert.display_name if expert else None,
            "bank": expert.bank if expert else None,
        },
        "phase": a.phase.value,
        "phaseSince": iso(a.phase_since) if a.phase_since else None,
        "extraInfo": a.extra_info,
        "phone": a.phone[:4] + "*" * max(0, len(a.phone) - 6) + a.phone[-2:],
        "revision": a.revision,
    }
    if a.channel.value == "online":
        opens = s.appointments.join_window_opens_at(a)
        view["joinWindowOpensAt"] = iso(opens)
        view["joinWindowMinutes"] = s.settings.join_window_minutes
    view.update(s.appointments.capabilities(a).to_json())
    if a.channel.value == "online":  # deprecated: the same as capabilities.canJoin, while clients move
        view["canJoin"] = view["capabilities"]["canJoin"]
    if a.attention:
        view["attention"] = a.attention
    return view


def customer_calendar(a: Appointment) -> bytes:
    """The customer's calendar entry for ``a``, in the booking's language. Blocking."""
    from appointments.calendar import appointment_ics

    s = bootstrap.services()
    page = f"{s.settings.portal_base_url}/portal/#/appointments/{a.booking_code}"
    organizer = s.settings.graph_sender_mailbox or "noreply@invalid"
    return appointment_ics(
        booking_code=a.booking_code,
        start=a.start,
        end=a.end,
        summary=f"{TOPICS[a.topic_id].label(a.language)} ({a.booking_code})",
        description=f"{CHANNEL_LABELS[a.channel][a.language]}: {page}",
        url=page,
        organizer=organizer,
        attendee=a.email or organizer,
        sequence=a.revision,
        now=s.clock.now(),
        cancel=a.phase.value == "cancelled",
    )


def lifecycle_input(a: Appointment) -> dict[str, Any]:
    s = bootstrap.services().settings
    return LifecycleState(
        booking_code=a.booking_code,
        channel=a.channel,
        expert_id=a.expert_id,
        start=a.start,
        end=a.end,
        revision=a.revision,
        policy=Policy(s.join_window_minutes, s.end_grace_minutes),
    ).to_input()


async def ensure_lifecycle(client: df.DurableOrchestrationClient, a: Appointment) -> None:
    """Start the appointment's orchestration unless it runs (a replayed booking must not start two)."""
    iid = instance_id(a.booking_code)
    status = await client.get_status(iid)
    if status is not None and status.runtime_status is not None:
        return
    await client.start_new(LIFECYCLE_ORCHESTRATOR, iid, lifecycle_input(a))


async def deliver(
    client: df.DurableOrchestrationClient, appointment: Appointment, entries: Iterable[OutboxEntry]
) -> None:
    """Raise lifecycle events a use case has committed to the outbox, then write the predicted phase.

    A raise that fails is only logged: the entry stays in the outbox, and the orchestration applies
    it at its next look (see orchestrators/appointment_lifecycle.py). The answer to the caller
    therefore never depends on the raise.
    """
    services = bootstrap.services()
    for entry in entries:
        if services.settings.dev_mode and services.settings.crash_after_commit == entry.event:
            log.warning("DEV_CRASH_AFTER_COMMIT: exiting after committing %s", entry.event)
            os._exit(70)  # the fault the crash tests inject: no cleanup, no raise
        iid = instance_id(entry.booking_code)
        try:
            await client.raise_event(iid, entry.event, {**entry.payload, OUTBOX_ID: entry.entry_id})
        except Exception as exc:  # the client raises plain Exceptions (404 unknown, 410 finished, I/O)
            log.warning("could not raise %s on %s (the outbox keeps it): %s", entry.event, iid, exc)
            continue
        await call(services.appointments.advance_phase, appointment, EventType(entry.event))


async def run_use_case[R: CommitsEvents](
    client: df.DurableOrchestrationClient, fn: Callable[..., R], *args: Any
) -> R:
    """Run a blocking use case, then deliver the events it committed, also when it then refused."""
    try:
        result = await call(fn, *args)
    except DomainError as error:
        for entry in error.committed:
            assert isinstance(entry, OutboxEntry)
            services = bootstrap.services()
            found = await call(services.repo.get_by_code, entry.booking_code)
            if found is not None:
                await deliver(client, found, [entry])
        raise
    await deliver(client, result.appointment, result.events)
    return result


async def raise_lifecycle_event(
    client: df.DurableOrchestrationClient,
    booking_code: str,
    event: EventType,
    payload: dict[str, Any] | None = None,
) -> None:
    """Commit ``event`` to the outbox (meeting events) and raise it; cancel and reschedule need no
    outbox, as the record they changed is read before every deadline."""
    services = bootstrap.services()
    if event not in PREDICTABLE_EVENTS:
        try:
            await client.raise_event(instance_id(booking_code), event.value, payload or {})
        except Exception as exc:  # healed from the record
            log.warning("could not raise %s on %s: %s", event.value, instance_id(booking_code), exc)
        return
    found = await call(services.repo.get_by_code, booking_code)
    if found is None:
        return
    entry = OutboxEntry.new(booking_code, event.value, payload or {}, services.clock.now())
    await call(services.appointments.outbox.add, entry)
    await deliver(client, found, [entry])


Handler = Callable[..., Awaitable[func.HttpResponse]]


def no_store(fn: Handler) -> Handler:
    """Every answer of ``fn``, problems included, is marked ``Cache-Control: no-store``."""

    @wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> func.HttpResponse:
        response = await fn(*args, **kwargs)
        response.headers["Cache-Control"] = "no-store"
        return response

    return wrapper
