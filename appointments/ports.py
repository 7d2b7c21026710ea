"""Ports: the small interfaces the domain and the activities talk to.

Real implementations live in ``adapters/``; in-memory fakes live in ``tests/``.
Graph-facing ports are async because ``msgraph-sdk`` is; the Table repository is
synchronous (HTTP triggers call it through ``asyncio.to_thread``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


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


@dataclass(frozen=True)
class CallEventSubscription:
    subscription_id: str
    resource: str
    expires_at: datetime


class MeetingGateway(Protocol):
    """Teams online meetings (Microsoft Graph)."""

    async def create_or_get(self, request: MeetingRequest) -> Meeting: ...

    async def update_times(self, organizer_id: str, meeting_id: str, start: datetime, end: datetime) -> None: ...

    async def delete(self, organizer_id: str, meeting_id: str) -> None:
        """Delete the meeting; a meeting that is already gone is not an error."""
        ...

    async def get_schedule(
        self, organizer_ids: list[str], start: datetime, end: datetime
    ) -> dict[str, list[BusyInterval]]: ...

    async def subscribe_call_events(
        self, organizer_id: str, meeting: Meeting, notification_url: str, client_state: str
    ) -> CallEventSubscription: ...

    async def renew_subscription(self, subscription_id: str, expires_at: datetime) -> CallEventSubscription: ...


class MailSender(Protocol):
    """Mail from the service mailbox (Graph ``sendMail``)."""

    async def send(self, message: MailMessage) -> None: ...


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
