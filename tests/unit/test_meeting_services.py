"""The meeting use cases (join, issue, verify, end) on the in-memory fakes: outbox, retries, outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from appointments.catalogue import Channel
from appointments.errors import CodeExpired, CodeLocked, IllegalTransition, NoCode, WrongCode
from appointments.identity_service import IdentityService
from appointments.lifecycle import EventType
from appointments.model import Appointment, Phase
from appointments.service import AppointmentService
from appointments.settings import Settings
from tests.fakes import FakeAppointments, FakeClock, FakeIdentityStore, FakeOutbox

START = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)


class Parts:
    def __init__(self, phase: Phase = Phase.JOIN_OPEN) -> None:
        self.clock = FakeClock(START - timedelta(minutes=5))
        self.repo = FakeAppointments()
        self.outbox = FakeOutbox(trail=self.repo.trail)  # one audit trail, as in the tables
        self.store = FakeIdentityStore(self.outbox)
        settings = Settings.from_env({"DEV_MODE": "true"})
        repo: Any = self.repo  # the fake serves the record-keeping part of the port
        self.appointments = AppointmentService(repo, self.clock, settings, outbox=self.outbox)
        self.identity = IdentityService(self.appointments, self.store, self.clock, settings)
        self.a = self.repo.put(
            Appointment(
                "2KMEVE6X",
                "cust-1",
                "expert-1",
                Channel.ONLINE,
                "loans.home-loan",
                START,
                45,
                "fi",
                "+358401234567",
                phase=phase,
                join_url="https://teams.example/j",
            )
        )

    def to(self, phase: Phase) -> None:
        self.a = self.repo.put(self.repo.records[self.a.booking_code].with_changes(phase=phase))

    def events(self) -> list[str]:
        return [e.event for e in self.outbox.pending(self.a.booking_code)]


def test_the_first_join_commits_customer_joined_and_a_second_commits_nothing() -> None:
    """Joining from join_open puts CustomerJoined in the outbox; a rejoin from the lobby does not."""
    p = Parts()
    first = p.appointments.join("cust-1", "2KMEVE6X")
    assert [e.event for e in first.events] == [EventType.CUSTOMER_JOINED] == p.events()
    p.appointments.advance_phase(first.appointment, EventType.CUSTOMER_JOINED)
    assert p.repo.records["2KMEVE6X"].phase is Phase.LOBBY
    assert p.appointments.join("cust-1", "2KMEVE6X").events == ()


def test_a_late_phase_write_never_overwrites_a_newer_one() -> None:
    """The trigger's predicted phase is If-Match on what it read: a phase recorded since wins."""
    p = Parts()
    joined = p.appointments.join("cust-1", "2KMEVE6X")
    p.to(Phase.ENDED)  # the orchestration moved on meanwhile
    p.appointments.advance_phase(joined.appointment, EventType.CUSTOMER_JOINED)
    assert p.repo.records["2KMEVE6X"].phase is Phase.ENDED


def test_a_code_commits_with_its_event_and_the_right_entry_verifies_once() -> None:
    """Issue → CodeIssued; right code → CodeVerified; the same request again → 200, nothing new."""
    p = Parts(Phase.LOBBY)
    issued = p.identity.issue("expert-1", "2KMEVE6X")
    p.to(Phase.CODE_ISSUED)
    verified = p.identity.verify("cust-1", "2KMEVE6X", {"code": issued.code})
    assert p.events() == ["CodeIssued", "CodeVerified"] and len(verified.events) == 1
    p.to(Phase.VERIFIED)
    again = p.identity.verify("cust-1", "2KMEVE6X", {"code": f"{issued.code[:3]} {issued.code[3:]}"})
    assert again.events == () and p.events() == ["CodeIssued", "CodeVerified"]
    assert [e.action for e in p.repo.trail].count("identity_verified") == 1


def test_wrong_codes_count_down_then_lock_and_the_lock_is_committed() -> None:
    """422 with attempts left, then 423 carrying the committed CodeLocked."""
    p = Parts(Phase.CODE_ISSUED)
    issued = p.identity.issue("expert-1", "2KMEVE6X")
    wrong = "000000" if issued.code != "000000" else "111111"
    with pytest.raises(WrongCode) as first:
        p.identity.verify("cust-1", "2KMEVE6X", {"code": wrong})
    assert first.value.status == 422 and first.value.extensions["attemptsLeft"] == 2
    with pytest.raises(WrongCode):
        p.identity.verify("cust-1", "2KMEVE6X", {"code": wrong})
    with pytest.raises(CodeLocked) as locked:
        p.identity.verify("cust-1", "2KMEVE6X", {"code": wrong})
    assert locked.value.status == 423 and len(locked.value.committed) == 1
    assert p.events() == ["CodeIssued", "CodeLocked"]


def test_an_expired_code_is_gone_and_no_code_is_a_conflict() -> None:
    """410 once past the expiry; 409 no-code before any code was issued."""
    p = Parts(Phase.LOBBY)
    with pytest.raises(NoCode) as none:
        p.identity.verify("cust-1", "2KMEVE6X", {"code": "123456"})
    assert none.value.status == 409 and none.value.type_slug == "no-code"
    issued = p.identity.issue("expert-1", "2KMEVE6X")
    p.clock.advance(minutes=11)
    with pytest.raises(CodeExpired) as expired:
        p.identity.verify("cust-1", "2KMEVE6X", {"code": issued.code})
    assert expired.value.status == 410


def test_ending_commits_meeting_ended_and_ending_again_answers_the_same() -> None:
    """The expert's End commits MeetingEnded; once ended, End is no error and commits nothing."""
    p = Parts(Phase.VERIFIED)
    ended = p.appointments.end_meeting("expert-1", "2KMEVE6X")
    assert [e.event for e in ended.events] == ["MeetingEnded"]
    assert ended.events[0].payload == {"source": "expert"}
    p.to(Phase.ENDED)
    assert p.appointments.end_meeting("expert-1", "2KMEVE6X").events == ()
    p.to(Phase.BOOKED)
    with pytest.raises(IllegalTransition):
        p.appointments.end_meeting("expert-1", "2KMEVE6X")


def test_a_stale_etag_is_refused_by_the_fakes_as_by_the_table() -> None:
    """The fakes raise StaleRecord on a lost race, as the Table adapters do."""
    from appointments.ports import StaleRecord

    p = Parts()
    stale = p.a
    p.to(Phase.LOBBY)
    with pytest.raises(StaleRecord):
        p.repo.update(stale.with_changes(phase=Phase.CANCELLED))
