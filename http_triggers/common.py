"""What the triggers share: who is calling, the appointment's JSON view, the lifecycle's instance."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import azure.durable_functions as df
import azure.functions as func

import bootstrap
from appointments.catalogue import CHANNEL_LABELS, TOPICS
from appointments.errors import Forbidden, Unauthenticated
from appointments.lifecycle import EventType, LifecycleState, Policy
from appointments.localtime import format_datetime, format_duration
from appointments.model import Appointment, Expert, Phase
from appointments.principal import Principal, parse_principal
from appointments.timerules import iso
from orchestrators.appointment_lifecycle import LIFECYCLE_ORCHESTRATOR, instance_id

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
    expert = (experts or {}).get(a.expert_id) or s.repo.get_expert(a.expert_id)
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
        "expert": {"id": a.expert_id, "displayName": expert.display_name if expert else None},
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
        view["canJoin"] = (
            not a.phase.is_terminal
            and s.clock.now() >= opens
            and s.clock.now() < a.end + s.settings.end_grace
        )
    if a.attention:
        view["attention"] = a.attention
    return view


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


# What the record may say when each event is raised, and the phase the event leads to.
OPTIMISTIC: dict[EventType, tuple[frozenset[Phase], Phase]] = {
    EventType.CUSTOMER_JOINED: (frozenset({Phase.JOIN_OPEN}), Phase.LOBBY),
    EventType.CODE_ISSUED: (frozenset({Phase.LOBBY}), Phase.CODE_ISSUED),
    EventType.CODE_VERIFIED: (frozenset({Phase.CODE_ISSUED, Phase.LOBBY}), Phase.VERIFIED),
    EventType.CODE_LOCKED: (frozenset({Phase.CODE_ISSUED}), Phase.LOBBY),
    EventType.MEETING_ENDED: (
        frozenset({Phase.JOIN_OPEN, Phase.LOBBY, Phase.CODE_ISSUED, Phase.VERIFIED}),
        Phase.ENDED,
    ),
}


async def raise_lifecycle_event(
    client: df.DurableOrchestrationClient,
    booking_code: str,
    event: EventType,
    payload: dict[str, Any] | None = None,
) -> bool:
    """Raise an event the HTTP gate has already checked. False if the instance is gone or finished."""
    iid = instance_id(booking_code)
    try:
        await client.raise_event(iid, event.value, payload or {})
    except Exception as exc:  # the client raises plain Exceptions for 404/410
        log.warning("could not raise %s on %s: %s", event.value, iid, exc)
        return False
    if event in OPTIMISTIC:
        # The orchestration will record the same phase; writing it now lets the caller's
        # next read (and the other party's console) see it without waiting.
        expected, phase = OPTIMISTIC[event]
        services = bootstrap.services()
        await call(services.repo.advance_phase, booking_code, expected, phase, services.clock.now())
    return True
