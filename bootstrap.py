"""Wiring: builds the real parts from ``Settings.from_env()`` on first use, and takes fakes in tests.

Nothing is built at import time (cold start), and Graph is only imported when a
meeting or a mail is needed. The local host hands in its virtual clock with
``use_clock``; tests replace parts with ``override``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

from appointments.identity_service import IdentityService
from appointments.ports import AppointmentRepository, Clock, IdentityStore, SystemClock
from appointments.service import AppointmentService
from appointments.settings import Settings


@dataclass
class Services:
    settings: Settings
    clock: Clock
    repo: AppointmentRepository
    appointments: AppointmentService
    identity: IdentityService
    extras: dict[str, Any] = field(default_factory=dict)  # lazily built adapters (Graph, mail, renderer)


_lock = threading.RLock()
_services: Services | None = None
_clock: Clock = SystemClock()
_overrides: dict[str, Any] = {}


def _assemble(settings: Settings, clock: Clock, repo: AppointmentRepository) -> Services:
    appointments = AppointmentService(repo, clock, settings)
    store: IdentityStore = _overrides.get("identity_store") or repo  # type: ignore[assignment]
    return Services(
        settings, clock, repo, appointments, IdentityService(appointments, store, clock, settings)
    )


def _build_repo(settings: Settings) -> AppointmentRepository:
    from adapters.tables import TableRepository

    if settings.tables_endpoint:
        from azure.data.tables import TableServiceClient
        from azure.identity import DefaultAzureCredential

        return TableRepository(
            TableServiceClient(settings.tables_endpoint, credential=DefaultAzureCredential())
        )
    return TableRepository.from_connection_string(settings.storage_connection_string.value)


def services() -> Services:
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                settings = _overrides.get("settings") or Settings.from_env()
                repo = _overrides.get("repo") or _build_repo(settings)
                clock = _overrides.get("clock") or _clock
                _services = _assemble(settings, clock, repo)
    return _services


def use_clock(clock: Clock) -> None:
    """Let the local host's (virtual) clock drive the app's notion of now."""
    global _clock, _services
    with _lock:
        _clock = clock
        if _services is not None:
            _services = replace(_assemble(_services.settings, clock, _services.repo), extras=_services.extras)


def override(**parts: Any) -> None:
    """Tests: replace settings, repo or clock, and rebuild on next use."""
    global _services
    with _lock:
        _overrides.clear()
        _overrides.update(parts)
        _services = None


def reset() -> None:
    override()


def _extra(name: str, build: Any) -> Any:
    s = services()
    with _lock:
        if name not in s.extras:
            s.extras[name] = _overrides.get(name) or build(s)
        return s.extras[name]


def _graph_client(s: Services) -> Any:
    from adapters.graph import build_graph_client

    return build_graph_client(s.settings)


def meetings() -> Any:
    """The MeetingGateway (Graph, or whatever a test put in with ``override(meetings=...)``)."""
    from adapters.graph import GraphMeetingGateway

    return _extra("meetings", lambda s: GraphMeetingGateway(_extra("graph_client", _graph_client)))


_warm = threading.Event()


async def meetings_ready() -> Any:
    """The MeetingGateway, after msgraph's ~1 s of model imports ran off the event loop (once)."""
    if not _warm.is_set() and "meetings" not in _overrides:
        import asyncio

        from adapters.graph import warm_up

        await asyncio.to_thread(warm_up)
        _warm.set()
    return meetings()


def mailer() -> Any:
    from adapters.graph import GraphMailSender

    return _extra(
        "mailer",
        lambda s: GraphMailSender(_extra("graph_client", _graph_client), s.settings.graph_sender_mailbox),
    )


def notifier() -> Any:
    from adapters.notifier import Notifier

    return _extra("notifier", lambda s: Notifier(s.repo, mailer(), s.settings, s.clock))


async def subscribe_meeting_end(appointment: Any, meeting: Any) -> None:
    """Ask Graph to tell us when the meeting's call ends (expert's End and the timer stay as fallbacks)."""
    s = services()
    if not s.settings.graph_notification_url or not s.settings.graph_client_state:
        return
    from adapters.graph_webhook import client_state_for, notification_url_for

    code = appointment.booking_code
    await meetings().subscribe_call_events(
        appointment.expert_id,
        meeting,
        notification_url_for(s.settings.graph_notification_url, code),
        client_state_for(s.settings.graph_client_state.value, code),
    )
