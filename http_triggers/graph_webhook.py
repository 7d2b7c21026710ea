"""``POST /api/graph/notifications``: Graph change notifications for meeting call events.

The subscription is per appointment (``?appointment=<bookingCode>``) and its clientState is
a keyed HMAC of the booking code, checked in constant time by ``adapters.graph_webhook``.
With GRAPH_NOTIFICATION_CERTIFICATE set the notifications are rich: ``encryptedContent`` is
checked (certificate id and thumbprint, HMAC-SHA256 before AES) and decrypted by
``adapters.notification_crypto``; anything that fails is audited as forged.
A call-ended notice raises ``MeetingEnded``; the expert's End and the end-plus-grace timer
stay as fallbacks. Forgeries are audited and answered like anything else (202), so a
prober learns nothing.
"""

from __future__ import annotations

import logging

import azure.durable_functions as df
import azure.functions as func

import bootstrap
from adapters.graph_webhook import MalformedNotification, parse_call_ended, validation_token
from appointments.codes import normalize_booking_code
from appointments.lifecycle import EventType
from appointments.model import IN_MEETING_PHASES
from appointments.ports import AuditEntry
from http_triggers.common import call, raise_lifecycle_event
from http_triggers.problem import problem

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)
log = logging.getLogger(__name__)


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
    except (
        ValueError
    ) as exc:  # CertificateError: misconfigured; nothing can be read, and Graph must not retry
        log.error(
            "Graph notification for %s not read: the notification certificate is unusable (%s)", code, exc
        )
        return accepted
    try:
        batch = parse_call_ended(req.get_body(), code, secret, decrypt=decrypt)
    except MalformedNotification as exc:
        return problem(400, "Malformed notification", str(exc), "malformed-notification")
    now = services.clock.now()
    if batch.forged:
        reasons = sorted({f.reason for f in batch.forged})
        log.warning("refused %d Graph notification(s): %s", len(batch.forged), "; ".join(reasons))
        await call(
            services.repo.audit,
            AuditEntry(
                code,
                now,
                "graph",
                "forged_notification_refused",
                f"{len(batch.forged)} item(s): {'; '.join(reasons)}"[:500],
            ),
        )
    if batch.call_ended:
        appointment = await call(services.repo.get_by_code, code)
        # Only once the customer has joined: an expert who opens the meeting early and leaves an
        # empty call has not ended the appointment (the no-show timer covers a customer who never comes).
        if appointment is not None and appointment.phase in IN_MEETING_PHASES:
            await call(services.repo.audit, AuditEntry(code, now, "graph", "call_ended"))
            await raise_lifecycle_event(client, code, EventType.MEETING_ENDED, {"source": "graph"})
    for notice in batch.lifecycle:
        log.info("Graph subscription %s for %s: %s", notice.subscription_id, code, notice.event)
    return accepted
