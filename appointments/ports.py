"""Ports: the small interfaces the domain and the activities talk to.

Real implementations live in ``adapters/``; in-memory fakes live in ``tests/``.
Graph-facing ports are async because ``msgraph-sdk`` is; the Table repository is
synchronous (HTTP triggers call it through ``asyncio.to_thread``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from appointments.identity import CodeRecord, FailureCounter
from appointments.model import Appointment, Expert, Phase


@dataclass(frozen=True)
class MeetingRequest:
    """What the Teams meeting for one appointment must look like. No customer data."""

    booking_code: str  # becomes the meeting's externalId: the idempotency key
    organizer_id: str  # the expert's Graph user id
    subject: str  # from the topic; never the customer's name
    start: datetime  # aware, UTC
    end: datetime  # aware, UTC


@dataclass(frozen=True)
class Meeting:
    meeting_id: str
    join_url: str
    created: bool  # True when Graph answered 201, False when the meeting already existed


@dataclass(frozen=True)
class BusyInterval:
    start: datetime  # aware, UTC
    end: datetime  # aware, UTC


@dataclass(frozen=True)
class MailMessage:
    """A rendered mail; ``idempotency_key`` makes a retried send a no-op where supported."""

    to: str
    subject: str
    text: str
    html: str
    idempotency_key: str
    attachments: tuple[tuple[str, str, bytes], ...] = field(default=())  # (name, content type, bytes)
    # RFC 5322 Message-ID, unique per key: lets a retry find an earlier attempt in Sent Items.
    internet_message_id: str = ""


@dataclass(frozen=True)
class CallEventSubscription:
    subscription_id: str
    resource: str
    expires_at: datetime
    notification_url: str = ""  # carries ?appointment=<bookingCode>


class MeetingGateway(Protocol):
    """Teams online meetings (Microsoft Graph)."""

    async def create_or_get(self, request: MeetingRequest) -> Meeting: ...

    async def update_times(
        self, organizer_id: str, meeting_id: str, start: datetime, end: datetime
    ) -> None: ...

    async def delete(self, organizer_id: str, meeting_id: str) -> None:
        """Delete the meeting; a meeting that is already gone is not an error."""
        ...

    async def get_schedule(
        self, organizer_ids: list[str], start: datetime, end: datetime
    ) -> dict[str, list[BusyInterval]]: ...

    async def subscribe_call_events(
        self,
        organizer_id: str,
        meeting: Meeting,
        notification_url: str,
        client_state: str,
        *,
        encryption_certificate: str | None = None,
        encryption_certificate_id: str | None = None,
        look_first: bool = True,
    ) -> CallEventSubscription:
        """Subscribe to the meeting's call events; rich (encrypted) notifications when given
        a certificate (base64 DER, public key only) and its id, basic ones otherwise.

        ``look_first=False``: the caller knows no earlier attempt can have created one, so the
        app's subscriptions are not listed before the create (only after a refusal)."""
        ...

    async def renew_subscription(
        self, subscription_id: str, expires_at: datetime
    ) -> CallEventSubscription: ...

    async def reauthorize_subscription(self, subscription_id: str) -> None: ...

    async def get_subscription(self, subscription_id: str) -> CallEventSubscription | None:
        """The subscription as Graph has it; None when Graph no longer has it."""
        ...

    async def list_subscriptions(self) -> list[CallEventSubscription]:
        """Every live subscription of this app."""
        ...

    async def delete_subscription(self, subscription_id: str) -> None:
        """Delete a call-event subscription; one that is already gone is not an error."""
        ...


class MailSender(Protocol):
    """Mail from the service mailbox (Graph ``sendMail``)."""

    async def send(self, message: MailMessage) -> None:
        """Send once: never resent by the transport (a lost answer raises, see ``was_sent``)."""
        ...

    async def was_sent(self, message: MailMessage) -> bool:
        """Whether an earlier attempt of this message (same internet_message_id) went out."""
        ...


class GatewayError(Exception):
    """A call to an outside service (Graph) failed.

    GatewayError
    ├── TransientGatewayError   throttled (429 after its Retry-After), 5xx, timeout: retry later
    └── PermanentGatewayError   any other 4xx: retrying will not help; the message says why
    """


class TransientGatewayError(GatewayError):
    pass


class PermanentGatewayError(GatewayError):
    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class SlotTaken(Exception):
    """The expert already has an appointment in (part of) this time."""


class StaleRecord(Exception):
    """A conditional write lost a race (the ETag no longer matches)."""


class CodeTaken(Exception):
    """The booking code is another booking's: nothing was kept, mint another code."""


@dataclass(frozen=True)
class Created:
    """What ``create`` stored: the record (with its ETag), and whether this call made it."""

    appointment: Appointment
    created: bool


class IdempotencyMismatch(Exception):
    """An Idempotency-Key was reused with a different request."""


@dataclass(frozen=True)
class SlotHold:
    """A customer's short claim on an expert's time while they fill in the booking."""

    hold_id: str  # unguessable; the key the booking carries as ``holdId``
    customer_id: str
    expert_id: str
    start: datetime  # aware, UTC
    duration_minutes: int
    expires_at: datetime  # after this the cells are free for anyone


@dataclass(frozen=True)
class AuditEntry:
    booking_code: str
    at: datetime
    actor: str  # "customer", "expert:<id>", "system", "ops" — never a name or phone number
    action: str
    detail: str = ""


class SlotLedger(Protocol):
    """The experts' claimed time: one claim per grid cell, by a booking or a customer's hold."""

    def release_cells(self, expert_id: str, booking_code: str, cells: list[datetime]) -> None: ...

    def taken_cells(self, expert_id: str, start: datetime, end: datetime, now: datetime) -> set[datetime]:
        """The expert's claimed cells in ``[start, end)``: bookings and holds still live at ``now``."""
        ...

    def hold(self, hold: SlotHold, cells: list[datetime], *, now: datetime) -> None:
        """Claim the cells for the hold in one transaction (expired holds may be taken over), then
        record the hold. Raises SlotTaken when a booking or a live hold has any of them."""
        ...

    def get_hold(self, hold_id: str) -> SlotHold | None: ...

    def release_hold(self, hold: SlotHold, cells: list[datetime]) -> None:
        """Free the cells the hold still has and forget the hold (idempotent)."""
        ...


class AppointmentRepository(SlotLedger, Protocol):
    """Appointments, booking codes, experts, audit (ARCHITECTURE.md §4); the slot ledger's methods
    too, as a booking claims its cells with the record. Synchronous."""

    def get(self, customer_id: str, booking_code: str) -> Appointment | None: ...

    def get_by_code(self, booking_code: str) -> Appointment | None: ...

    def phone_hmac(self, booking_code: str) -> str | None: ...

    def list_for_customer(self, customer_id: str) -> list[Appointment]: ...

    def list_for_expert(self, expert_id: str, start: datetime, end: datetime) -> list[Appointment]: ...

    def create(
        self,
        appointment: Appointment,
        *,
        phone_hmac: str,
        cells: list[datetime],
        idempotency_key: str | None,
        fingerprint: str,
        now: datetime | None = None,
        hold_id: str | None = None,
    ) -> Created:
        """Claim the cells, then write the code index (with the audit entry ``booked``) and the
        record. Idempotent per key: with an ``idempotency_key`` the booking code is the key's own
        (``codes.booking_code_for_key``), and a code index there for this customer is the key's
        record; a retry of a booking that crashed half-way finishes it under the same code.

        Cells of a hold that expired before ``now``, and of the hold ``hold_id`` (the
        customer's own, being converted), are taken over with ETag-conditional updates.
        Raises SlotTaken when another booking or live hold has a cell; IdempotencyMismatch when
        the key was used for a different request (the stored booking is returned otherwise);
        CodeTaken when the code is another customer's booking (mint another and try again).
        """
        ...

    def idempotency_fingerprint(self, customer_id: str, booking_code: str) -> str | None:
        """The request fingerprint stored with ``customer_id``'s keyed booking ``booking_code``."""
        ...

    def move(
        self, appointment: Appointment, new: Appointment, old_cells: list[datetime], new_cells: list[datetime]
    ) -> Appointment:
        """Reschedule/re-topic: claim new cells, update the record (If-Match), release the old cells."""
        ...

    def update(self, appointment: Appointment) -> Appointment:
        """Replace the record if its ETag still matches; raises StaleRecord otherwise."""
        ...

    def set_phase(
        self,
        booking_code: str,
        phase: Phase,
        since: datetime,
        *,
        revision: int | None = None,
        attention: str | None = None,
        current: Appointment | None = None,
    ) -> Appointment:
        """Record the orchestration's phase (idempotent; never over a terminal phase or a newer
        revision). ``current``: the record as just read, saving a read. Returns the record as it
        now stands; KeyError if there is none."""
        ...

    def advance_phase(self, appointment: Appointment, phase: Phase, since: datetime) -> bool:
        """Move the record to ``phase`` if it is unchanged since ``appointment`` was read (If-Match).

        Read-your-writes for the HTTP caller; False (nothing written) when it changed meanwhile.
        """
        ...

    def list_by_phase(self, phase: Phase | None) -> list[Appointment]:
        """Operators' view: every appointment, or those in ``phase``, soonest first."""
        ...

    def set_meeting(self, booking_code: str, meeting_id: str, join_url: str) -> None: ...

    def audit(self, entry: AuditEntry) -> None: ...

    def audit_trail(self, booking_code: str) -> list[AuditEntry]: ...

    def list_experts(self) -> list[Expert]: ...

    def get_expert(self, expert_id: str) -> Expert | None: ...

    def put_expert(self, expert: Expert) -> None: ...

    # Graph call-event subscriptions (one per appointment with a Teams meeting).

    def set_subscription(self, booking_code: str, subscription_id: str) -> None: ...

    def get_subscription(self, booking_code: str) -> str | None: ...


@runtime_checkable
class NotificationLog(Protocol):
    """What the notifier remembers: how far each notification key got; the customer's SMS/push rows."""

    def states(self, booking_code: str, key_hashes: Sequence[str]) -> dict[str, str]:
        """Each key's ``"sending"`` (an attempt began) or ``"sent"``; a key never tried is absent.
        One round trip."""
        ...

    def mark_all(
        self, booking_code: str, marks: Sequence[tuple[str, str, str]], state: str, at: datetime
    ) -> None:
        """Set ``(key hash, kind, recipient)`` rows to ``state`` in one write."""
        ...

    def queue_customer_messages(self, customer_id: str, rows: Mapping[str, dict[str, Any]]) -> bool:
        """Rows (by row key) for the bank's own SMS and push senders, inserted together in one
        transaction (they share the customer's partition). False, and nothing written, if they
        exist already."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        from datetime import UTC

        return datetime.now(UTC)


@dataclass(frozen=True)
class OutboxEntry:
    """A lifecycle event a trigger committed, kept until the orchestration acknowledges it.

    It is written in the same Table transaction as the change it announces, so a process that
    dies before raising the event loses nothing: the orchestration reads its outbox. Identifiers
    only, like every event.
    """

    booking_code: str
    entry_id: str  # sorts in commit order: the (virtual) commit time, the writer's ns clock, random
    event: str  # the Durable external event's name
    payload: dict[str, Any]

    @classmethod
    def new(cls, booking_code: str, event: str, payload: dict[str, Any], at: datetime) -> OutboxEntry:
        # The nanosecond clock orders entries made at the same (frozen, virtual) time.
        entry_id = f"{at:%Y%m%dT%H%M%S%f}-{time.time_ns():020d}-{secrets.token_hex(3)}"
        return cls(booking_code, entry_id, event, payload)


@runtime_checkable
class LifecycleOutbox(Protocol):
    """Each appointment's committed, not yet acknowledged lifecycle events (commit order)."""

    def add(self, entry: OutboxEntry, audit: AuditEntry | None = None) -> None:
        """Commit ``entry``, and ``audit`` (an entry of the same booking's trail) with it."""
        ...

    def pending(self, booking_code: str) -> list[OutboxEntry]: ...

    def ack(self, booking_code: str, entry_ids: list[str]) -> None:
        """Forget the entries (idempotent: an unknown id is fine)."""
        ...


@runtime_checkable
class IdentityStore(Protocol):
    """Identification codes and failure counters; writes are ETag-conditional (StaleRecord on a lost race).

    A code write may carry the outbox entry announcing it and the audit entry recording it: all
    are committed together, or none.
    """

    def get_code(self, booking_code: str) -> CodeRecord | None: ...

    def put_code(
        self, record: CodeRecord, event: OutboxEntry | None = None, audit: AuditEntry | None = None
    ) -> None: ...

    def update_code(
        self, record: CodeRecord, event: OutboxEntry | None = None, audit: AuditEntry | None = None
    ) -> None: ...

    def get_counter(self, key: str) -> FailureCounter: ...

    def save_counter(self, counter: FailureCounter) -> None: ...

    def reset_counter(self, key: str) -> None: ...
