"""Notifications as data: what kinds there are, who gets them, and what their templates see.

:class:`Notification` is the plain data an activity has at hand; :func:`build_context`
is the one place that turns it into the template context. Every date and time becomes
a ready-made Helsinki string here (through :mod:`appointments.localtime`), so templates
never do date logic. Every key is always present (``None`` when it does not apply), so
templates can test ``{% if join_url %}`` under ``StrictUndefined``.

Privacy: a notification never carries the identification code (the expert sees it only
in the API response) nor the customer's phone number; the customer's name may reach
the expert, and only when the caller passes ``customer_display_name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from appointments.catalogue import CHANNEL_LABELS, Channel
from appointments.localtime import (
    format_date,
    format_datetime,
    format_duration,
    format_time,
    require_language,
    weekday_name,
)


class NotificationKind(StrEnum):
    BOOKING_CONFIRMATION = "booking_confirmation"
    REMINDER = "reminder"
    JOIN_OPEN = "join_open"  # the join window opened (customer: start now; expert: the link)
    CUSTOMER_IN_LOBBY = "customer_in_lobby"
    IDENTITY_VERIFIED = "identity_verified"
    CODE_LOCKED = "code_locked"
    NEW_BOOKING = "new_booking"  # to the expert, with a calendar entry
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
    MEETING_FAILED = "meeting_failed"  # needs attention, e.g. the Teams meeting could not be created


class Recipient(StrEnum):
    CUSTOMER = "customer"
    EXPERT = "expert"


class Reminder(StrEnum):
    DAY_BEFORE = "day_before"
    HOUR_BEFORE = "hour_before"


_BOTH: Final = frozenset(Recipient)
_CUSTOMER: Final = frozenset({Recipient.CUSTOMER})
_EXPERT: Final = frozenset({Recipient.EXPERT})

RECIPIENTS: Final[Mapping[NotificationKind, frozenset[Recipient]]] = MappingProxyType(
    {
        NotificationKind.BOOKING_CONFIRMATION: _CUSTOMER,
        NotificationKind.REMINDER: _CUSTOMER,
        NotificationKind.JOIN_OPEN: _BOTH,
        NotificationKind.CUSTOMER_IN_LOBBY: _EXPERT,
        NotificationKind.IDENTITY_VERIFIED: _BOTH,
        NotificationKind.CODE_LOCKED: _EXPERT,
        NotificationKind.NEW_BOOKING: _EXPERT,
        NotificationKind.RESCHEDULED: _BOTH,
        NotificationKind.CANCELLED: _BOTH,
        NotificationKind.MEETING_FAILED: _EXPERT,
    }
)
"""Who may receive each kind; a template exists for every pair listed here."""

ONLINE_ONLY: Final = frozenset(
    {
        NotificationKind.JOIN_OPEN,
        NotificationKind.CUSTOMER_IN_LOBBY,
        NotificationKind.IDENTITY_VERIFIED,
        NotificationKind.CODE_LOCKED,
        NotificationKind.MEETING_FAILED,
    }
)
"""Kinds that only make sense for a Teams meeting."""


@dataclass(frozen=True)
class Notification:
    """Plain data for one notification to one recipient; validated on construction.

    ``join_url`` is where the recipient joins: the Teams link for the expert, the
    portal's meeting page for the customer (pressing *Join* there moves the appointment
    to the lobby phase). ``manage_url`` is the recipient's page for this appointment;
    ``cancel_url`` is the customer's cancel page.
    """

    kind: NotificationKind
    recipient: Recipient
    language: str
    booking_code: str
    start: datetime  # aware, UTC
    duration_minutes: int
    topic: str  # already localized, e.g. "Lainat, Asuntolainaneuvottelu"
    expert_name: str
    channel: Channel
    manage_url: str
    cancel_url: str | None = None
    join_url: str | None = None
    join_window_minutes: int = 15
    recorded: bool = True  # online meetings are recorded automatically (ARCHITECTURE.md §8)
    branch_address: str | None = None
    service_phone: str | None = None  # the bank's number for changes by phone
    reminder: Reminder | None = None
    previous_start: datetime | None = None  # aware, UTC; for RESCHEDULED
    previous_duration_minutes: int | None = None
    attempts: int | None = None  # failed code attempts; for CODE_LOCKED
    failure_reason: str | None = None  # for MEETING_FAILED, shown to the expert only
    customer_display_name: str | None = None  # expert notifications only

    def __post_init__(self) -> None:
        require_language(self.language)
        kind, recipient = NotificationKind(self.kind), Recipient(self.recipient)
        if recipient not in RECIPIENTS[kind]:
            raise ValueError(f"{kind} is not sent to the {recipient}")
        for name in ("start", "previous_start"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ValueError(f"{name} must be an aware datetime")
        if self.duration_minutes <= 0:
            raise ValueError("duration_minutes must be positive")
        if kind in ONLINE_ONLY and self.channel != Channel.ONLINE:
            raise ValueError(f"{kind} applies to online meetings only, not {self.channel}")
        if kind in {NotificationKind.JOIN_OPEN, NotificationKind.CUSTOMER_IN_LOBBY} and not self.join_url:
            raise ValueError(f"{kind} needs join_url")
        if kind is NotificationKind.REMINDER and self.reminder is None:
            raise ValueError("a reminder needs reminder=DAY_BEFORE or HOUR_BEFORE")
        if kind is NotificationKind.RESCHEDULED and self.previous_start is None:
            raise ValueError("a reschedule notification needs previous_start")
        if kind is NotificationKind.CODE_LOCKED and not self.attempts:
            raise ValueError("a code-locked notification needs attempts")
        if recipient is Recipient.CUSTOMER and self.customer_display_name is not None:
            raise ValueError("customer_display_name belongs in expert notifications only")


def build_context(n: Notification) -> dict[str, object]:
    """The template context for ``n``: plain strings, numbers, booleans and ``None``."""
    lang = require_language(n.language)
    end = n.start + timedelta(minutes=n.duration_minutes)
    previous = n.previous_start
    online = n.channel == Channel.ONLINE
    return {
        "kind": str(n.kind),
        "recipient": str(n.recipient),
        "lang": lang,
        "booking_code": n.booking_code,
        "start": format_datetime(n.start, lang),
        "start_date": format_date(n.start, lang),
        "start_weekday": weekday_name(n.start, lang),
        "start_time": format_time(n.start, lang),
        "end_time": format_time(end, lang),
        "duration": format_duration(n.duration_minutes, lang),
        "topic": n.topic,
        "expert_name": n.expert_name,
        "channel": str(n.channel),
        "channel_label": CHANNEL_LABELS[Channel(n.channel)][lang],
        "is_online": online,
        "is_phone": n.channel == Channel.PHONE,
        "is_branch": n.channel == Channel.BRANCH,
        "join_url": n.join_url,
        "join_window_minutes": n.join_window_minutes,
        "join_opens_time": format_time(n.start - timedelta(minutes=n.join_window_minutes), lang),
        "manage_url": n.manage_url,
        "cancel_url": n.cancel_url,
        "service_phone": n.service_phone,
        "branch_address": n.branch_address,
        "recording_notice": online and n.recorded,
        "reminder": str(n.reminder) if n.reminder is not None else None,
        "previous_start": format_datetime(previous, lang) if previous is not None else None,
        "previous_duration": (
            format_duration(n.previous_duration_minutes, lang) if n.previous_duration_minutes else None
        ),
        "attempts": n.attempts,
        "failure_reason": n.failure_reason,
        "customer_display_name": n.customer_display_name if n.recipient == Recipient.EXPERT else None,
    }
