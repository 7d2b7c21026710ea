"""NCRONTAB schedules and the schedule monitor's past-due rule, as the timer extension has them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devhost.schedules import DEFAULT, Schedule, ScheduleError, Status, check_past_due

T0 = datetime(2026, 12, 1, 10, 41, 45, tzinfo=UTC)  # a Tuesday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 */5 * * * *", datetime(2026, 12, 1, 10, 45, tzinfo=UTC)),  # seconds first: every five minutes
        ("*/15 * * * * *", datetime(2026, 12, 1, 10, 42, tzinfo=UTC)),
        ("0 30 9 * * 1-5", datetime(2026, 12, 2, 9, 30, tzinfo=UTC)),  # 09:30 on weekdays
        ("0 0 3 * * Sun", datetime(2026, 12, 6, 3, 0, tzinfo=UTC)),
        ("*/10 * * * *", datetime(2026, 12, 1, 10, 50, tzinfo=UTC)),  # five fields: no seconds
        ("00:30:00", T0 + timedelta(minutes=30)),  # a TimeSpan is a constant interval
    ],
)
def test_next_occurrence_follows_the_functions_schedule_format(expression: str, expected: datetime) -> None:
    """Six NCRONTAB fields with seconds first, five without, or an hh:mm:ss interval."""
    assert Schedule(expression).next_after(T0) == expected


@pytest.mark.parametrize("expression", ["every minute", "0 0 25 * * *", "* * * *", "00:00:00"])
def test_a_schedule_the_extension_rejects_is_refused(expression: str) -> None:
    """What TimerSchedule.Create would not parse is refused when the app loads."""
    with pytest.raises(ScheduleError):
        Schedule(expression)


def test_a_new_timer_records_its_next_occurrence_and_is_not_past_due() -> None:
    """No status yet: Next from now, LastUpdated now, not past due."""
    status, changed, past_due = check_past_due(Schedule("0 0 * * * *"), None, T0)
    eleven = datetime(2026, 12, 1, 11, tzinfo=UTC)
    assert (status.last, status.next, status.last_updated) == (DEFAULT, eleven, T0)
    assert changed and not past_due


def test_a_next_that_passed_while_the_host_was_down_is_past_due() -> None:
    """Last 07:00, Next 08:00, now 10:41: one past-due run."""
    last = datetime(2026, 12, 1, 7, tzinfo=UTC)
    recorded = Status(last, last + timedelta(hours=1), last)
    status, changed, past_due = check_past_due(Schedule("0 0 * * * *"), recorded, T0)
    assert past_due and not changed
    assert status == recorded


def test_a_changed_schedule_does_not_count_as_missed() -> None:
    """The recorded Next does not follow from Last under the new schedule: recomputed from now."""
    last = datetime(2026, 12, 1, 7, tzinfo=UTC)
    recorded = Status(last, last + timedelta(hours=1), last)
    status, changed, past_due = check_past_due(Schedule("0 */5 * * * *"), recorded, T0)
    assert changed and not past_due
    assert status.next == datetime(2026, 12, 1, 10, 45, tzinfo=UTC)
