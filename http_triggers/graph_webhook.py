"""``POST /api/graph/notifications``: Graph change notifications for meeting call events.

Graph wants a 2xx within 3 seconds, or it retries for hours and throttles the endpoint
(https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks#processing-the-change-notification).
So this trigger only checks and hands over, and does no storage work before it answers:

1. the handshake (``validationToken``) is echoed;
2. every item's clientState (a keyed HMAC of the booking code) is checked in constant
   time; rich items are decrypted and the POST's ``validationTokens`` verified
   (``adapters.graph_webhook``, ``adapters.notification_crypto``);
3. a call-ended notice is raised as ``MeetingEnded`` on the appointment's orchestration
   with the event's own time: the lifecycle ignores one older than the phase it would end
   (``appointments.lifecycle``), so a replay or an early empty call changes nothing, and a
   notification seen before (same id and resource) is dropped here;
4. a lifecycle notice (reauthorize, removed, missed) starts the small
   ``graph_subscription_upkeep`` orchestration, which does the Graph work;
5. forgeries are counted, and one audit row per window (``ForgedTally``) is written after
   the answer, so a flood of forged POSTs cannot grow the Audit table row by row.

Everything is answered 202 (forgeries too), so a prober learns nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

import bootstrap
from adapters.graph_webhook import (
    CallEventBatch,
    MalformedNotification,
    parse_call_ended,
    validation_token,
)
from appointments.codes import normalize_booking_code
from appointments.lifecycle import GRAPH_SOURCE, EventType
from appointments.ports import AuditEntry
from appointments.timerules import iso
from http_triggers.problem import problem
from orchestrators.appointment_lifecycle import instance_id
from orchestrators.graph_subscriptions import SUBSCRIPTION_UPKEEP_ORCHESTRATOR

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)
log = logging.getLogger(__name__)

FORGED_AUDIT_PARTITION = "graph-webhook"
FORGED_AUDIT_WINDOW = timedelta(minutes=5)
SEEN_MAX = 10_000  # notifications remembered for de-duplication, per process
SEEN_SECONDS = 4 * 3600.0  # Graph retries a delivery for up to 4 hours


class SeenNotifications:
    """(id, resource) of notifications already handed over by this process, for a while."""

    def __init__(self, max_size: int = SEEN_MAX, seconds: float = SEEN_SECONDS) -> None:
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._max = max_size
        self._seconds = seconds
        self._lock = threading.Lock()

    def first_time(self, notification_id: str, resource: str) -> bool:
        now = time.monotonic()
        key = (notification_id, resource)
        with self._lock:
            while self._seen and (
                len(self._seen) >= self._max or next(iter(self._seen.values())) < now - self._seconds
            ):
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


class ForgedTally:
    """Forged POSTs counted per window; one audit row per window, written after the answers.

    The first forgery of a window schedules the write for the window's end on the running
    loop (the worker's, which outlives the invocation); later ones only count.
    """

    def __init__(self, window: timedelta = FORGED_AUDIT_WINDOW) -> None:
        self._window = window
        self._lock = threading.Lock()
        self._count = 0
        self._reasons: dict[str, int] = {}
        self._codes: set[str] = set()
        self._started: datetime | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, code: str, reasons: list[str], now: datetime, write: Callable[[AuditEntry], None]) -> None:
        with self._lock:
            first = self._started is None
            if first:
                self._started = now
            self._count += len(reasons)
            for reason in reasons:
                self._reasons[reason] = self._reasons.get(reason, 0) + 1
            if len(self._codes) < 10:
                self._codes.add(code)
        if first:
            asyncio.get_running_loop().call_later(self._window.total_seconds(), self._spawn, write)

    def _spawn(self, write: Callable[[AuditEntry], None]) -> None:
        task = asyncio.get_running_loop().create_task(self.flush(write))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def take(self) -> AuditEntry | None:
        """The window's row, and a fresh window."""
        with self._lock:
            if self._started is None:
                return None
            reasons = "; ".join(f"{r} x{n}" for r, n in sorted(self._reasons.items()))
            codes = ",".join(sorted(self._codes))
            detail = f"{self._count} item(s) since {iso(self._started)} for {codes}: {reasons}"
            entry = AuditEntry(
                FORGED_AUDIT_PARTITION, self._started, "graph", "forged_notifications_refused", detail[:500]
            )
            self._count, self._reasons, self._codes, self._started = 0, {}, set(), None
            return entry

    async def flush(self, write: Callable[[AuditEntry], None]) -> None:
        if (entry := self.take()) is not None:
            try:
                await asyncio.to_thread(write, entry)
            except Exception:  # an audit row that cannot be written must not kill the worker's loop
                log.exception("could not write the forged-notification audit row")


seen = SeenNotifications()
forged_tally = ForgedTally()


@bp.route(route="graph/notifications", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
async def graph_notifications(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    try:
        reply = validation_token(req.params)
    except MalformedNotification as exc:
        return problem(400, "Bad validation request", str(exc), "bad-validation")
    if reply is not None:
        return func.HttpResponse(
            reply.body, status_code=reply.status, mimetype=reply.content_type, headers=dict(reply.headers)
        )
    accepted = func.HttpResponse(status_code=202)
    services = bootstrap.services()
    secret = services.settings.graph_client_state.value
    code = normalize_booking_code(req.params.get("appointment", ""))
    if code is None or not secret:
        return accepted
    try:
        decrypt = bootstrap.notification_decryptor()
        verify = bootstrap.validation_token_verifier() if decrypt is not None else None
    except ValueError as exc:  # CertificateError: misconfigured; nothing can be read, Graph must not retry
        log.error(
            "Graph notification for %s not read: the notification certificate is unusable (%s)", code, exc
        )
        return accepted
    try:
        # Off the loop: the first validationTokens check may fetch the signing keys (then cached).
        batch = await asyncio.to_thread(
            parse_call_ended, req.get_body(), code, secret, decrypt=decrypt, verify_tokens=verify
        )
    except MalformedNotification as exc:
        return problem(400, "Malformed notification", str(exc), "malformed-notification")
    await _hand_over(client, code, batch, services)
    return accepted


async def _hand_over(
    client: df.DurableOrchestrationClient, code: str, batch: CallEventBatch, services: Any
) -> None:
    if batch.forged:
        reasons = [f.reason for f in batch.forged]
        log.warning(
            "refused %d Graph notification(s) for %s: %s", len(reasons), code, "; ".join(sorted(set(reasons)))
        )
        forged_tally.add(code, reasons, services.clock.now(), services.repo.audit)
    for notice in batch.call_ended:
        if notice.notification_id and not seen.first_time(notice.notification_id, notice.resource):
            continue
        payload = {"source": GRAPH_SOURCE, "occurredAt": iso(notice.ended_at) if notice.ended_at else None}
        try:
            await client.raise_event(instance_id(code), EventType.MEETING_ENDED.value, payload)
        except Exception as exc:  # the client raises plain Exceptions for 404/410: gone or finished
            log.info("call-ended for %s not raised: %s", code, exc)
    for lifecycle in batch.lifecycle:
        if not seen.first_time(f"{lifecycle.subscription_id}/{lifecycle.event}", str(int(time.time() // 60))):
            continue  # the same lifecycle notice twice within a minute
        await client.start_new(
            SUBSCRIPTION_UPKEEP_ORCHESTRATOR,
            None,
            {"bookingCode": code, "subscriptionId": lifecycle.subscription_id, "event": lifecycle.event},
        )
