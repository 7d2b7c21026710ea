"""The lifecycle state machine: every phase against every event, and what each transition does."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from appointments.catalogue import Channel
from appointments.errors import IllegalTransition
from appointments.lifecycle import (
    EVENT_TYPES,
    TRANSITIONS,
    CodeIssued,
    ContinueAsNew,
    CreateMeeting,
    DeleteMeeting,
    Event,
    EventType,
    LifecycleState,
    MeetingFailed,
    Notify,
    Policy,
    RecordPhase,
    ReminderDue,
    Rescheduled,
    UpdateMeeting,
    accepts,
    decide,
    next_deadline,
    render_markdown,
    start,
)
from appointments.model import Phase
from appointments.notifications import NotificationKind, Recipient, Reminder

T0 = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
NOW = T0 - timedelta(days=3)


def state(phase: Phase = Phase.BOOKED, channel: Channel = Channel.ONLINE, **kw: object) -> LifecycleState:
    base = LifecycleState(
        "2KMEVE6X",
        channel,
        "expert-1",
        T0,
        T0 + timedelta(minutes=45),
        Policy(15, 30),
        phase=phase,
        since=NOW,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def event(kind: EventType, at: datetime = T0, **kw: object) -> Event:
    defaults: dict[str, object] = {}
    if kind is EventType.CODE_ISSUED:
        defaults["expires_at"] = T0 + timedelta(minutes=10)
    if kind is EventType.RESCHEDULED:
        defaults.update(start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, minutes=45))
    if kind is EventType.MEETING_ATTENTION:
        defaults["reason"] = "call_events_refused"
    defaults.update(kw)
    return EVENT_TYPES[kind](at, **defaults)  # type: ignore[arg-type]  # per-kind fields, by name


def kinds(actions: tuple[object, ...]) -> list[tuple[str, str | None, str | None]]:
    """Each action as (type, notification kind, recipient); the phase records are left out."""
    out: list[tuple[str, str | None, str | None]] = []
    for a in actions:
        if isinstance(a, Notify):
            out.append(("notify", a.kind.value, a.recipient.value))
        elif not isinstance(a, RecordPhase):
            out.append((type(a).__name__, None, None))
    return out


@pytest.mark.parametrize("channel", list(Channel))
@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("kind", list(EventType))
def test_every_phase_accepts_exactly_the_events_of_the_table(
    channel: Channel, phase: Phase, kind: EventType
) -> None:
    """An appointment accepts an event iff the table has its row, and then goes where the row says."""
    s = state(phase, channel)
    if (channel, phase, kind) in TRANSITIONS:
        d = decide(s, event(kind))
        if kind is not EventType.RESCHEDULED:
            assert d.state.phase is TRANSITIONS[channel, phase, kind].to
    else:
        with pytest.raises(IllegalTransition) as err:
            decide(s, event(kind))
        assert err.value.phase == phase.value and err.value.event == kind.value


@pytest.mark.parametrize("channel", [Channel.PHONE, Channel.BRANCH])
@pytest.mark.parametrize("kind", list(EventType))
def test_phone_and_branch_appointments_have_no_meeting_phases(channel: Channel, kind: EventType) -> None:
    """Phone and branch bookings can only be changed, cancelled or end by their timer."""
    ok = kind in {EventType.CANCELLED, EventType.RESCHEDULED, EventType.END_TIMEOUT, EventType.REMINDER_DUE}
    assert accepts(channel, Phase.BOOKED, kind) is ok
    assert not any(accepts(channel, p, kind) for p in Phase if p is not Phase.BOOKED)


def test_terminal_phases_accept_nothing() -> None:
    """Ended, cancelled and no-show are final."""
    for phase in (Phase.ENDED, Phase.CANCELLED, Phase.NO_SHOW):
        assert phase.is_terminal
        for kind in EventType:
            for channel in Channel:
                assert not accepts(channel, phase, kind)


def test_a_phase_change_is_recorded_and_a_self_loop_is_not() -> None:
    """decide emits RecordPhase exactly when the phase (or the attention flag) changes."""
    joined = decide(state(Phase.JOIN_OPEN), event(EventType.CUSTOMER_JOINED))
    assert joined.actions[0] == RecordPhase(Phase.LOBBY, T0, 0, None)
    again = decide(state(Phase.CODE_ISSUED), event(EventType.CODE_ISSUED))
    assert not any(isinstance(a, RecordPhase) for a in again.actions)
    opened = decide(state(), event(EventType.JOIN_WINDOW_OPENED))
    assert isinstance(opened.actions[0], CreateMeeting) and isinstance(opened.actions[1], RecordPhase)


def test_the_docs_show_the_current_table() -> None:
    """docs/LIFECYCLE.md is render_markdown(): a change to the table must regenerate it."""
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "LIFECYCLE.md"
    assert doc.read_text(encoding="utf-8") == render_markdown(), (
        "docs/LIFECYCLE.md is stale; regenerate it as its header says"
    )


def test_a_new_booking_confirms_to_the_customer_but_a_rescheduled_one_does_not() -> None:
    """The confirmation (and the expert's calendar entry) go out once; a continue-as-new starts quietly."""
    first = start(state(), NOW)
    assert first.state.phase is Phase.BOOKED and first.state.since == NOW
    assert first.actions[0] == RecordPhase(Phase.BOOKED, NOW, 0)
    assert kinds(first.actions) == [
        ("notify", "booking_confirmation", "customer"),
        ("notify", "new_booking", "expert"),
    ]
    assert start(state(revision=1), NOW).actions == (RecordPhase(Phase.BOOKED, NOW, 1),)


def test_join_window_creates_the_meeting_then_tells_both() -> None:
    """Opening the window creates the Teams meeting, records join_open, notifies expert and
    customer, and then continues as new: the meeting's phases get a short history of their own."""
    d = decide(state(), event(EventType.JOIN_WINDOW_OPENED))
    assert d.state.phase is Phase.JOIN_OPEN and d.state.since == T0
    assert isinstance(d.actions[0], CreateMeeting) and isinstance(d.actions[1], RecordPhase)
    assert kinds(d.actions) == [
        ("CreateMeeting", None, None),
        ("notify", "join_open", "expert"),
        ("notify", "join_open", "customer"),
        ("ContinueAsNew", None, None),
    ]
    assert d.is_done and d.continue_as_new == ContinueAsNew(T0, T0 + timedelta(minutes=45))


def test_an_execution_continued_in_the_join_window_resumes_it_without_recording_or_telling() -> None:
    """The input carries the phase and what the state needs in it; ``start`` resumes it as it is:
    no record (already written), no notification (already sent), the same deadline."""
    opened = decide(
        replace(start(state(), NOW).state, reminders_done=frozenset(Reminder)),
        event(EventType.JOIN_WINDOW_OPENED, at=T0 - timedelta(minutes=15)),
    ).state
    failed = decide(opened, MeetingFailed(T0 - timedelta(minutes=14), reason="meeting_creation_failed")).state
    for s in (opened, failed):
        data = s.to_input()
        assert data["phase"] == "join_open" and data["since"] == "2026-12-07T10:15:00Z"
        back = LifecycleState.from_input(data)
        assert back == s
        d = start(back, T0 - timedelta(minutes=14))
        assert d.actions == () and d.state == s and not d.is_done
        assert next_deadline(d.state) == (T0 + timedelta(minutes=45), EventType.NO_SHOW_TIMEOUT)
    assert LifecycleState.from_input(failed.to_input()).attention == "meeting_creation_failed"


@pytest.mark.parametrize("phase", [Phase.LOBBY, Phase.CODE_ISSUED, Phase.VERIFIED])
def test_every_later_phase_round_trips_through_the_input(phase: Phase) -> None:
    """Whatever the state holds that decides later (since, the code's expiry) survives the input."""
    s = state(phase, code_expires_at=T0 + timedelta(minutes=5), attention="call_events_refused")
    assert LifecycleState.from_input(s.to_input()) == s
    assert start(s, T0).actions == ()


def test_customer_joining_puts_them_in_the_lobby_and_tells_the_expert() -> None:
    """CustomerJoined moves to lobby and notifies only the expert."""
    d = decide(state(Phase.JOIN_OPEN), event(EventType.CUSTOMER_JOINED))
    assert d.state.phase is Phase.LOBBY
    assert kinds(d.actions) == [("notify", "customer_in_lobby", "expert")]


def test_issuing_a_code_sets_its_expiry_and_reissuing_replaces_it() -> None:
    """CodeIssued records the expiry (never the code); a second code replaces the first."""
    d = decide(state(Phase.LOBBY), event(EventType.CODE_ISSUED))
    assert d.state.phase is Phase.CODE_ISSUED and d.state.code_expires_at == T0 + timedelta(minutes=10)
    later = T0 + timedelta(minutes=25)
    d2 = decide(d.state, event(EventType.CODE_ISSUED, expires_at=later))
    assert d2.state.code_expires_at == later
    assert "code" not in d2.state.custom_status()
    assert d2.state.custom_status()["codeExpiresAt"] == "2026-12-07T10:55:00Z"


def test_a_code_that_expired_before_its_event_arrived_changes_nothing() -> None:
    """A late redelivery of CodeIssued (from the outbox) cannot bring back a dead code."""
    late = CodeIssued(T0, expires_at=T0 - timedelta(seconds=1))
    d = decide(state(Phase.LOBBY), late)
    assert d.state == state(Phase.LOBBY)
    assert d.actions == (RecordPhase(Phase.LOBBY, NOW, 0),)  # undoes the trigger's code_issued


def test_verification_notifies_both_sides() -> None:
    """The right code verifies identity; expert and customer are told."""
    d = decide(state(Phase.CODE_ISSUED, code_expires_at=T0), event(EventType.CODE_VERIFIED))
    assert d.state.phase is Phase.VERIFIED and d.state.code_expires_at is None
    assert kinds(d.actions) == [
        ("notify", "identity_verified", "expert"),
        ("notify", "identity_verified", "customer"),
    ]


def test_locked_code_returns_to_lobby_and_tells_the_expert() -> None:
    """Too many wrong codes: back to the lobby so the expert can issue a new one."""
    d = decide(state(Phase.CODE_ISSUED, code_expires_at=T0), event(EventType.CODE_LOCKED))
    assert d.state.phase is Phase.LOBBY and d.state.code_expires_at is None
    assert kinds(d.actions) == [("notify", "code_locked", "expert")]


def test_expired_code_returns_to_lobby_quietly() -> None:
    """An expired code needs a new one; nobody is mailed."""
    d = decide(state(Phase.CODE_ISSUED, code_expires_at=T0), event(EventType.CODE_EXPIRED))
    assert d.state.phase is Phase.LOBBY and kinds(d.actions) == []


@pytest.mark.parametrize("phase", [Phase.JOIN_OPEN, Phase.LOBBY, Phase.CODE_ISSUED, Phase.VERIFIED])
def test_meeting_end_closes_every_meeting_phase(phase: Phase) -> None:
    """MeetingEnded ends the appointment from any meeting phase."""
    assert decide(state(phase), event(EventType.MEETING_ENDED)).state.phase is Phase.ENDED


@pytest.mark.parametrize("phase", [Phase.LOBBY, Phase.CODE_ISSUED, Phase.VERIFIED])
def test_end_timer_closes_a_meeting_nobody_ended(phase: Phase) -> None:
    """The end-plus-grace timer is the fallback when no end event comes."""
    assert decide(state(phase), event(EventType.END_TIMEOUT)).state.phase is Phase.ENDED


def test_no_show_when_the_customer_never_joins() -> None:
    """Join window open until the end without a join: no-show."""
    assert decide(state(Phase.JOIN_OPEN), event(EventType.NO_SHOW_TIMEOUT)).state.phase is Phase.NO_SHOW


def test_cancel_before_the_window_notifies_both_without_touching_teams() -> None:
    """No meeting exists yet in booked, so nothing is deleted."""
    d = decide(state(), event(EventType.CANCELLED))
    assert d.state.phase is Phase.CANCELLED and d.is_done
    assert kinds(d.actions) == [("notify", "cancelled", "expert"), ("notify", "cancelled", "customer")]


def test_cancel_in_the_window_deletes_the_meeting() -> None:
    """Once the meeting exists, cancelling deletes it."""
    d = decide(state(Phase.JOIN_OPEN), event(EventType.CANCELLED))
    assert isinstance(d.actions[0], DeleteMeeting) and isinstance(d.actions[1], RecordPhase)


def test_reschedule_continues_as_new_with_the_new_times() -> None:
    """Rescheduling notifies both and restarts the lifecycle (short history)."""
    d = decide(state(), event(EventType.RESCHEDULED, revision=4))
    assert d.is_done
    assert d.state.phase is Phase.BOOKED and d.state.start == T0 + timedelta(days=1) and d.state.revision == 4
    assert kinds(d.actions) == [
        ("notify", "rescheduled", "expert"),
        ("notify", "rescheduled", "customer"),
        ("ContinueAsNew", None, None),
    ]
    assert d.actions[-1] == ContinueAsNew(T0 + timedelta(days=1), T0 + timedelta(days=1, minutes=45))


def test_reschedule_in_the_window_updates_the_existing_meeting() -> None:
    """A meeting that exists gets its new times."""
    d = decide(state(Phase.JOIN_OPEN), event(EventType.RESCHEDULED))
    assert d.actions[0] == UpdateMeeting(T0 + timedelta(days=1), T0 + timedelta(days=1, minutes=45))


def test_a_repeated_reschedule_to_the_same_times_does_nothing() -> None:
    """A retried PATCH raises the same change again: no second continue-as-new, no mail."""
    d = decide(state(), event(EventType.RESCHEDULED, start=T0, end=T0 + timedelta(minutes=45)))
    assert d.actions == () and d.state == state()


def test_reschedule_needs_a_proper_interval() -> None:
    """An end before the start is refused."""
    with pytest.raises(ValueError):
        decide(state(), Rescheduled(T0, start=T0, end=T0))


def test_meeting_failure_keeps_the_window_open_and_alerts_the_expert() -> None:
    """A Teams failure is recorded and the expert told; the appointment does not hang or die."""
    d = decide(state(Phase.JOIN_OPEN), MeetingFailed(T0, reason="meeting_creation_failed"))
    assert d.state.phase is Phase.JOIN_OPEN and d.state.attention == "meeting_creation_failed"
    assert d.actions[0] == RecordPhase(Phase.JOIN_OPEN, NOW, 0, "meeting_creation_failed")
    assert kinds(d.actions) == [("notify", "meeting_failed", "expert")]
    assert d.state.custom_status()["attention"] == "meeting_creation_failed"


def test_deadlines_per_phase() -> None:
    """Each phase sets the one timer the lifecycle table names."""
    done = frozenset(Reminder)
    assert next_deadline(state(reminders_done=done)) == (
        T0 - timedelta(minutes=15),
        EventType.JOIN_WINDOW_OPENED,
    )
    assert next_deadline(state(channel=Channel.PHONE, reminders_done=done)) == (
        T0 + timedelta(minutes=45),
        EventType.END_TIMEOUT,
    )
    assert next_deadline(state(Phase.JOIN_OPEN)) == (T0 + timedelta(minutes=45), EventType.NO_SHOW_TIMEOUT)
    grace = T0 + timedelta(minutes=75)
    assert next_deadline(state(Phase.LOBBY)) == (grace, EventType.END_TIMEOUT)
    assert next_deadline(state(Phase.VERIFIED)) == (grace, EventType.END_TIMEOUT)
    expiry = T0 + timedelta(minutes=5)
    assert next_deadline(state(Phase.CODE_ISSUED, code_expires_at=expiry)) == (expiry, EventType.CODE_EXPIRED)
    assert next_deadline(state(Phase.CODE_ISSUED, code_expires_at=grace + timedelta(hours=1))) == (
        grace,
        EventType.END_TIMEOUT,
    )
    for phase in (Phase.ENDED, Phase.CANCELLED, Phase.NO_SHOW):
        assert next_deadline(state(phase)) is None


def test_input_round_trips_and_carries_nothing_personal() -> None:
    """The orchestration input holds identifiers, times and the lifecycle's state only."""
    s = state(revision=2, reminders_done=frozenset({Reminder.DAY_BEFORE}))
    data = s.to_input()
    assert set(data) == {
        "bookingCode",
        "channel",
        "expertId",
        "start",
        "end",
        "revision",
        "policy",
        "phase",
        "since",
        "remindersDone",
    }
    assert data["remindersDone"] == ["day_before"]
    # The old input's shape (a v2 start: no phase) still reads as a new booking.
    v2 = {k: v for k, v in data.items() if k not in ("phase", "since", "remindersDone")}
    assert LifecycleState.from_input(v2).phase is Phase.BOOKED
    back = LifecycleState.from_input(data)
    assert back == s
    assert (back.booking_code, back.start, back.end, back.revision, back.policy) == (
        s.booking_code,
        s.start,
        s.end,
        2,
        s.policy,
    )


def test_custom_status_names_the_phase_and_join_window() -> None:
    """Operators see the phase, since when, and when the window opens."""
    cs = state().custom_status()
    assert cs["phase"] == "booked" and cs["since"] == "2026-12-04T10:30:00Z"
    assert cs["joinWindowOpensAt"] == "2026-12-07T10:15:00Z"
    assert "joinWindowOpensAt" not in state(channel=Channel.BRANCH).custom_status()


def test_notification_kinds_used_by_the_lifecycle_exist_for_their_recipients() -> None:
    """Every notification the lifecycle asks for has a template pair in the catalogue of kinds."""
    from appointments.notifications import RECIPIENTS

    for (channel, phase, kind), _ in TRANSITIONS.items():
        s = state(phase, channel, code_expires_at=T0)
        for action in decide(s, event(kind, at=T0 - timedelta(minutes=30))).actions:
            if isinstance(action, Notify):
                assert action.recipient in RECIPIENTS[action.kind]
    assert Recipient.EXPERT in RECIPIENTS[NotificationKind.CUSTOMER_IN_LOBBY]


def test_reminders_go_out_a_day_and_an_hour_before_then_the_window_opens() -> None:
    """Booked: day-before reminder, hour-before reminder, then the join window; each reminder once."""
    s = start(state(), NOW).state
    deadline = next_deadline(s)
    assert deadline == (T0 - timedelta(hours=24), EventType.REMINDER_DUE)
    d = decide(s, ReminderDue(T0 - timedelta(hours=24)))
    assert d.actions == (Notify(NotificationKind.REMINDER, Recipient.CUSTOMER, Reminder.DAY_BEFORE),)
    assert d.state.phase is Phase.BOOKED
    assert decide(d.state, ReminderDue(T0 - timedelta(hours=24))).actions == ()  # once only
    assert next_deadline(d.state) == (T0 - timedelta(hours=1), EventType.REMINDER_DUE)
    d2 = decide(d.state, ReminderDue(T0 - timedelta(hours=1)))
    assert d2.actions == (Notify(NotificationKind.REMINDER, Recipient.CUSTOMER, Reminder.HOUR_BEFORE),)
    assert next_deadline(d2.state) == (T0 - timedelta(minutes=15), EventType.JOIN_WINDOW_OPENED)


def test_a_late_booking_skips_reminders_whose_time_has_passed() -> None:
    """Booked 3 hours ahead: no day-before reminder, the hour-before one still comes."""
    s = start(state(), T0 - timedelta(hours=3)).state
    assert s.reminders_done == {Reminder.DAY_BEFORE}
    assert next_deadline(s) == (T0 - timedelta(hours=1), EventType.REMINDER_DUE)


def test_a_reschedule_starts_the_reminders_afresh() -> None:
    """Continue-as-new carries no reminder state: the new time gets its own reminders."""
    s = replace(start(state(), NOW).state, reminders_done=frozenset(Reminder))
    moved = decide(s, event(EventType.RESCHEDULED)).state
    assert "reminders" not in str(moved.to_input())
    restarted = start(LifecycleState.from_input(moved.to_input()), NOW).state
    assert restarted.reminders_due()[0] == (T0 + timedelta(days=1) - timedelta(hours=24), Reminder.DAY_BEFORE)


def test_a_reminder_woken_late_sends_only_the_latest_due_one() -> None:
    """After an outage both reminders are due: the customer gets the hour-before one, not two mails."""
    s = start(state(), NOW).state
    d = decide(s, ReminderDue(T0 - timedelta(minutes=30)))
    assert d.actions == (Notify(NotificationKind.REMINDER, Recipient.CUSTOMER, Reminder.HOUR_BEFORE),)
    assert d.state.reminders_done == frozenset(Reminder)


def caps(phase: Phase, now: datetime, channel: Channel = Channel.ONLINE) -> dict[str, object]:
    from appointments.lifecycle import capabilities

    return capabilities(
        channel,
        phase,
        T0,
        T0 + timedelta(minutes=45),
        now,
        policy=Policy(15, 30),
        change_notice=timedelta(hours=24),
    ).to_json()


def test_a_booking_days_ahead_can_be_changed_and_cancelled_but_not_joined() -> None:
    """Booked, three days ahead: change and cancel; join waits for its window; nothing to verify or end."""
    c = caps(Phase.BOOKED, NOW)
    assert c["capabilities"] == {
        "canJoin": False,
        "canIssueCode": False,
        "canVerify": False,
        "canEnd": False,
        "canChange": True,
        "canCancel": True,
    }
    assert c["capabilityReasons"] == {
        "canJoin": "join_window_not_open",
        "canIssueCode": "not_in_lobby",
        "canVerify": "no_code",
        "canEnd": "not_in_meeting",
    }


def test_inside_the_notice_period_changes_go_through_the_bank() -> None:
    """Less than 24 h before the start, change and cancel answer notice_period."""
    c = caps(Phase.BOOKED, T0 - timedelta(hours=23))
    assert c["capabilityReasons"]["canChange"] == "notice_period"  # type: ignore[index]
    assert c["capabilityReasons"]["canCancel"] == "notice_period"  # type: ignore[index]


def test_in_the_meeting_the_code_and_the_end_follow_the_table() -> None:
    """Lobby: issue a code, end; code_issued: verify too; no online change once the customer joined."""
    lobby = caps(Phase.LOBBY, T0 - timedelta(minutes=5))
    assert lobby["capabilities"] == {
        "canJoin": True,
        "canIssueCode": True,
        "canVerify": False,
        "canEnd": True,
        "canChange": False,
        "canCancel": False,
    }
    assert lobby["capabilityReasons"] == {
        "canVerify": "no_code",
        "canChange": "in_meeting",
        "canCancel": "in_meeting",
    }
    issued = caps(Phase.CODE_ISSUED, T0 - timedelta(minutes=5))
    assert issued["capabilities"]["canVerify"] is True  # type: ignore[index]


def test_over_is_over_and_phone_meetings_have_no_teams_capabilities() -> None:
    """Terminal phases allow nothing (terminal_phase); a phone appointment is never joined (not_online)."""
    ended = caps(Phase.ENDED, T0 + timedelta(minutes=50))
    assert set(ended["capabilityReasons"].values()) == {"terminal_phase"}  # type: ignore[union-attr]
    phone = caps(Phase.BOOKED, T0 - timedelta(minutes=5), Channel.PHONE)
    reasons = phone["capabilityReasons"]
    assert reasons["canJoin"] == reasons["canIssueCode"] == reasons["canVerify"] == "not_online"  # type: ignore[index]
    assert reasons["canEnd"] == "not_online" and reasons["canChange"] == "notice_period"  # type: ignore[index]


def test_the_join_window_closes_after_the_grace_period() -> None:
    """Past the end plus the grace period the join capability says why."""
    late = caps(Phase.VERIFIED, T0 + timedelta(minutes=45 + 30))
    assert late["capabilityReasons"]["canJoin"] == "join_window_closed"  # type: ignore[index]


def test_the_derived_sets_follow_the_table() -> None:
    """Code, meeting and prediction sets are what the table implies."""
    from appointments.lifecycle import (
        CODE_ISSUE_PHASES,
        CODE_VERIFY_PHASES,
        IN_MEETING_PHASES,
        predicted_phase,
    )

    assert {Phase.LOBBY, Phase.CODE_ISSUED} == CODE_ISSUE_PHASES
    assert {Phase.LOBBY, Phase.CODE_ISSUED} == CODE_VERIFY_PHASES
    assert {Phase.LOBBY, Phase.CODE_ISSUED, Phase.VERIFIED} == IN_MEETING_PHASES
    assert predicted_phase(Channel.ONLINE, Phase.CODE_ISSUED, EventType.CODE_VERIFIED) is Phase.VERIFIED
    assert predicted_phase(Channel.ONLINE, Phase.LOBBY, EventType.CODE_VERIFIED) is None
    assert predicted_phase(Channel.ONLINE, Phase.BOOKED, EventType.CANCELLED) is None  # the record says it


def test_a_meeting_whose_call_events_were_refused_stays_open_with_attention() -> None:
    """The meeting exists but Teams' call-ended will not come: flagged quietly, the window stays open."""
    from appointments.lifecycle import MeetingAttention

    d = decide(state(Phase.JOIN_OPEN), MeetingAttention(T0, "call_events_refused"))
    assert d.state.phase is Phase.JOIN_OPEN and d.state.attention == "call_events_refused"
    assert d.actions == (RecordPhase(Phase.JOIN_OPEN, NOW, 0, "call_events_refused"),)


def test_missed_reads_a_cancellation_a_reschedule_and_the_outbox_in_commit_order() -> None:
    """``missed``: what the orchestrator applies after a look, and what a deadline's check tests."""
    from appointments.lifecycle import Cancelled, CodeIssued, CustomerJoined, Rescheduled, missed

    at = datetime(2026, 12, 7, 10, 20, tzinfo=UTC)
    record = {
        "start": "2026-12-07T10:30:00Z",
        "end": "2026-12-07T11:15:00Z",
        "revision": 0,
        "phase": "join_open",
    }
    assert missed(record, Phase.JOIN_OPEN, 0, at).events == ()
    assert missed(None, Phase.JOIN_OPEN, 0, at).events == ()
    [(event, entry)] = missed({**record, "phase": "cancelled"}, Phase.JOIN_OPEN, 0, at).events
    assert isinstance(event, Cancelled) and entry is None
    assert missed({**record, "phase": "cancelled"}, Phase.CANCELLED, 0, at).events == ()
    [(event, _)] = missed({**record, "revision": 2}, Phase.JOIN_OPEN, 1, at).events
    assert isinstance(event, Rescheduled) and event.revision == 2
    pending = [
        {"id": "e1", "event": "CustomerJoined", "payload": {}},
        {"id": "e2", "event": "CodeIssued", "payload": {}},  # no expiry: malformed
        {"id": "e3", "event": "CodeIssued", "payload": {"expiresAt": "2026-12-07T10:25:00Z"}},
    ]
    found = missed({**record, "pending": pending}, Phase.JOIN_OPEN, 0, at)
    assert [(type(e), entry) for e, entry in found.events] == [(CustomerJoined, "e1"), (CodeIssued, "e3")]
    assert found.malformed == 1
