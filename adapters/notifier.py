"""Sends one notification once: renders it, delivers it, and remembers that it did.

Experts get mail through Graph (ARCHITECTURE.md §8). Customers get an Outbox row for the bank's
own SMS and push channels (Microsoft's SMS does not reach Finnish numbers), and mail
too when they gave an address.

Mail at most once per key. A ``Notifications`` row per idempotency key goes through two
states: ``sending`` is written *before* the first mail leaves, ``sent`` after the last.
Each mail's ``internetMessageId`` is derived from the key (``<hash.n@sender-domain>``),
so an attempt that finds ``sending`` (the one before crashed, timed out, or got a 5xx
for a mail Graph had already accepted) asks the sender's Sent Items for that id and sends
only what is not there. What is left: Sent Items shows a sent mail a few seconds after
sendMail's 202; a retry inside that lag resends. A retry comes at least 5 s after the
failure (a failed ``apply_phase`` by Durable's retry, a mail it reported failed by the
orchestrator's pause before sending it alone: ``orchestrators.appointment_lifecycle.RETRY``), so
that needs a crash and a Sent Items lag over 5 s together. The key also travels as
``X-Idempotency-Key``, so such a duplicate is still recognisable downstream.

A notification without mail (a customer who gave no address) keeps no row at all: its SMS and
push rows are inserted, never overwritten, and a retry that finds them knows it was delivered
(and leaves the state the bank's senders gave them alone: an SMS sent is not queued again).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.renderer import RenderedNotification, Renderer
from appointments.calendar import appointment_ics
from appointments.catalogue import CHANNEL_LABELS, Channel, topic_label
from appointments.directory import ExpertDirectory
from appointments.localtime import to_local
from appointments.model import Appointment, Expert
from appointments.notifications import Notification, NotificationKind, Recipient, Reminder
from appointments.ports import AppointmentRepository, Clock, MailMessage, MailSender, NotificationLog
from appointments.settings import Settings
from appointments.timerules import iso

log = logging.getLogger(__name__)
CALENDAR_KINDS = frozenset(
    {NotificationKind.NEW_BOOKING, NotificationKind.RESCHEDULED, NotificationKind.CANCELLED}
)


class _Outcome(enum.Enum):
    SENT = "sent"
    SKIPPED = "skipped"


SENT, SKIPPED = _Outcome.SENT, _Outcome.SKIPPED
Outcome = _Outcome | Exception


@dataclass(frozen=True)
class Request:
    """One notification to deliver once, as the orchestration asks for it (by kind and key)."""

    kind: str
    recipient: str
    key: str
    previous_start: datetime | None = None
    previous_end: datetime | None = None
    reminder: str | None = None


@dataclass(frozen=True)
class _Prepared:
    key: str
    row_key: str
    notification: Notification
    mails: list[MailMessage]
    resumed: bool  # an earlier attempt got as far as ``sending``


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class Notifier:
    def __init__(
        self,
        repo: AppointmentRepository,
        mailer: MailSender,
        settings: Settings,
        clock: Clock,
        renderer: Renderer | None = None,
        sent_log: NotificationLog | None = None,
        directory: ExpertDirectory | None = None,
    ) -> None:
        if sent_log is None:  # the Table repository serves this port too
            assert isinstance(repo, NotificationLog), "pass the NotificationLog"
            sent_log = repo
        self.sent_log: NotificationLog = sent_log
        self.repo = repo
        self.mailer = mailer
        self.settings = settings
        self.clock = clock
        self.renderer = renderer or Renderer()
        # The expert comes from the in-process directory (at most ``max_age``, a minute, stale):
        # a mail takes the expert's name, languages and address from it, all of which change
        # rarely and none of which a minute's lag makes wrong in a way that matters (a renamed
        # expert's old name, the old address of the same person's mailbox). Who the expert *is*
        # comes from the record, read fresh on every send.
        self.directory = directory or ExpertDirectory(repo)

    def portal_url(self, a: Appointment) -> str:
        return f"{self.settings.portal_base_url}/portal/#/appointments/{a.booking_code}"

    def manage_url(self, a: Appointment, kind: NotificationKind, to_expert: bool) -> str:
        """Where the mail's "manage" link goes, as its text says: the expert's console on the
        appointment's day; the customer's booking, or for a cancelled one, booking a new time."""
        portal = f"{self.settings.portal_base_url}/portal/#"
        if to_expert:
            return f"{portal}/expert/{to_local(a.start).date().isoformat()}"
        return f"{portal}/book" if kind is NotificationKind.CANCELLED else self.portal_url(a)

    def notification(
        self,
        a: Appointment,
        expert: Expert | None,
        kind: NotificationKind,
        recipient: Recipient,
        previous_start: datetime | None = None,
        previous_end: datetime | None = None,
        reminder: Reminder | None = None,
    ) -> Notification | None:
        to_expert = recipient is Recipient.EXPERT
        # The customer reads their booking's language; the expert reads the bank's working
        # language (Finnish) unless they do not serve it.
        lang = a.language
        if to_expert:
            lang = "fi" if expert is None or "fi" in expert.languages else expert.languages[0]
        join_url = (
            (a.join_url if to_expert else self.portal_url(a) + "/meeting")
            if a.channel is Channel.ONLINE
            else None
        )
        if kind in (NotificationKind.JOIN_OPEN, NotificationKind.CUSTOMER_IN_LOBBY) and not join_url:
            return None  # no meeting (its creation failed): the expert got "meeting failed" instead
        previous_minutes = None
        if previous_start and previous_end:
            previous_minutes = int((previous_end - previous_start).total_seconds() // 60)
        return Notification(
            kind=kind,
            recipient=recipient,
            language=lang,
            booking_code=a.booking_code,
            start=a.start,
            duration_minutes=a.duration_minutes,
            topic=topic_label(a.topic_id, lang),
            expert_name=expert.display_name if expert else "",
            channel=a.channel,
            manage_url=self.manage_url(a, kind, to_expert),
            cancel_url=None if to_expert else self.portal_url(a) + "/cancel",
            join_url=join_url,
            join_window_minutes=self.settings.join_window_minutes,
            recorded=a.channel is Channel.ONLINE,
            previous_start=previous_start if kind is NotificationKind.RESCHEDULED else None,
            previous_duration_minutes=previous_minutes if kind is NotificationKind.RESCHEDULED else None,
            attempts=self.settings.code_max_attempts if kind is NotificationKind.CODE_LOCKED else None,
            failure_reason=a.attention if kind is NotificationKind.MEETING_FAILED else None,
            reminder=reminder if kind is NotificationKind.REMINDER else None,
            service_phone=None if to_expert else self.settings.bank_service_phone,
            customer_display_name=a.customer_name if to_expert else None,
        )

    async def send(
        self,
        *,
        booking_code: str,
        kind: str,
        recipient: str,
        key: str,
        previous_start: datetime | None = None,
        previous_end: datetime | None = None,
        reminder: str | None = None,
    ) -> bool:
        """Deliver the notification unless this key was delivered before. True if sent now; a
        failed mail raises (the caller retries: the key makes the retry send only what is missing)."""
        request = Request(kind, recipient, key, previous_start, previous_end, reminder)
        outcome = (await self.deliver(booking_code, [request]))[key]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome is SENT

    async def deliver(
        self, booking_code: str, requests: Sequence[Request], appointment: Appointment | None = None
    ) -> dict[str, Outcome]:
        """Deliver each request unless its key was delivered before: ``SENT``, ``SKIPPED`` (done
        before, or nothing to send) or the exception its mail raised, by key.

        The requests of one decision share their reads and writes: the record (none if the caller
        passes ``appointment``, just read), one read of the states of the keys that send mail, one
        transaction of the customer's SMS and push rows, one write of ``sending`` and one of
        ``sent``. A notification without mail keeps no state: its SMS and push rows are inserted,
        and rows that exist already mean it was delivered. A mail that fails leaves its key at
        ``sending`` for a retry (``send``) and does not stop the others; a failed storage write
        raises."""
        outcomes: dict[str, Outcome] = dict.fromkeys((r.key for r in requests), SKIPPED)
        prepared = await asyncio.to_thread(self._prepare, booking_code, requests, appointment)
        if not prepared:
            return outcomes
        fresh = [p for p in prepared if p.mails and not p.resumed]
        if fresh:  # the intent, before the first mail leaves; with no mail there is nothing to resume
            await asyncio.to_thread(self._mark, booking_code, fresh, "sending")
        results = await asyncio.gather(*(self._send_mails(p) for p in prepared), return_exceptions=True)
        done = []
        for p, result in zip(prepared, results, strict=True):
            if isinstance(result, Exception):
                outcomes[p.key] = result
            elif isinstance(result, BaseException):
                raise result
            else:
                if p.mails:  # one without mail keeps no state: its rows are its record
                    done.append(p)
                outcomes[p.key] = SENT
        if done:
            await asyncio.to_thread(self._mark, booking_code, done, "sent")
        return outcomes

    async def _send_mails(self, p: _Prepared) -> None:
        mails = p.mails
        if p.resumed:  # an earlier attempt may have sent some of them: Sent Items knows
            mails = [mail for mail in mails if not await self.mailer.was_sent(mail)]
        for mail in mails:
            await self.mailer.send(mail)

    def _prepare(
        self, booking_code: str, requests: Sequence[Request], appointment: Appointment | None
    ) -> list[_Prepared]:
        """Blocking part before delivery: de-duplicate, load, render, write the outbox rows.

        Round trips: the record (unless passed), the states of the keys that send mail, and for
        customers the SMS and push rows (one transaction); the expert comes from the directory.
        """
        a = appointment or self.repo.get_by_code(booking_code)
        if a is None:
            log.warning("notifications for unknown booking %s skipped", booking_code)
            return []
        hashes = {r.key: _key_hash(r.key) for r in requests}
        mailed = [hashes[r.key] for r in requests if r.recipient == Recipient.EXPERT.value or a.email]
        states = self.sent_log.states(booking_code, list(dict.fromkeys(mailed))) if mailed else {}
        todo = [r for r in requests if states.get(hashes[r.key]) != "sent"]
        if not todo:
            return []
        expert = self.directory.get(a.expert_id)
        domain = self.settings.graph_sender_mailbox.rpartition("@")[2] or "localhost"
        prepared: list[_Prepared] = []
        customer_rows: dict[str, dict[str, Any]] = {}
        for r in todo:
            n = self.notification(
                a,
                expert,
                NotificationKind(r.kind),
                Recipient(r.recipient),
                r.previous_start,
                r.previous_end,
                Reminder(r.reminder) if r.reminder else None,
            )
            if n is None:
                continue
            row_key = hashes[r.key]
            rendered = self.renderer.render_notification(n)

            def mail(
                to: str,
                attachments: tuple[tuple[str, str, bytes], ...] = (),
                row_key: str = row_key,
                rendered: RenderedNotification = rendered,
                key: str = r.key,
            ) -> MailMessage:
                return MailMessage(
                    internet_message_id=f"<{row_key}.{_key_hash(to.lower())[:12]}@{domain}>",
                    to=to,
                    subject=rendered.subject,
                    text=rendered.text,
                    html=rendered.html,
                    idempotency_key=key,
                    attachments=attachments,
                )

            resumed = states.get(row_key) == "sending"
            if n.recipient is Recipient.EXPERT:
                if expert is None or not expert.email:
                    log.warning("expert of %s has no mail address; %s not sent", booking_code, r.kind)
                    continue
                mails = [mail(expert.email, self._calendar(a, n, expert.email))]
            else:
                customer_rows |= self._outbox(a, n, rendered.subject, rendered.text, row_key)
                mails = [mail(a.email)] if a.email else []
            prepared.append(_Prepared(r.key, row_key, n, mails, resumed))
        # SMS and push for the bank's own channels, in one write; rows that exist already were
        # written by an earlier attempt of the same notifications (they are written together).
        if customer_rows and not self.sent_log.queue_customer_messages(a.customer_id, customer_rows):
            prepared = [p for p in prepared if p.mails]  # the rest was delivered before
        return prepared

    def _calendar(self, a: Appointment, n: Notification, attendee: str) -> tuple[tuple[str, str, bytes], ...]:
        """The expert's calendar entry: booked and moved update it, cancelled removes it."""
        if n.kind not in CALENDAR_KINDS:
            return ()
        cancel = n.kind is NotificationKind.CANCELLED
        ics = appointment_ics(
            booking_code=a.booking_code,
            start=a.start,
            end=a.end,
            summary=f"{n.topic} ({a.booking_code})",
            description=f"{CHANNEL_LABELS[a.channel][n.language]}: {n.manage_url}",
            url=n.manage_url,
            organizer=self.settings.graph_sender_mailbox or "noreply@invalid",
            attendee=attendee,
            # Every change raises the sequence; a cancel outranks the booking it cancels.
            sequence=a.revision + (1 if cancel else 0),
            now=self.clock.now(),
            cancel=cancel,
        )
        return (
            (
                f"{a.booking_code}.ics",
                "text/calendar; charset=utf-8; method=" + ("CANCEL" if cancel else "REQUEST"),
                ics,
            ),
        )

    def _mark(self, booking_code: str, prepared: Sequence[_Prepared], state: str) -> None:
        """``sending`` before the first mail leaves (the intent), ``sent`` after the last."""
        marks = [(p.row_key, str(p.notification.kind), str(p.notification.recipient)) for p in prepared]
        self.sent_log.mark_all(booking_code, marks, state, self.clock.now())

    def _outbox(
        self, a: Appointment, n: Notification, subject: str, text: str, row_key: str
    ) -> dict[str, dict[str, Any]]:
        """The customer's SMS and push rows; the row keys make a retry overwrite, not add."""
        now = iso(self.clock.now())
        return {
            f"{row_key}-{channel}": {
                "Channel": channel,
                "To": to,
                "BookingCode": a.booking_code,
                "Kind": str(n.kind),
                "Language": n.language,
                "Subject": subject,
                "Text": text,
                "CreatedAt": now,
                "State": "pending",
            }
            for channel, to in (("sms", a.phone), ("push", a.customer_id))
        }
