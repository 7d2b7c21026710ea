"""The appointment lifecycle as a pure state machine (DESIGN §3).

``decide(state, event) -> Decision`` is the only place that knows which event is
allowed in which phase and what must happen then. Side effects are returned as
plain data (``actions``); the orchestrator carries them out and owns nothing else.
``next_deadline(state)`` tells the orchestrator which timer to set in a phase.

Everything here is JSON-friendly and free of personal data, because states and
events travel through the Durable history, which operators can read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from appointments.catalogue import Channel
from appointments.errors import IllegalTransition
from appointments.model import IN_MEETING_PHASES, Phase
from appointments.notifications import NotificationKind, Recipient, Reminder
from appointments.timerules import iso, parse_utc


class EventType(StrEnum):
    """Events the orchestration reacts to. External ones are raised by HTTP triggers."""

    # external events (names of Durable external events)
    CUSTOMER_JOINED = "CustomerJoined"
    CODE_ISSUED = "CodeIssued"
    CODE_VERIFIED = "CodeVerified"
    CODE_LOCKED = "CodeLocked"
    MEETING_ENDED = "MeetingEnded"
    CANCELLED = "Cancelled"
    RESCHEDULED = "Rescheduled"
    # timer events (produced by the orchestrator's own durable timers)
    JOIN_WINDOW_OPENED = "JoinWindowOpened"
    NO_SHOW_TIMEOUT = "NoShowTimeout"
    CODE_EXPIRED = "CodeExpired"
    END_TIMEOUT = "EndTimeout"
    REMINDER_DUE = "ReminderDue"
    # activity outcome
    MEETING_FAILED = "MeetingFailed"


EXTERNAL_EVENTS: tuple[EventType, ...] = (
    EventType.CUSTOMER_JOINED,
    EventType.CODE_ISSUED,
    EventType.CODE_VERIFIED,
    EventType.CODE_LOCKED,
    EventType.MEETING_ENDED,
    EventType.CANCELLED,
    EventType.RESCHEDULED,
)


class ActionType(StrEnum):
    CREATE_MEETING = "create_meeting"
    UPDATE_MEETING = "update_meeting"
    DELETE_MEETING = "delete_meeting"
    NOTIFY = "notify"
    CONTINUE_AS_NEW = "continue_as_new"


@dataclass(frozen=True)
class Action:
    type: ActionType
    kind: NotificationKind | None = None  # for NOTIFY
    reminder: Reminder | None = None  # for NOTIFY of a reminder
    recipient: Recipient | None = None
    start: datetime | None = None  # new times, for UPDATE_MEETING and CONTINUE_AS_NEW
    end: datetime | None = None


def notify(kind: NotificationKind, recipient: Recipient) -> Action:
    return Action(ActionType.NOTIFY, kind=kind, recipient=recipient)


# Reminders to the customer, before the start (all channels).
REMINDERS: tuple[tuple[Reminder, timedelta], ...] = (
    (Reminder.DAY_BEFORE, timedelta(hours=24)),
    (Reminder.HOUR_BEFORE, timedelta(hours=1)),
)


@dataclass(frozen=True)
class Policy:
    """The time settings an orchestration needs, fixed in its input (orchestrators read no settings)."""

    join_window_minutes: int = 15
    end_grace_minutes: int = 30

    def to_json(self) -> dict[str, int]:
        return {"joinWindowMinutes": self.join_window_minutes, "endGraceMinutes": self.end_grace_minutes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Policy:
        return cls(int(data["joinWindowMinutes"]), int(data["endGraceMinutes"]))


@dataclass(frozen=True)
class LifecycleState:
    booking_code: str
    channel: Channel
    expert_id: str
    start: datetime
    end: datetime
    policy: Policy = field(default_factory=Policy)
    revision: int = 0
    phase: Phase = Phase.BOOKED
    since: datetime | None = None
    code_expires_at: datetime | None = None
    attention: str | None = None
    reminders_done: frozenset[Reminder] = frozenset()  # sent, or skipped because booked too late

    def reminders_due(self) -> list[tuple[datetime, Reminder]]:
        return sorted((self.start - before, r) for r, before in REMINDERS if r not in self.reminders_done)

    @property
    def join_window_opens_at(self) -> datetime:
        return self.start - timedelta(minutes=self.policy.join_window_minutes)

    @property
    def end_deadline(self) -> datetime:
        return self.end + timedelta(minutes=self.policy.end_grace_minutes)

    def to_input(self) -> dict[str, Any]:
        """The orchestration input: identifiers and times only, nothing personal."""
        return {
            "bookingCode": self.booking_code,
            "channel": self.channel.value,
            "expertId": self.expert_id,
            "start": iso(self.start),
            "end": iso(self.end),
            "revision": self.revision,
            "policy": self.policy.to_json(),
        }

    @classmethod
    def from_input(cls, data: dict[str, Any]) -> LifecycleState:
        return cls(
            booking_code=str(data["bookingCode"]),
            channel=Channel(data["channel"]),
            expert_id=str(data["expertId"]),
            start=parse_utc(data["start"]),
            end=parse_utc(data["end"]),
            revision=int(data.get("revision", 0)),
            policy=Policy.from_json(data["policy"]),
        )

    def custom_status(self) -> dict[str, Any]:
        """Durable custom status: what operators and the expert console see. No personal data."""
        status: dict[str, Any] = {
            "phase": self.phase.value,
            "since": iso(self.since) if self.since else None,
            "channel": self.channel.value,
            "start": iso(self.start),
            "end": iso(self.end),
            "revision": self.revision,
        }
        if self.channel is Channel.ONLINE:
            status["joinWindowOpensAt"] = iso(self.join_window_opens_at)
        if self.code_expires_at is not None:
            status["codeExpiresAt"] = iso(self.code_expires_at)
        if self.attention:
            status["attention"] = self.attention
        return status


@dataclass(frozen=True)
class Event:
    type: EventType
    at: datetime  # when the orchestration saw it (context.current_utc_datetime)
    start: datetime | None = None  # Rescheduled
    end: datetime | None = None  # Rescheduled
    expires_at: datetime | None = None  # CodeIssued
    reason: str | None = None  # MeetingFailed, MeetingEnded (source)
    revision: int | None = None  # Rescheduled: the record's revision after the change
    occurred_at: datetime | None = None  # MeetingEnded from Graph: the call event's own time


@dataclass(frozen=True)
class Decision:
    state: LifecycleState
    actions: tuple[Action, ...] = ()

    @property
    def is_done(self) -> bool:
        return self.state.phase.is_terminal or any(a.type is ActionType.CONTINUE_AS_NEW for a in self.actions)


# Which events each phase accepts. Everything else is an IllegalTransition.
ALLOWED: dict[Phase, frozenset[EventType]] = {
    Phase.BOOKED: frozenset(
        {
            EventType.JOIN_WINDOW_OPENED,
            EventType.CANCELLED,
            EventType.RESCHEDULED,
            EventType.END_TIMEOUT,
            EventType.REMINDER_DUE,
        }
    ),
    Phase.JOIN_OPEN: frozenset(
        {
            EventType.CUSTOMER_JOINED,
            EventType.CANCELLED,
            EventType.RESCHEDULED,
            EventType.NO_SHOW_TIMEOUT,
            EventType.MEETING_ENDED,
            EventType.MEETING_FAILED,
        }
    ),
    Phase.LOBBY: frozenset({EventType.CODE_ISSUED, EventType.MEETING_ENDED, EventType.END_TIMEOUT}),
    Phase.CODE_ISSUED: frozenset(
        {
            EventType.CODE_ISSUED,
            EventType.CODE_VERIFIED,
            EventType.CODE_LOCKED,
            EventType.CODE_EXPIRED,
            EventType.MEETING_ENDED,
            EventType.END_TIMEOUT,
        }
    ),
    Phase.VERIFIED: frozenset({EventType.MEETING_ENDED, EventType.END_TIMEOUT}),
    Phase.ENDED: frozenset(),
    Phase.CANCELLED: frozenset(),
    Phase.NO_SHOW: frozenset(),
}


def is_allowed(phase: Phase, event: EventType, channel: Channel = Channel.ONLINE) -> bool:
    if channel is not Channel.ONLINE and phase is Phase.BOOKED:
        # Phone and branch appointments have no meeting phases: only change, cancel or end.
        return event in {
            EventType.CANCELLED,
            EventType.RESCHEDULED,
            EventType.END_TIMEOUT,
            EventType.REMINDER_DUE,
        }
    if channel is Channel.ONLINE and event is EventType.END_TIMEOUT and phase is Phase.BOOKED:
        return False
    return event in ALLOWED[phase]


def start(state: LifecycleState, at: datetime) -> Decision:
    """What happens when an orchestration (or a rescheduled one) starts.

    Reminders whose time has already passed (a booking made less than a day ahead) are skipped.
    """
    late = frozenset(r for due, r in state.reminders_due() if due <= at)
    new = replace(state, phase=Phase.BOOKED, since=at, reminders_done=state.reminders_done | late)
    if state.revision == 0:
        return Decision(
            new,
            (
                notify(NotificationKind.BOOKING_CONFIRMATION, Recipient.CUSTOMER),
                notify(NotificationKind.NEW_BOOKING, Recipient.EXPERT),
            ),
        )
    return Decision(new)


def next_deadline(state: LifecycleState) -> tuple[datetime, EventType] | None:
    """The timer the orchestrator sets in this phase, if any."""
    phase = state.phase
    if phase is Phase.BOOKED:
        main = (
            (state.join_window_opens_at, EventType.JOIN_WINDOW_OPENED)
            if state.channel is Channel.ONLINE
            else (state.end, EventType.END_TIMEOUT)
        )
        reminders = state.reminders_due()
        if reminders and reminders[0][0] < main[0]:
            return reminders[0][0], EventType.REMINDER_DUE
        return main
    if phase is Phase.JOIN_OPEN:
        # A customer who has not joined by the scheduled end did not show up.
        return state.end, EventType.NO_SHOW_TIMEOUT
    if phase is Phase.CODE_ISSUED and state.code_expires_at and state.code_expires_at < state.end_deadline:
        return state.code_expires_at, EventType.CODE_EXPIRED
    if phase in (Phase.LOBBY, Phase.CODE_ISSUED, Phase.VERIFIED):
        return state.end_deadline, EventType.END_TIMEOUT
    return None


GRAPH_SOURCE = "graph"  # Event.reason of a MeetingEnded raised by Graph's call-ended notification


def _stale_call_end(state: LifecycleState, event: Event) -> bool:
    """A Teams call that ended before the customer was in it does not end the appointment:
    before the lobby (the expert's empty call), or older than the phase it would end (a
    replayed or late notification). Without a time of its own it is not believed either."""
    if state.phase not in IN_MEETING_PHASES or event.occurred_at is None:
        return True
    return state.since is not None and event.occurred_at < state.since


def decide(state: LifecycleState, event: Event) -> Decision:
    """Apply ``event`` to ``state``; raise IllegalTransition when the phase does not allow it."""
    if not is_allowed(state.phase, event.type, state.channel):
        raise IllegalTransition(state.phase.value, event.type.value)

    def to(phase: Phase, *actions: Action, **changes: Any) -> Decision:
        return Decision(replace(state, phase=phase, since=event.at, **changes), actions)

    match event.type:
        case EventType.JOIN_WINDOW_OPENED:
            return to(
                Phase.JOIN_OPEN,
                Action(ActionType.CREATE_MEETING),
                notify(NotificationKind.JOIN_OPEN, Recipient.EXPERT),
                notify(NotificationKind.JOIN_OPEN, Recipient.CUSTOMER),
            )
        case EventType.CUSTOMER_JOINED:
            return to(Phase.LOBBY, notify(NotificationKind.CUSTOMER_IN_LOBBY, Recipient.EXPERT))
        case EventType.CODE_ISSUED:
            if event.expires_at is None:
                raise ValueError("CodeIssued needs expires_at")
            return to(Phase.CODE_ISSUED, code_expires_at=event.expires_at)
        case EventType.CODE_VERIFIED:
            return to(
                Phase.VERIFIED,
                notify(NotificationKind.IDENTITY_VERIFIED, Recipient.EXPERT),
                notify(NotificationKind.IDENTITY_VERIFIED, Recipient.CUSTOMER),
                code_expires_at=None,
            )
        case EventType.CODE_LOCKED:
            return to(
                Phase.LOBBY, notify(NotificationKind.CODE_LOCKED, Recipient.EXPERT), code_expires_at=None
            )
        case EventType.CODE_EXPIRED:
            return to(Phase.LOBBY, code_expires_at=None)
        case EventType.MEETING_ENDED if event.reason == GRAPH_SOURCE and _stale_call_end(state, event):
            return Decision(state)
        case EventType.MEETING_ENDED | EventType.END_TIMEOUT:
            return to(Phase.ENDED, code_expires_at=None)
        case EventType.NO_SHOW_TIMEOUT:
            return to(Phase.NO_SHOW)
        case EventType.REMINDER_DUE:
            due = state.reminders_due()
            if not due:
                return Decision(state)
            reminder = Reminder(event.reason) if event.reason else due[0][1]
            if reminder in state.reminders_done:
                return Decision(state)
            action = Action(
                ActionType.NOTIFY,
                kind=NotificationKind.REMINDER,
                recipient=Recipient.CUSTOMER,
                reminder=reminder,
            )
            return Decision(replace(state, reminders_done=state.reminders_done | {reminder}), (action,))
        case EventType.MEETING_FAILED:
            # Stay in the join window: the expert is told and can still phone the customer.
            return Decision(
                replace(state, attention=event.reason or "meeting_creation_failed"),
                (notify(NotificationKind.MEETING_FAILED, Recipient.EXPERT),),
            )
        case EventType.CANCELLED:
            actions: list[Action] = []
            if state.phase is Phase.JOIN_OPEN and state.channel is Channel.ONLINE:
                actions.append(Action(ActionType.DELETE_MEETING))
            actions += [
                notify(NotificationKind.CANCELLED, Recipient.EXPERT),
                notify(NotificationKind.CANCELLED, Recipient.CUSTOMER),
            ]
            return to(Phase.CANCELLED, *actions)
        case EventType.RESCHEDULED:
            if event.start is None or event.end is None or event.end <= event.start:
                raise ValueError("Rescheduled needs start < end")
            if (event.start, event.end) == (state.start, state.end):
                return Decision(state)  # a retried request raised the same change again: nothing to do
            actions = []
            if state.phase is Phase.JOIN_OPEN and state.channel is Channel.ONLINE:
                actions.append(Action(ActionType.UPDATE_MEETING, start=event.start, end=event.end))
            actions += [
                notify(NotificationKind.RESCHEDULED, Recipient.EXPERT),
                notify(NotificationKind.RESCHEDULED, Recipient.CUSTOMER),
                Action(ActionType.CONTINUE_AS_NEW, start=event.start, end=event.end),
            ]
            revision = event.revision if event.revision is not None else state.revision + 1
            return Decision(
                replace(
                    state,
                    start=event.start,
                    end=event.end,
                    revision=revision,
                    phase=Phase.BOOKED,
                    since=event.at,
                    code_expires_at=None,
                    attention=None,
                ),
                tuple(actions),
            )
    raise AssertionError(f"unhandled event {event.type}")  # pragma: no cover - match is exhaustive
