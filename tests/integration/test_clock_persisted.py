"""The virtual clock never goes back across a restart (its time is kept in Azurite)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from devhost.clock import Clock, ClockMode, PersistedClock


def test_virtual_time_resumes_at_least_where_it_was_when_the_host_died(
    storage_connection_string: str,
) -> None:
    """Advanced a day, then wall time passes without a save: the restarted clock is not earlier."""
    hub = f"C{uuid.uuid4().hex[:10]}"
    first = Clock(ClockMode.VIRTUAL)
    PersistedClock(first, storage_connection_string, hub).restore()
    first.advance(timedelta(days=1))
    time.sleep(0.3)  # the virtual clock moves on with wall time; nothing saves it now
    at_death = first.now()
    second = Clock(ClockMode.VIRTUAL)
    PersistedClock(second, storage_connection_string, hub).restore()
    assert second.now() >= at_death
    assert second.now() - at_death < timedelta(seconds=5)


def test_frozen_time_resumes_exactly_where_it_was_saved(storage_connection_string: str) -> None:
    """A frozen clock moved to a point restarts at that point."""
    hub = f"C{uuid.uuid4().hex[:10]}"
    first = Clock(ClockMode.FROZEN, start=datetime(2030, 1, 1, tzinfo=UTC))
    PersistedClock(first, storage_connection_string, hub).restore()
    first.advance(timedelta(hours=5))
    second = Clock(ClockMode.FROZEN, start=datetime(2030, 1, 1, tzinfo=UTC))
    PersistedClock(second, storage_connection_string, hub).restore()
    assert second.now() == datetime(2030, 1, 1, 5, tzinfo=UTC)


def test_a_wall_clock_set_back_does_not_take_virtual_time_back(storage_connection_string: str) -> None:
    """The resume point is never below the saved time, whatever the wall clock says."""
    clock = Clock(ClockMode.VIRTUAL)
    keeper = PersistedClock(clock, storage_connection_string, f"C{uuid.uuid4().hex[:10]}")
    saved = datetime(2031, 6, 1, tzinfo=UTC)
    row = {"Now": saved.isoformat(), "Wall": datetime(2031, 1, 1, tzinfo=UTC).isoformat()}
    assert keeper.resume_point(row, wall_now=datetime(2030, 1, 1, tzinfo=UTC)) == saved
    assert keeper.resume_point(row, wall_now=datetime(2031, 1, 1, 1, tzinfo=UTC)) == saved + timedelta(
        hours=1
    )
