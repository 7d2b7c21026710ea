"""The devhost's clock: real, virtual (wall time + an offset) or frozen.

Orchestrations take ``current_utc_datetime`` from this clock and durable timers fall due by it,
so a demo can jump ahead three days and a test can move time only when it says so.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any


class ClockMode(StrEnum):
    REAL = "real"
    VIRTUAL = "virtual"
    FROZEN = "frozen"


class ClockError(ValueError):
    """A clock change that is not allowed (real clocks do not move, no clock moves backwards)."""


class Clock:
    """``now()`` is an aware UTC datetime; ``advance``/``set`` move non-real clocks forward only.

    Thread-safe: activities in worker threads and the app's own code may read it.
    """

    def __init__(self, mode: ClockMode | str = ClockMode.REAL, start: datetime | None = None) -> None:
        self.mode = ClockMode(mode)
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        # A frozen clock starts at the wall time (or ``start``) truncated to milliseconds, so
        # ISO strings round-trip through the history's millisecond timestamps unchanged.
        base = start or datetime.now(UTC)
        self._frozen_at = base.replace(microsecond=base.microsecond // 1000 * 1000)
        if start is not None and self.mode is ClockMode.VIRTUAL:
            self._offset = start - datetime.now(UTC)
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        if self.mode is ClockMode.FROZEN:
            with self._lock:
                return self._frozen_at
        if self.mode is ClockMode.VIRTUAL:
            with self._lock:
                return datetime.now(UTC) + self._offset
        return datetime.now(UTC)

    @property
    def adjustable(self) -> bool:
        return self.mode is not ClockMode.REAL

    def advance(self, delta: timedelta) -> datetime:
        if not self.adjustable:
            raise ClockError("the real clock cannot be moved")
        if delta < timedelta(0):
            raise ClockError("the clock only moves forward")
        with self._lock:
            if self.mode is ClockMode.FROZEN:
                self._frozen_at += delta
            else:
                self._offset += delta
        self._notify()
        return self.now()

    def set(self, when: datetime) -> datetime:
        if when.tzinfo is None:
            raise ClockError("the time must carry a UTC offset")
        delta = when.astimezone(UTC) - self.now()
        if delta < timedelta(0):
            raise ClockError(f"the clock only moves forward (now {self.now().isoformat()})")
        return self.advance(delta)

    def snapshot(self) -> dict[str, str]:
        """What another process needs to keep the same time: the mode and the offset from the
        wall clock (virtual) or the instant it stands at (frozen)."""
        with self._lock:
            return {
                "mode": self.mode.value,
                "offset": str(self._offset.total_seconds()),
                "frozenAt": self._frozen_at.isoformat(),
            }

    def adopt(self, snapshot: dict[str, str]) -> None:
        """Take the time of the process that sent ``snapshot`` (a worker process follows the host)."""
        with self._lock:
            self.mode = ClockMode(snapshot["mode"])
            self._offset = timedelta(seconds=float(snapshot["offset"]))
            self._frozen_at = datetime.fromisoformat(snapshot["frozenAt"])
        self._notify()

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from the thread that moved the clock) after every change."""
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()


class PersistedClock:
    """Keeps a non-real clock's time in a table, so virtual time never goes back on a restart.

    Timers and custom statuses are stamped with virtual time; if a restarted host began again
    at the wall time, every "since" would jump backwards and pending timers would wait anew.

    Every move of the clock is saved at once (``subscribe``), with the wall time it was saved at.
    A virtual clock keeps moving with wall time after the last save, so the time it had when the
    host died is at least ``saved + (wall now - wall then)``; a restore starts from the later of
    that and the saved time itself (a wall clock set back never takes virtual time back). A frozen
    clock did not move after the save: it restarts exactly where it was saved.
    """

    def __init__(self, clock: Clock, connection_string: str, hub: str) -> None:
        from azure.data.tables import TableServiceClient

        self.clock = clock
        self._table = TableServiceClient.from_connection_string(connection_string).get_table_client(
            f"{hub}DevClock"
        )

    def restore(self) -> None:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        with contextlib.suppress(ResourceExistsError):
            self._table.create_table()
        try:
            row = self._table.get_entity("clock", "")
        except ResourceNotFoundError:
            row = None
        if row is not None:
            target = self.resume_point(row, datetime.now(UTC))
            if target > self.clock.now():
                self.clock.set(target)
        self.save()
        self.clock.subscribe(self.save)

    def resume_point(self, row: Any, wall_now: datetime) -> datetime:
        """Where the clock resumes after a restart, given the saved row."""
        saved = datetime.fromisoformat(row["Now"])
        wall_then = row.get("Wall")
        if self.clock.mode is ClockMode.VIRTUAL and wall_then:
            elapsed = wall_now - datetime.fromisoformat(wall_then)
            return max(saved, saved + max(elapsed, timedelta(0)))
        return saved

    def save(self) -> None:
        self._table.upsert_entity(
            {
                "PartitionKey": "clock",
                "RowKey": "",
                "Now": self.clock.now().isoformat(),
                "Wall": datetime.now(UTC).isoformat(),
                "Mode": self.clock.mode.value,
            }
        )
