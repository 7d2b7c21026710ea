"""The appointment record, the expert directory entry, and the lifecycle phases."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from appointments.catalogue import Channel


class Phase(StrEnum):
    BOOKED = "booked"
    JOIN_OPEN = "join_open"
    LOBBY = "lobby"
    CODE_ISSUED = "code_issued"
    VERIFIED = "verified"
    ENDED = "ended"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({Phase.ENDED, Phase.CANCELLED, Phase.NO_SHOW})


@dataclass(frozen=True)
class Appointment:
    booking_code: str
    customer_id: str
    expert_id: str
    channel: Channel
    topic_id: str
    start: datetime  # aware, UTC
    duration_minutes: int
    language: str
    phone: str  # E.164; personal data: never leaves the Appointments table but to its owner
    email: str | None = None
    extra_info: str = ""
    phase: Phase = Phase.BOOKED
    phase_since: datetime | None = None
    created_at: datetime | None = None
    revision: int = 0  # bumped on every reschedule; the orchestration input carries it
    meeting_id: str | None = None
    join_url: str | None = None
    attention: str | None = None  # e.g. "meeting_creation_failed": shown to the expert and ops
    # The principal's name claim at booking; personal data: the expert's card only, never in
    # orchestration payloads or logs.
    customer_name: str | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.duration_minutes)

    def with_changes(self, **changes: object) -> Appointment:
        return replace(self, **changes)  # type: ignore[arg-type]  # field names are checked by replace at run time


@dataclass(frozen=True)
class WorkingHours:
    """One weekly window in Helsinki local time; weekday 0 = Monday."""

    weekday: int
    start: str  # "08:00"
    end: str  # "16:00"


def require_object_id(expert_id: str) -> str:
    """An expert id must be the expert's Entra object id (a GUID): Graph's createOrGet keys the
    meeting on tenant + organizer object id + externalId, and access policies name object ids."""
    try:
        parsed = uuid.UUID(expert_id)
    except (ValueError, AttributeError, TypeError) as exc:
        raise ValueError("an expert id must be the expert's Entra object id (a GUID)") from exc
    if str(parsed) != expert_id.lower():  # braces, URNs and hex without dashes are not object ids
        raise ValueError("an expert id must be the expert's Entra object id (a GUID)")
    return expert_id


@dataclass(frozen=True)
class Expert:
    expert_id: str  # the Graph user id (object id) of the expert
    display_name: str
    email: str
    topics: tuple[str, ...]
    languages: tuple[str, ...]
    channels: tuple[Channel, ...] = (Channel.ONLINE, Channel.PHONE, Channel.BRANCH)
    title: str = ""
    bank: str = ""  # the bank or branch the expert works for, e.g. "Malliharjun Osuuspankki"
    working_hours: tuple[WorkingHours, ...] = ()
    active: bool = True

    def serves(self, topic_id: str, language: str | None = None, channel: Channel | None = None) -> bool:
        return (
            self.active
            and topic_id in self.topics
            and (language is None or language in self.languages)
            and (channel is None or channel in self.channels)
        )
