"""Use case: keep one appointment's Teams call-event subscription alive as long as it is needed.

Graph's meetingCallEvents subscriptions (beta) last at most 3 days and can be revoked, so:

* ``subscribe`` creates (or finds and renews) the subscription when the meeting is made.
  A refusal never fails the appointment: it comes back as an attention reason
  (``CALL_EVENTS_REFUSED``) that the expert and operators see, and the expert's End and
  the end + grace timer still close the appointment.
* ``renew_due`` (the ``renew_graph_subscriptions`` timer) renews every subscription that
  expires within ``RENEW_AHEAD`` while its appointment still needs it, and deletes those
  whose appointment is over.
* ``on_lifecycle`` answers Graph's lifecycle notifications
  (https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events):
  ``reauthorizationRequired`` → reauthorize (or recreate when Graph no longer has it),
  ``subscriptionRemoved`` → recreate, ``missed`` → reconcile (recreate if it is gone;
  the missed call events themselves cannot be fetched again, the timers cover them).

The adapters come in through the constructor (ports), so this module imports no
infrastructure; ``bootstrap`` wires the real ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from appointments.model import Appointment
from appointments.ports import (
    AppointmentRepository,
    CallEventSubscription,
    GatewayError,
    Meeting,
    MeetingGateway,
    PermanentGatewayError,
)

log = logging.getLogger(__name__)

CALL_EVENTS_REFUSED = "call_events_refused"  # attention reason: Graph refused the subscription
# attention reason: Graph failed transiently past the lifecycle's retries (``subscribe_call_events``)
CALL_EVENTS_UNAVAILABLE = "call_events_unavailable"
RENEW_AHEAD = timedelta(hours=24)  # the timer runs every 6 h: four chances before expiry
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})


@dataclass(frozen=True)
class Target:
    """Where Graph is to send one appointment's notifications, and how they prove their origin."""

    notification_url: str
    client_state: str
    encryption_certificate: str | None = None  # base64 DER, public key only: rich notifications
    encryption_certificate_id: str | None = None


class CallEventSubscriptions:
    """The subscription use cases over a ``MeetingGateway`` and the repository."""

    def __init__(
        self,
        gateway: MeetingGateway,
        repo: AppointmentRepository,
        target: Callable[[str], Target | None],
        *,
        end_grace: timedelta,
    ) -> None:
        self._gateway = gateway
        self._repo = repo
        self._target = target  # booking code → Target; None: notifications are not configured
        self._end_grace = end_grace

    async def subscribe(self, appointment: Appointment, meeting: Meeting) -> str | None:
        """Subscribe to the meeting's call events; the attention reason when Graph refuses.

        Transient failures raise (Durable retries the activity; createOrGet is idempotent).
        """
        target = self._target(appointment.booking_code)
        if target is None:
            return None
        try:
            subscription = await self._gateway.subscribe_call_events(
                appointment.expert_id,
                meeting,
                target.notification_url,
                target.client_state,
                encryption_certificate=target.encryption_certificate,
                encryption_certificate_id=target.encryption_certificate_id,
                # The meeting is stored before its subscription is created: a record without a
                # meeting id (as read before this attempt) means no attempt got as far as the
                # create, so there is nothing to look for.
                look_first=appointment.meeting_id is not None,
            )
        except PermanentGatewayError as exc:
            log.error("Graph refused the call-event subscription for %s: %s", appointment.booking_code, exc)
            return CALL_EVENTS_REFUSED
        await asyncio.to_thread(
            self._repo.set_subscription, appointment.booking_code, subscription.subscription_id
        )
        return None

    def _needs_events(self, appointment: Appointment | None, now: datetime) -> bool:
        return (
            appointment is not None
            and not appointment.phase.is_terminal
            and bool(appointment.meeting_id and appointment.join_url)
            and now < appointment.end + self._end_grace
        )

    async def resubscribe(self, code: str, now: datetime) -> str:
        """Subscribe the stored meeting again while the appointment needs its call events: a
        removed subscription, or one the lifecycle makes after ``create_meeting`` could not.
        ``recreated``, ``not needed``, or the attention reason when Graph refuses."""
        appointment = await asyncio.to_thread(self._repo.get_by_code, code)
        if appointment is None or not self._needs_events(appointment, now):
            return "not needed"
        assert appointment.meeting_id and appointment.join_url
        meeting = Meeting(appointment.meeting_id, appointment.join_url, created=False)
        reason = await self.subscribe(appointment, meeting)
        return "recreated" if reason is None else reason

    async def on_lifecycle(self, code: str, subscription_id: str, event: str, now: datetime) -> str:
        """Act on one lifecycle notification of a genuine subscription; what was done, for the log."""
        if event == "reauthorizationRequired":
            try:
                await self._gateway.reauthorize_subscription(subscription_id)
                outcome = "reauthorized"
            except PermanentGatewayError as exc:
                if exc.status != 404:
                    raise
                outcome = await self.resubscribe(code, now)
        elif event == "subscriptionRemoved":
            outcome = await self.resubscribe(code, now)
        elif event == "missed":
            if await self._gateway.get_subscription(subscription_id) is None:
                outcome = await self.resubscribe(code, now)
            else:
                outcome = "still subscribed"
        else:
            outcome = "ignored"
        log.info("Graph %s for %s's subscription: %s", event, code, outcome)
        return outcome

    async def renew_due(self, now: datetime, wall_now: datetime | None = None) -> dict[str, int]:
        """Renew what expires soon and is still needed; delete what is no longer needed.

        ``now`` is the app's clock (appointment times), ``wall_now`` the real one (Graph's
        expiry); counts per outcome come back for the log.
        """
        wall_now = wall_now or datetime.now(UTC)
        counts = {"renewed": 0, "deleted": 0, "kept": 0, "failed": 0}
        for subscription in await self._gateway.list_subscriptions():
            code = booking_code_of(subscription)
            if code is None:
                continue  # not one of this app's appointment subscriptions
            try:
                if not self._needs_events(await asyncio.to_thread(self._repo.get_by_code, code), now):
                    await self._gateway.delete_subscription(subscription.subscription_id)
                    counts["deleted"] += 1
                elif subscription.expires_at - wall_now < RENEW_AHEAD:
                    await self._gateway.renew_subscription(
                        subscription.subscription_id, wall_now + timedelta(days=3)
                    )
                    counts["renewed"] += 1
                else:
                    counts["kept"] += 1
            except GatewayError as exc:  # one failure must not stop the others; the next run retries
                log.warning("renewing the call-event subscription of %s failed: %s", code, exc)
                counts["failed"] += 1
        return counts


def booking_code_of(subscription: CallEventSubscription) -> str | None:
    """The appointment a subscription serves: its notificationUrl's ``appointment`` parameter."""
    values = parse_qs(urlsplit(subscription.notification_url).query).get("appointment")
    return values[0] if values else None
