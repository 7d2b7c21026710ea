"""The appointment lifecycle as one transition table and a pure state machine.

``TRANSITIONS`` is the single source of truth: for each channel, phase and event it names the
phase that follows and the steps to take. Everything else is derived from it:

- ``decide(state, event) -> Decision``: the new state and every action, as plain data
  (including recording the phase and picking the reminder); the orchestrator only carries
  the actions out;
- ``predicted_phase``: the phase an HTTP trigger may write right after raising an event, so its
  caller reads its own change before the orchestration records it;
- ``phases_accepting``: e.g. where an identification code may be issued or verified;
- ``capabilities``: what the customer or the expert may do with one appointment now, with a
  stable reason code for every "no" (the API and the portal show these, never phase lists);
- ``docs/LIFECYCLE.md``: ``render_markdown()``; a unit test fails when the file is stale.

Everything here is JSON-friendly and free of personal data, because states and
events travel through the Durable history, which operators can read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Final

from appointments.catalogue import Channel
from appointments.errors import IllegalTransition
from appointments.model import Phase
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
    # activity outcomes
    MEETING_FAILED = "MeetingFailed"  # the Teams meeting could not be created
    MEETING_ATTENTION = "MeetingAttention"  # the meeting exists, but e.g. its call events were refused


EXTERNAL_EVENTS: tuple[EventType, ...] = (
    EventType.CUSTOMER_JOINED,
    EventType.CODE_ISSUED,
    EventType.CODE_VERIFIED,
    EventType.CODE_LOCKED,
    EventType.MEETING_ENDED,
    EventType.CANCELLED,
    EventType.RESCHEDULED,
)

# --- events: one small type per kind -------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Base of every event; ``at`` is when the orchestration saw it (``current_utc_datetime``)."""

    type: ClassVar[EventType]
    at: datetime

    def to_payload(self) -> dict[str, Any]:
        """The external event's JSON body (what a trigger raises)."""
        return {}


@dataclass(frozen=True)
class CustomerJoined(Event):
    type = EventType.CUSTOMER_JOINED


@dataclass(frozen=True)
class CodeIssued(Event):
    type = EventType.CODE_ISSUED
    expires_at: datetime

    def to_payload(self) -> dict[str, Any]:
        return {"expiresAt": iso(self.expires_at)}


@dataclass(frozen=True)
class CodeVerified(Event):
    type = EventType.CODE_VERIFIED


@dataclass(frozen=True)
class CodeLocked(Event):
    type = EventType.CODE_LOCKED


GRAPH_SOURCE = "graph"  # MeetingEnded.source when Graph's call-ended notification raised it


@dataclass(frozen=True)
class MeetingEnded(Event):
    type = EventType.MEETING_ENDED
    source: str = "expert"  # "expert", or GRAPH_SOURCE
    occurred_at: datetime | None = None  # from Graph: the call event's own time

    def to_payload(self) -> dict[str, Any]:
        return {"source": self.source, "occurredAt": iso(self.occurred_at) if self.occurred_at else None}


@dataclass(frozen=True)
class Cancelled(Event):
    type = EventType.CANCELLED


@dataclass(frozen=True)
class Rescheduled(Event):
    type = EventType.RESCHEDULED
    start: datetime
    end: datetime
    revision: int | None = None  # the record's revision after the change

    def to_payload(self) -> dict[str, Any]:
        return {"start": iso(self.start), "end": iso(self.end), "revision": self.revision}


@dataclass(frozen=True)
class JoinWindowOpened(Event):
    type = EventType.JOIN_WINDOW_OPENED


@dataclass(frozen=True)
class NoShowTimeout(Event):
    type = EventType.NO_SHOW_TIMEOUT


@dataclass(frozen=True)
class CodeExpired(Event):
    type = EventType.CODE_EXPIRED


@dataclass(frozen=True)
class EndTimeout(Event):
    type = EventType.END_TIMEOUT


@dataclass(frozen=True)
class ReminderDue(Event):
    type = EventType.REMINDER_DUE


@dataclass(frozen=True)
class MeetingFailed(Event):
    type = EventType.MEETING_FAILED
    reason: str = "meeting_creation_failed"


@dataclass(frozen=True)
class MeetingAttention(Event):
    type = EventType.MEETING_ATTENTION
    reason: str


EVENT_TYPES: Final[Mapping[EventType, type[Event]]] = MappingProxyType(
    {
        cls.type: cls
        for cls in (
            CustomerJoined,
            CodeIssued,
            CodeVerified,
            CodeLocked,
            MeetingEnded,
            Cancelled,
            Rescheduled,
            JoinWindowOpened,
            NoShowTimeout,
            CodeExpired,
            EndTimeout,
            ReminderDue,
            MeetingFailed,
            MeetingAttention,
        )
    }
)
TIMER_EVENTS: Final = {
    EventType.JOIN_WINDOW_OPENED: JoinWindowOpened,
    EventType.NO_SHOW_TIMEOUT: NoShowTimeout,
    EventType.CODE_EXPIRED: CodeExpired,
    EventType.END_TIMEOUT: EndTimeout,
    EventType.REMINDER_DUE: ReminderDue,
}


def event_from_payload(name: str, payload: object, at: datetime) -> Event:
    """An external event from its Durable name and JSON body; ValueError/KeyError/TypeError if malformed."""
    kind = EventType(name)
    if kind not in EXTERNAL_EVENTS:
        raise ValueError(f"{name} is not an external event")
    data: Mapping[str, Any] = payload if isinstance(payload, dict) else {}
    match kind:
        case EventType.CODE_ISSUED:
            return CodeIssued(at, parse_utc(data["expiresAt"]))
        case EventType.MEETING_ENDED:
            occurred = parse_utc(data["occurredAt"]) if data.get("occurredAt") else None
            return MeetingEnded(at, str(data.get("source") or "expert"), occurred)
        case EventType.RESCHEDULED:
            revision = data.get("revision")
            return Rescheduled(
                at,
                parse_utc(data["start"]),
                parse_utc(data["end"]),
                int(revision) if revision is not None else None,
            )
    return EVENT_TYPES[kind](at)


@dataclass(frozen=True)
class Missed:
    """What a look at the record and the outbox (``load_schedule``'s answer) brings that the
    lifecycle's state does not know: events (with the outbox entry each stands for), and how many
    outbox entries were malformed (skipped: nothing can apply them)."""

    events: tuple[tuple[Event, str | None], ...] = ()
    malformed: int = 0


def missed(schedule: Mapping[str, Any] | None, phase: Phase, revision: int, at: datetime) -> Missed:
    """The events a lifecycle in ``phase`` at ``revision`` missed, from a look at its record and
    outbox: a cancellation or reschedule the record shows (an event lost by a crashed client, or
    raised while the orchestration continued as new), and the meeting events a trigger committed
    to the outbox but may never have raised, in commit order. The orchestrator applies them; the
    activity that carries out a deadline checks with the same function that there are none."""
    if schedule is None:
        return Missed()
    events: list[tuple[Event, str | None]] = []
    if schedule["phase"] == Phase.CANCELLED.value and not phase.is_terminal:
        events.append((Cancelled(at), None))
    elif int(schedule["revision"]) > revision:
        start, end = parse_utc(schedule["start"]), parse_utc(schedule["end"])
        events.append((Rescheduled(at, start, end, int(schedule["revision"])), None))
    malformed = 0
    for entry in schedule.get("pending", []):
        try:
            events.append((event_from_payload(entry["event"], entry["payload"], at), str(entry["id"])))
        except (KeyError, ValueError, TypeError):
            malformed += 1
    return Missed(tuple(events), malformed)


# --- actions: one small type per kind ------------------------------------------------------------


@dataclass(frozen=True)
class RecordPhase:
    """Write the phase to the Appointments record and the custom status."""

    phase: Phase
    since: datetime
    revision: int
    attention: str | None = None


@dataclass(frozen=True)
class CreateMeeting:
    pass


@dataclass(frozen=True)
class UpdateMeeting:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class DeleteMeeting:
    pass


@dataclass(frozen=True)
class Notify:
    kind: NotificationKind
    recipient: Recipient
    reminder: Reminder | None = None


@dataclass(frozen=True)
class ContinueAsNew:
    """Restart the orchestration from the decided state (``LifecycleState.to_input``): new times
    after a reschedule, or the meeting's phases on a history of their own. Keeps the history short."""

    start: datetime
    end: datetime


Action = RecordPhase | CreateMeeting | UpdateMeeting | DeleteMeeting | Notify | ContinueAsNew


# --- the transition table -----------------------------------------------------------------------


class Step(StrEnum):
    """What a transition does besides changing the phase (the table's vocabulary)."""

    CREATE_MEETING = "create the Teams meeting"
    UPDATE_MEETING = "move the Teams meeting to the new times"
    DELETE_MEETING = "delete the Teams meeting"
    SET_CODE_EXPIRY = "remember the code's expiry"
    CLEAR_CODE_EXPIRY = "forget the code's expiry"
    SEND_REMINDER = "send the due reminder to the customer"
    SET_ATTENTION = "flag the appointment for attention"
    NEW_TIMES = "take the new times and continue as new"
    CONTINUE_AS_NEW = "continue as new in this phase (the meeting's own, short history)"


@dataclass(frozen=True)
class Tell:
    kind: NotificationKind
    recipient: Recipient

    def __str__(self) -> str:
        return f"tell the {self.recipient.value}: {self.kind.value}"


@dataclass(frozen=True)
class Transition:
    to: Phase
    steps: tuple[Step | Tell, ...] = ()


def _tell_both(kind: NotificationKind) -> tuple[Tell, Tell]:
    return Tell(kind, Recipient.EXPERT), Tell(kind, Recipient.CUSTOMER)


P, E = Phase, EventType
_ALL_CHANNELS = tuple(Channel)
_ONLINE = (Channel.ONLINE,)
_OFFLINE = (Channel.PHONE, Channel.BRANCH)
_ENDED = Transition(P.ENDED, (Step.CLEAR_CODE_EXPIRY,))
_REMIND = (Step.SEND_REMINDER,)

_ROWS: tuple[tuple[tuple[Channel, ...], Phase, EventType, Transition], ...] = (
    # booked: reminders, then (online) the join window, or (phone, branch) the end
    (_ALL_CHANNELS, P.BOOKED, E.REMINDER_DUE, Transition(P.BOOKED, _REMIND)),
    (_ALL_CHANNELS, P.BOOKED, E.CANCELLED, Transition(P.CANCELLED, _tell_both(NotificationKind.CANCELLED))),
    (
        _ALL_CHANNELS,
        P.BOOKED,
        E.RESCHEDULED,
        Transition(P.BOOKED, (*_tell_both(NotificationKind.RESCHEDULED), Step.NEW_TIMES)),
    ),
    (
        _ONLINE,
        P.BOOKED,
        E.JOIN_WINDOW_OPENED,
        Transition(
            P.JOIN_OPEN,
            (Step.CREATE_MEETING, *_tell_both(NotificationKind.JOIN_OPEN), Step.CONTINUE_AS_NEW),
        ),
    ),
    (_OFFLINE, P.BOOKED, E.END_TIMEOUT, _ENDED),
    # join_open: the meeting exists; the customer may join until the scheduled end
    (
        _ONLINE,
        P.JOIN_OPEN,
        E.CUSTOMER_JOINED,
        Transition(P.LOBBY, (Tell(NotificationKind.CUSTOMER_IN_LOBBY, Recipient.EXPERT),)),
    ),
    (
        _ONLINE,
        P.JOIN_OPEN,
        E.CANCELLED,
        Transition(P.CANCELLED, (Step.DELETE_MEETING, *_tell_both(NotificationKind.CANCELLED))),
    ),
    (
        _ONLINE,
        P.JOIN_OPEN,
        E.RESCHEDULED,
        Transition(
            P.BOOKED, (Step.UPDATE_MEETING, *_tell_both(NotificationKind.RESCHEDULED), Step.NEW_TIMES)
        ),
    ),
    (_ONLINE, P.JOIN_OPEN, E.NO_SHOW_TIMEOUT, Transition(P.NO_SHOW)),
    (_ONLINE, P.JOIN_OPEN, E.MEETING_ENDED, _ENDED),
    (
        _ONLINE,
        P.JOIN_OPEN,
        E.MEETING_FAILED,
        Transition(
            P.JOIN_OPEN, (Step.SET_ATTENTION, Tell(NotificationKind.MEETING_FAILED, Recipient.EXPERT))
        ),
    ),
    (_ONLINE, P.JOIN_OPEN, E.MEETING_ATTENTION, Transition(P.JOIN_OPEN, (Step.SET_ATTENTION,))),
    # lobby: the customer waits for the expert's identification code
    (_ONLINE, P.LOBBY, E.CODE_ISSUED, Transition(P.CODE_ISSUED, (Step.SET_CODE_EXPIRY,))),
    (_ONLINE, P.LOBBY, E.MEETING_ENDED, _ENDED),
    (_ONLINE, P.LOBBY, E.END_TIMEOUT, _ENDED),
    # code_issued: the customer types the code; a new code replaces the old one
    (_ONLINE, P.CODE_ISSUED, E.CODE_ISSUED, Transition(P.CODE_ISSUED, (Step.SET_CODE_EXPIRY,))),
    (
        _ONLINE,
        P.CODE_ISSUED,
        E.CODE_VERIFIED,
        Transition(P.VERIFIED, (Step.CLEAR_CODE_EXPIRY, *_tell_both(NotificationKind.IDENTITY_VERIFIED))),
    ),
    (
        _ONLINE,
        P.CODE_ISSUED,
        E.CODE_LOCKED,
        Transition(P.LOBBY, (Step.CLEAR_CODE_EXPIRY, Tell(NotificationKind.CODE_LOCKED, Recipient.EXPERT))),
    ),
    (_ONLINE, P.CODE_ISSUED, E.CODE_EXPIRED, Transition(P.LOBBY, (Step.CLEAR_CODE_EXPIRY,))),
    (_ONLINE, P.CODE_ISSUED, E.MEETING_ENDED, _ENDED),
    (_ONLINE, P.CODE_ISSUED, E.END_TIMEOUT, _ENDED),
    # verified: the meeting goes on until someone ends it or the grace period is over
    (_ONLINE, P.VERIFIED, E.MEETING_ENDED, _ENDED),
    (_ONLINE, P.VERIFIED, E.END_TIMEOUT, _ENDED),
)

TRANSITIONS: Final[Mapping[tuple[Channel, Phase, EventType], Transition]] = MappingProxyType(
    {(channel, phase, event): t for channels, phase, event, t in _ROWS for channel in channels}
)


def transition(channel: Channel, phase: Phase, event: EventType) -> Transition | None:
    return TRANSITIONS.get((channel, phase, event))


def accepts(channel: Channel, phase: Phase, event: EventType) -> bool:
    return (channel, phase, event) in TRANSITIONS


def phases_accepting(event: EventType, channel: Channel = Channel.ONLINE) -> frozenset[Phase]:
    return frozenset(p for (c, p, e) in TRANSITIONS if c is channel and e is event)


def predicted_phase(channel: Channel, phase: Phase, event: EventType) -> Phase | None:
    """The phase an HTTP trigger may write after raising ``event`` when the record says ``phase``.

    Only for the trigger-raised meeting events; cancel and reschedule write the record themselves.
    None when the event changes nothing the record shows (or is not accepted).
    """
    if event not in PREDICTABLE_EVENTS:
        return None
    t = transition(channel, phase, event)
    return t.to if t is not None and t.to is not phase else None


PREDICTABLE_EVENTS: Final = frozenset(
    {E.CUSTOMER_JOINED, E.CODE_ISSUED, E.CODE_VERIFIED, E.CODE_LOCKED, E.MEETING_ENDED}
)


def _events_of(phase: Phase, channel: Channel = Channel.ONLINE) -> frozenset[EventType]:
    return frozenset(e for (c, p, e) in TRANSITIONS if c is channel and p is phase)


def _reachable(starts: Iterable[Phase], channel: Channel = Channel.ONLINE) -> frozenset[Phase]:
    seen: set[Phase] = set()
    todo = list(starts)
    while todo:
        phase = todo.pop()
        if phase in seen or phase.is_terminal:
            continue
        seen.add(phase)
        todo += [t.to for (c, p, _), t in TRANSITIONS.items() if c is channel and p is phase]
    return frozenset(seen)


# Where a code may be issued; where it may be verified: where the table takes CodeVerified, and
# where a CodeIssued the record has not caught up with yet leads to such a phase.
CODE_ISSUE_PHASES: Final = phases_accepting(E.CODE_ISSUED)
CODE_VERIFY_PHASES: Final = phases_accepting(E.CODE_VERIFIED) | frozenset(
    p
    for p in CODE_ISSUE_PHASES
    if E.CODE_VERIFIED in _events_of(TRANSITIONS[Channel.ONLINE, p, E.CODE_ISSUED].to)
)
# The customer has joined: every phase reachable from the lobby, short of the end.
IN_MEETING_PHASES: Final = _reachable([TRANSITIONS[Channel.ONLINE, P.JOIN_OPEN, E.CUSTOMER_JOINED].to])


# --- state -------------------------------------------------------------------------------------

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
        """The orchestration input: identifiers, times and the lifecycle's own state (phase,
        since, code expiry, attention reason, reminders done), so that a continued execution
        resumes the phase (``start``). Nothing personal."""
        data: dict[str, Any] = {
            "bookingCode": self.booking_code,
            "channel": self.channel.value,
            "expertId": self.expert_id,
            "start": iso(self.start),
            "end": iso(self.end),
            "revision": self.revision,
            "policy": self.policy.to_json(),
            "phase": self.phase.value,
        }
        if self.since is not None:
            data["since"] = iso(self.since)
        if self.code_expires_at is not None:
            data["codeExpiresAt"] = iso(self.code_expires_at)
        if self.attention:
            data["attention"] = self.attention
        if self.reminders_done:
            data["remindersDone"] = sorted(r.value for r in self.reminders_done)
        return data

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
            phase=Phase(data.get("phase", Phase.BOOKED.value)),
            since=parse_utc(data["since"]) if data.get("since") else None,
            code_expires_at=parse_utc(data["codeExpiresAt"]) if data.get("codeExpiresAt") else None,
            attention=str(data["attention"]) if data.get("attention") else None,
            reminders_done=frozenset(Reminder(r) for r in data.get("remindersDone", ())),
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
class Decision:
    state: LifecycleState
    actions: tuple[Action, ...] = ()

    @property
    def continue_as_new(self) -> ContinueAsNew | None:
        return next((a for a in self.actions if isinstance(a, ContinueAsNew)), None)

    @property
    def is_done(self) -> bool:
        return self.state.phase.is_terminal or self.continue_as_new is not None


def _record(state: LifecycleState) -> RecordPhase:
    assert state.since is not None
    return RecordPhase(state.phase, state.since, state.revision, state.attention)


def start(state: LifecycleState, at: datetime) -> Decision:
    """What happens when an execution starts: a new booking, a rescheduled one, or one that
    continued as new in a later phase.

    In ``booked`` (new or rescheduled) the phase is recorded, and a new booking (revision 0) is
    confirmed; reminders whose time has already passed (a booking made less than a day ahead)
    are skipped. In any other phase the execution resumes what the previous one decided, which
    recorded that phase and sent its notifications: nothing is recorded or sent again.
    """
    if state.phase is not Phase.BOOKED:
        return Decision(state)
    late = frozenset(r for due, r in state.reminders_due() if due <= at)
    new = replace(state, phase=Phase.BOOKED, since=at, reminders_done=state.reminders_done | late)
    actions: tuple[Action, ...] = (_record(new),)
    if state.revision == 0:
        actions += (
            Notify(NotificationKind.BOOKING_CONFIRMATION, Recipient.CUSTOMER),
            Notify(NotificationKind.NEW_BOOKING, Recipient.EXPERT),
        )
    return Decision(new, actions)


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


def _stale_call_end(state: LifecycleState, event: MeetingEnded) -> bool:
    """A Teams call that ended before the customer was in it does not end the appointment:
    before the lobby (the expert's empty call), or older than the phase it would end (a
    replayed or late notification). Without a time of its own it is not believed either."""
    if state.phase not in IN_MEETING_PHASES or event.occurred_at is None:
        return True
    return state.since is not None and event.occurred_at < state.since


def refused(state: LifecycleState, event: Event | None = None) -> Decision:
    """What an event the lifecycle does not apply leads to (``decide`` raised IllegalTransition).

    Nothing, unless a trigger may have written the phase the event would have led to (a
    prediction, see ``predicted_phase``): then the phase is recorded again, so that the record
    says what the lifecycle knows. (Should the event only have come too early, the outbox brings it
    again in order, and the phase follows.)
    """
    if event is not None and event.type not in PREDICTABLE_EVENTS:
        return Decision(state)
    return Decision(state, (_record(state),))


def decide(state: LifecycleState, event: Event) -> Decision:
    """Apply ``event`` to ``state`` as the table says; IllegalTransition when it does not allow it.

    Events that repeat what the state already knows (a retried trigger, an outbox entry delivered
    twice) decide nothing: the same reschedule, a reminder already sent, a code that has expired.
    """
    t = transition(state.channel, state.phase, event.type)
    if t is None:
        raise IllegalTransition(state.phase.value, event.type.value)
    if isinstance(event, Rescheduled):
        if event.end <= event.start:
            raise ValueError("Rescheduled needs start < end")
        if (event.start, event.end) == (state.start, state.end):
            return Decision(state)
    if isinstance(event, MeetingEnded) and event.source == GRAPH_SOURCE and _stale_call_end(state, event):
        return Decision(state)
    if isinstance(event, CodeIssued) and event.expires_at <= event.at:
        # A code that expired before its event was applied: nothing to wait for, but the trigger
        # may have written code_issued to the record; the phase is recorded again to undo that.
        return refused(state)

    new = replace(state, phase=t.to, since=event.at if t.to is not state.phase else state.since)
    actions: list[Action] = []
    for step in t.steps:
        match step:
            case Tell(kind, recipient):
                actions.append(Notify(kind, recipient))
            case Step.CREATE_MEETING:
                actions.append(CreateMeeting())
            case Step.DELETE_MEETING:
                actions.append(DeleteMeeting())
            case Step.UPDATE_MEETING:
                assert isinstance(event, Rescheduled)
                actions.append(UpdateMeeting(event.start, event.end))
            case Step.SET_CODE_EXPIRY:
                assert isinstance(event, CodeIssued)
                new = replace(new, code_expires_at=event.expires_at)
            case Step.CLEAR_CODE_EXPIRY:
                new = replace(new, code_expires_at=None)
            case Step.SET_ATTENTION:
                assert isinstance(event, MeetingFailed | MeetingAttention)
                new = replace(new, attention=event.reason)
            case Step.SEND_REMINDER:
                due = [r for when, r in state.reminders_due() if when <= event.at]
                if not due:
                    return Decision(state)
                reminder = due[-1]  # the latest due; an earlier one missed meanwhile is moot
                skipped = frozenset(r for _, r in state.reminders_due() if r in due)
                new = replace(new, reminders_done=state.reminders_done | skipped)
                actions.append(Notify(NotificationKind.REMINDER, Recipient.CUSTOMER, reminder))
            case Step.NEW_TIMES:
                assert isinstance(event, Rescheduled)
                revision = event.revision if event.revision is not None else state.revision + 1
                new = replace(
                    new,
                    start=event.start,
                    end=event.end,
                    revision=revision,
                    since=event.at,
                    code_expires_at=None,
                    attention=None,
                    reminders_done=frozenset(),  # the new times get their own reminders
                )
                actions.append(ContinueAsNew(event.start, event.end))
            case Step.CONTINUE_AS_NEW:
                actions.append(ContinueAsNew(new.start, new.end))
    if (new.phase, new.attention) != (state.phase, state.attention):
        # The meeting first: once the record says join_open, the join link must exist.
        at = 1 if actions and isinstance(actions[0], CreateMeeting | DeleteMeeting | UpdateMeeting) else 0
        actions.insert(at, _record(new))
    return Decision(new, tuple(actions))


# --- capabilities --------------------------------------------------------------------------------


class Reason(StrEnum):
    """Why a capability is false: stable codes the API returns and the portal translates."""

    NOT_ONLINE = "not_online"  # only online meetings are joined, and have codes
    TERMINAL_PHASE = "terminal_phase"  # ended, cancelled or no-show
    JOIN_WINDOW_NOT_OPEN = "join_window_not_open"  # too early to join
    JOIN_WINDOW_CLOSED = "join_window_closed"  # past the end plus the grace period
    NOT_IN_LOBBY = "not_in_lobby"  # a code is issued only while the customer waits in the lobby
    NO_CODE = "no_code"  # no identification code is waiting for the customer
    NOT_IN_MEETING = "not_in_meeting"  # nothing to end before the join window opens
    IN_MEETING = "in_meeting"  # the customer has joined: changes go through the bank
    NOTICE_PERIOD = "notice_period"  # closer to the start than the notice period allows


REASON_TEXTS: Final[Mapping[Reason, str]] = MappingProxyType(
    {
        Reason.NOT_ONLINE: "Only online meetings can be joined and have identification codes.",
        Reason.TERMINAL_PHASE: "The appointment has ended, was cancelled or was missed.",
        Reason.JOIN_WINDOW_NOT_OPEN: "The join window has not opened yet.",
        Reason.JOIN_WINDOW_CLOSED: "The meeting's time (and its grace period) is over.",
        Reason.NOT_IN_LOBBY: "A code can be issued only while the customer waits in the lobby.",
        Reason.NO_CODE: "No identification code is waiting for confirmation.",
        Reason.NOT_IN_MEETING: "The meeting has not started: there is nothing to end yet.",
        Reason.IN_MEETING: "The meeting is in progress: it can no longer be changed online.",
        Reason.NOTICE_PERIOD: "Closer to the start than the notice period: changes go through the bank.",
    }
)


@dataclass(frozen=True)
class Capabilities:
    """What may be done with one appointment now; a reason for each False."""

    reasons: Mapping[str, Reason]  # capability name -> why not; absent when allowed

    NAMES: ClassVar[tuple[str, ...]] = (
        "canJoin",
        "canIssueCode",
        "canVerify",
        "canEnd",
        "canChange",
        "canCancel",
    )

    def allowed(self, name: str) -> bool:
        return name not in self.reasons

    def to_json(self) -> dict[str, Any]:
        return {
            "capabilities": {name: self.allowed(name) for name in self.NAMES},
            "capabilityReasons": {
                name: self.reasons[name].value for name in self.NAMES if name in self.reasons
            },
        }


def _event_reason(channel: Channel, phase: Phase, event: EventType, otherwise: Reason) -> Reason | None:
    if phase.is_terminal:
        return Reason.TERMINAL_PHASE
    if accepts(channel, phase, event):
        return None
    if channel is not Channel.ONLINE and accepts(Channel.ONLINE, phase, event):
        return Reason.NOT_ONLINE
    if channel is not Channel.ONLINE and event in (E.CODE_ISSUED, E.CODE_VERIFIED, E.MEETING_ENDED):
        return Reason.NOT_ONLINE
    return otherwise


def capabilities(
    channel: Channel,
    phase: Phase,
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    policy: Policy,
    change_notice: timedelta,
) -> Capabilities:
    """Derived from the table, the join window and the notice period (``appointments.booking``)."""
    reasons: dict[str, Reason | None] = {}
    opens = start - timedelta(minutes=policy.join_window_minutes)
    closes = end + timedelta(minutes=policy.end_grace_minutes)
    if channel is not Channel.ONLINE:
        reasons["canJoin"] = Reason.NOT_ONLINE
    elif phase.is_terminal:
        reasons["canJoin"] = Reason.TERMINAL_PHASE
    elif now < opens:
        reasons["canJoin"] = Reason.JOIN_WINDOW_NOT_OPEN
    elif now >= closes:
        reasons["canJoin"] = Reason.JOIN_WINDOW_CLOSED
    reasons["canIssueCode"] = _event_reason(channel, phase, E.CODE_ISSUED, Reason.NOT_IN_LOBBY)
    reasons["canVerify"] = _event_reason(channel, phase, E.CODE_VERIFIED, Reason.NO_CODE)
    reasons["canEnd"] = _event_reason(channel, phase, E.MEETING_ENDED, Reason.NOT_IN_MEETING)
    too_late = Reason.NOTICE_PERIOD if start - now < change_notice else None
    for name, event in (("canChange", E.RESCHEDULED), ("canCancel", E.CANCELLED)):
        reasons[name] = _event_reason(channel, phase, event, Reason.IN_MEETING) or too_late
    return Capabilities({k: v for k, v in reasons.items() if v is not None})


# --- documentation -------------------------------------------------------------------------------


def render_markdown() -> str:
    """``docs/LIFECYCLE.md``: the table as a newcomer reads it (a test keeps the file in step)."""
    lines = [
        "# The appointment lifecycle",
        "",
        "Generated from `TRANSITIONS` in `appointments/lifecycle.py` by `render_markdown()`;",
        "`tests/unit/test_lifecycle.py` fails when this file is stale. To regenerate:",
        "",
        "```",
        ".venv/bin/python -c 'from appointments.lifecycle import render_markdown; "
        'print(render_markdown(), end="")\' > docs/LIFECYCLE.md',
        "```",
        "",
        "Every phase also records itself (`apply_phase`) when it changes. An event the table does",
        "not list for a phase is refused by the API (409) and ignored by the orchestration; a meeting",
        "event it ignores records the phase again, undoing what the trigger predicted on the record.",
        "",
    ]
    for channel in Channel:
        lines += [f"## {channel.value}", "", "| phase | event | next phase | steps |", "|---|---|---|---|"]
        for phase in Phase:
            for event in EventType:
                t = transition(channel, phase, event)
                if t is not None:
                    steps = "; ".join(str(s) if isinstance(s, Tell) else s.value for s in t.steps) or "—"
                    lines.append(f"| {phase.value} | {event.value} | {t.to.value} | {steps} |")
        lines.append("")
    lines += [
        "## Derived sets",
        "",
        f"- a code may be issued in: {', '.join(sorted(CODE_ISSUE_PHASES))}",
        f"- a code may be verified in: {', '.join(sorted(CODE_VERIFY_PHASES))}",
        f"- in the meeting (no online change or cancel): {', '.join(sorted(IN_MEETING_PHASES))}",
        "- the phase a trigger may write right after raising its event:",
        "",
        "| event | record says | trigger writes |",
        "|---|---|---|",
    ]
    for event in EventType:
        if event in PREDICTABLE_EVENTS:
            for phase in Phase:
                predicted = predicted_phase(Channel.ONLINE, phase, event)
                if predicted is not None:
                    lines.append(f"| {event.value} | {phase.value} | {predicted.value} |")
    lines += ["", "## Capabilities", "", "Every appointment view carries `capabilities` and, for each false"]
    lines += ["one, a reason code in `capabilityReasons`:", "", "| reason | meaning |", "|---|---|"]
    lines += [f"| `{r.value}` | {REASON_TEXTS[r]} |" for r in Reason]
    return "\n".join(lines) + "\n"
