"""Wiring: builds the real parts from ``Settings.from_env()`` on first use, and takes fakes in tests.

Nothing is built at import time (cold start), and Graph is only imported when a
meeting or a mail is needed. The local host hands in its virtual clock with
``use_clock``; tests replace parts with ``override``.
"""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from appointments.directory import ExpertDirectory
from appointments.identity_service import IdentityService
from appointments.lookup_throttle import GuardedLookup, LookupThrottle
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
    directory: ExpertDirectory  # the views' expert names and booking's experts, at most a minute stale
    extras: dict[str, Any] = field(default_factory=dict)  # lazily built adapters (Graph, mail, renderer)


_lock = threading.RLock()
_services: Services | None = None
_clock: Clock = SystemClock()
_overrides: dict[str, Any] = {}


def _assemble(settings: Settings, clock: Clock, repo: AppointmentRepository) -> Services:
    directory = ExpertDirectory(repo)
    appointments = AppointmentService(
        repo, clock, settings, outbox=_overrides.get("outbox"), directory=directory
    )
    store = _overrides.get("identity_store") or repo  # the Table repository serves this port too
    assert isinstance(store, IdentityStore), "override identity_store with an IdentityStore"
    return Services(
        settings,
        clock,
        repo,
        appointments,
        IdentityService(appointments, store, clock, settings),
        directory,
    )


def _table_service(settings: Settings) -> Any:
    """The Table client, its connection pool sized to the threads that share it."""
    from azure.data.tables import TableServiceClient

    from adapters.tables.transport import table_transport

    if settings.tables_endpoint:
        from azure.identity import DefaultAzureCredential

        return TableServiceClient(
            settings.tables_endpoint, credential=DefaultAzureCredential(), transport=table_transport()
        )
    return TableServiceClient.from_connection_string(
        settings.storage_connection_string.value, transport=table_transport()
    )


def _build_repo(settings: Settings) -> AppointmentRepository:
    from adapters.tables import TableRepository

    return TableRepository(_table_service(settings))


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


def lookup() -> GuardedLookup:
    """The no-login lookup behind its throttle (override ``throttle_store`` in tests)."""

    def build(s: Services) -> Any:
        from adapters.lookup_throttle import TableThrottleStore

        return TableThrottleStore(_table_service(s.settings))

    store = _extra("throttle_store", build)  # kept; the services around it follow use_clock
    s = services()
    return GuardedLookup(s.appointments, LookupThrottle(store, s.clock))


def _graph_client(s: Services) -> Any:
    from adapters.graph import build_graph_client

    return build_graph_client(s.settings)


def meetings() -> Any:
    """The MeetingGateway (Graph, or whatever a test put in with ``override(meetings=...)``)."""
    from adapters.graph import GraphMeetingGateway

    return _extra(
        "meetings",
        lambda s: GraphMeetingGateway(
            _extra("graph_client", _graph_client),
            schedule_cache_seconds=s.settings.graph_schedule_cache_seconds,
        ),
    )


_warm = threading.Event()


async def meetings_ready() -> Any:
    """The MeetingGateway, after msgraph's ~1 s of model imports ran off the event loop (once)."""
    if not _warm.is_set() and "meetings" not in _overrides:
        import asyncio

        from adapters.graph import warm_up

        await asyncio.to_thread(warm_up)
        # What is loaded now (the app, msgraph's thousands of model classes) lives as long as the
        # process: out of the collector's way, a full collection no longer walks it (85 ms a
        # time in a warm worker; "gc.freeze" in the Python docs).
        gc.freeze()
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

    return _extra(
        "notifier", lambda s: Notifier(s.repo, mailer(), s.settings, s.clock, directory=s.directory)
    )


_log = logging.getLogger(__name__)
_warned_basic = threading.Event()


def notification_certificate() -> Any:
    """The app's ``NotificationCertificate`` (rich Graph notifications), or None when not configured.

    Loaded once per process; a certificate that cannot be loaded raises ``CertificateError``
    (its message names the problem, never the key).
    """
    s = services()
    if not s.settings.graph_notification_certificate:
        return None

    def build(s: Services) -> Any:
        from adapters.notification_crypto import NotificationCertificate

        return NotificationCertificate.load(
            s.settings.graph_notification_certificate.value, s.settings.graph_notification_certificate_id
        )

    return _extra("notification_certificate", build)


def notification_decryptor() -> Any:
    """``decrypt`` for ``graph_webhook.parse_call_ended``: None without a certificate."""
    certificate = notification_certificate()
    return None if certificate is None else certificate.decrypt


def call_events() -> Any:
    """The call-event subscription use cases (``appointments.call_events``) on the real parts."""
    from appointments.call_events import CallEventSubscriptions

    return _extra(
        "call_events",
        lambda s: CallEventSubscriptions(
            meetings(), s.repo, _call_event_target, end_grace=s.settings.end_grace
        ),
    )


def _call_event_target(code: str) -> Any:
    """Where one appointment's call events go: None when notifications are not configured.

    Rich (encrypted) notifications when GRAPH_NOTIFICATION_CERTIFICATE is set: Graph's basic
    ones for meetingCallEvents carry no event details, so without it a call's end is never seen.
    """
    from adapters.graph_webhook import client_state_for, notification_url_for
    from appointments.call_events import Target

    s = services()
    if not s.settings.graph_notification_url or not s.settings.graph_client_state:
        return None
    try:
        certificate = notification_certificate()
    except ValueError as exc:  # CertificateError: misconfigured; do not fail the meeting over it
        _log.error(
            "no call-event subscription for %s: the notification certificate is unusable (%s)", code, exc
        )
        return None
    if certificate is None and not _warned_basic.is_set():
        _warned_basic.set()
        _log.warning(
            "GRAPH_NOTIFICATION_CERTIFICATE is not set: call-event subscriptions are basic, and Graph's "
            "basic notifications do not say that a call ended (the expert's End and the timer still work)"
        )
    return Target(
        notification_url_for(s.settings.graph_notification_url, code),
        client_state_for(s.settings.graph_client_state.value, code),
        encryption_certificate=certificate.public_certificate if certificate else None,
        encryption_certificate_id=certificate.certificate_id if certificate else None,
    )


def validation_token_verifier() -> Any:
    """``verify_tokens`` for ``graph_webhook.parse_call_ended`` (rich notifications' validationTokens)."""
    from adapters.notification_crypto import ValidationTokenVerifier

    return _extra("validation_tokens", lambda s: ValidationTokenVerifier.from_settings(s.settings))
