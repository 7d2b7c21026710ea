"""Time rules: the join window, the slot grid, and how slots are claimed."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appointments.settings import Settings


def join_window_opens(start: datetime, join_window: timedelta) -> datetime:
    """The online meeting can be started at the earliest ``join_window`` before its start."""
    return start - join_window


def is_on_grid(start: datetime, interval_minutes: int) -> bool:
    """Whether ``start`` falls on the slot grid.

    Helsinki's UTC offset is a whole number of hours, so a grid aligned in UTC
    is aligned in local time too, across DST changes.
    """
    return (
        start.second == 0
        and start.microsecond == 0
        and (start.hour * 60 + start.minute) % interval_minutes == 0
    )


def cell_minutes(interval_minutes: int, durations: tuple[int, ...], buffer_minutes: int = 0) -> int:
    """The claim granularity: every start and end on the grid falls on a cell boundary."""
    parts = [interval_minutes, *durations] + ([buffer_minutes] if buffer_minutes else [])
    return math.gcd(*parts)


def claimed_cells(
    start: datetime, duration_minutes: int, cell: int, buffer_minutes: int = 0
) -> Iterator[datetime]:
    """The cells an appointment occupies in its expert's calendar (plus the trailing buffer).

    Claiming every cell, not just the start, is what lets the Table service refuse
    overlapping bookings of different lengths: each cell is an insert-only row.
    """
    t = start.astimezone(UTC)
    end = t + timedelta(minutes=duration_minutes + buffer_minutes)
    while t < end:
        yield t
        t += timedelta(minutes=cell)


def appointment_cells(settings: Settings, start: datetime, duration_minutes: int) -> list[datetime]:
    """The cells an appointment (or a hold) at ``start`` claims under ``settings``."""
    s = settings
    cell = cell_minutes(s.slot_interval_minutes, s.allowed_durations, s.buffer_minutes)
    return list(claimed_cells(start, duration_minutes, cell, s.buffer_minutes))


def parse_utc(value: str) -> datetime:
    """Parse an ISO 8601 timestamp that carries an offset; naive times are refused."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("timestamp must carry a UTC offset, e.g. 2026-12-01T10:00:00Z")
    return dt.astimezone(UTC)


def iso(dt: datetime) -> str:
    """UTC ISO 8601 with a Z, second precision: the one wire format for times."""
    # isoformat, not strftime: the same text for every year the app handles, in a third of the
    # time (the orchestrator formats times on every replay).
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
