"""Why the ops view flags an appointment: the record's flag and what Durable says, combined."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from appointments.catalogue import Channel
from appointments.model import Appointment, Phase
from appointments.operations import attention_reasons

START = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
GRACE = timedelta(minutes=30)


def appointment(phase: Phase = Phase.BOOKED, attention: str | None = None) -> Appointment:
    return Appointment(
        "2KMEVE6X", "c-1", "x-1", Channel.ONLINE, "loans.home-loan", START, 45, "fi", "", phase=phase,
        attention=attention,
    )  # fmt: skip


def test_a_healthy_running_appointment_needs_no_attention() -> None:
    """Running, phases agree, before its end: nothing to say."""
    assert attention_reasons(appointment(), "Running", "booked", START, GRACE) == []


def test_the_records_own_flag_comes_first() -> None:
    """A meeting that could not be created is the most specific reason."""
    a = appointment(attention="meeting_creation_failed")
    assert attention_reasons(a, "Running", "booked", START, GRACE) == ["meeting_creation_failed"]


@pytest.mark.parametrize(
    ("runtime", "reason"),
    [
        ("Failed", "orchestration_failed"),
        ("Suspended", "orchestration_suspended"),
        ("Terminated", "orchestration_finished_early"),
        ("Completed", "orchestration_finished_early"),
        (None, "no_orchestration"),
    ],
)
def test_an_unfinished_record_whose_orchestration_is_not_running_is_flagged(
    runtime: str | None, reason: str
) -> None:
    """The record says booked, Durable says it is not running: the runbook section names the fix."""
    assert attention_reasons(appointment(), runtime, None, START, GRACE) == [reason]


def test_a_finished_record_without_an_instance_is_fine() -> None:
    """Purged history after the end is retention doing its job."""
    assert attention_reasons(appointment(Phase.ENDED), None, None, START + timedelta(days=60), GRACE) == []


def test_phases_that_disagree_while_running_are_flagged() -> None:
    """The record lags the orchestration's custom status."""
    assert attention_reasons(appointment(), "Running", "join_open", START, GRACE) == ["phase_mismatch"]


def test_an_appointment_still_open_long_after_its_end_is_overdue() -> None:
    """Past end + grace + an hour's slack and still not terminal: a stuck lifecycle."""
    late = START + timedelta(minutes=45) + GRACE + timedelta(hours=1, seconds=1)
    assert attention_reasons(appointment(Phase.LOBBY), "Running", "lobby", late, GRACE) == ["overdue"]
    assert (
        attention_reasons(appointment(Phase.LOBBY), "Running", "lobby", late - timedelta(seconds=2), GRACE)
        == []
    )
