"""Timer triggers: NCRONTAB schedules run on the devhost clock (real, virtual or frozen).

As the Functions timer extension does it (Azure/azure-webjobs-sdk-extensions,
``src/WebJobs.Extensions/Extensions/Timers/``):

- ``Scheduling/CronSchedule.cs``: an NCRONTAB expression with six fields
  ``{second} {minute} {hour} {day} {month} {day-of-week}``, or five without seconds; a TimeSpan
  (``hh:mm:ss``) is a constant interval (``ConstantSchedule.cs``). Times are UTC (the default
  WEBSITE_TIME_ZONE).
- ``Scheduling/ScheduleMonitor.cs`` CheckPastDueAsync and ``Listener/TimerListener.cs``: the last
  schedule status (Last, Next, LastUpdated) is kept in storage; at start, a recorded Next that has
  passed makes one immediate invocation with ``IsPastDue``; otherwise ``runOnStartup`` makes one;
  then each occurrence runs once, and missed occurrences collapse into one late run. After each
  run the status becomes Last = the (adjusted) invocation time, Next = the following occurrence.
  The status lives in the blob ``azure-webjobs-hosts/timers/<host id>/<function>/status``, as the
  host's StorageScheduleMonitor keeps it.

An invocation that fails is logged and the schedule goes on, as the listener does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import ContainerClient
from croniter import CroniterBadCronError, croniter

from .clock import Clock
from .durable.registry import FunctionFailed
from .durable.timers import ClockLoop

log = logging.getLogger("devhost.timers")

STATUS_CONTAINER = "azure-webjobs-hosts"
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")
DEFAULT = datetime(1, 1, 1, tzinfo=UTC)  # default(DateTime)


class ScheduleError(ValueError):
    """A schedule the timer extension would not accept."""


class TimerRunner(Protocol):
    timers: dict[str, str]
    run_on_startup: frozenset[str]
    bindings: dict[str, list[dict[str, Any]]]

    async def run_timer(
        self, name: str, *, past_due: bool, schedule_status: dict[str, Any] | None
    ) -> None: ...


@dataclass(frozen=True)
class Schedule:
    expression: str

    def __post_init__(self) -> None:
        self.next_after(datetime(2000, 1, 1, tzinfo=UTC))  # refuse a bad expression at once

    def next_after(self, when: datetime) -> datetime:
        """The first occurrence strictly after ``when`` (NCrontab's GetNextOccurrence)."""
        expr = self.expression.strip()
        if m := _TIMESPAN.match(expr):
            days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
            interval = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
            if interval <= timedelta(0):
                raise ScheduleError(f"The schedule '{expr}' is not a positive interval.")
            return when + interval
        fields = expr.split()
        if len(fields) not in (5, 6):
            raise ScheduleError(_unrecognised(expr))
        try:
            it = croniter(expr, when.astimezone(UTC), second_at_beginning=len(fields) == 6)
            following: datetime = it.get_next(datetime)
            return following.astimezone(UTC)
        except (CroniterBadCronError, ValueError, KeyError) as exc:
            raise ScheduleError(_unrecognised(expr)) from exc


def _unrecognised(expr: str) -> str:
    # Scheduling/TimerSchedule.cs: the extension's message for a schedule it cannot parse.
    return (
        f"The schedule expression '{expr}' was not recognized as a valid cron expression or timespan string."
    )


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(text: Any) -> datetime:
    if not isinstance(text, str) or not text:
        return DEFAULT
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass
class Status:
    last: datetime
    next: datetime
    last_updated: datetime

    def to_json(self) -> dict[str, str]:
        return {"Last": _iso(self.last), "Next": _iso(self.next), "LastUpdated": _iso(self.last_updated)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Status:
        return cls(_parse(data.get("Last")), _parse(data.get("Next")), _parse(data.get("LastUpdated")))


class StatusStore:
    """The schedule statuses, one blob per timer function."""

    def __init__(self, container: ContainerClient, host_id: str) -> None:
        self.container = container
        self.host_id = host_id

    def _name(self, function: str) -> str:
        return f"timers/{self.host_id}/Host.Functions.{function}/status"

    async def open(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            await self.container.create_container()

    async def get(self, function: str) -> Status | None:
        try:
            stream = await self.container.download_blob(self._name(function))
        except ResourceNotFoundError:
            return None
        return Status.from_json(json.loads(await stream.readall()))

    async def put(self, function: str, status: Status) -> None:
        await self.container.upload_blob(self._name(function), json.dumps(status.to_json()), overwrite=True)


def check_past_due(schedule: Schedule, status: Status | None, now: datetime) -> tuple[Status, bool, bool]:
    """ScheduleMonitor.CheckPastDueAsync: (status to record, changed, past due)."""
    if status is None:
        return Status(DEFAULT, schedule.next_after(now), now), True, False
    changed = False
    if status.last != DEFAULT:
        expected, updated = schedule.next_after(status.last), status.last
    elif status.last_updated != DEFAULT:
        expected, updated = schedule.next_after(status.last_updated), status.last_updated
    else:
        expected, updated = schedule.next_after(now), now
    if status.next != expected:
        # The schedule changed: a next occurrence in the past is not counted as missed.
        if now > expected:
            expected, updated = schedule.next_after(now), now
        status = Status(DEFAULT, expected, updated)
        changed = True
    return status, changed, now > status.next


@dataclass
class _Timer:
    name: str
    schedule: Schedule
    monitored: bool
    status: Status
    running: bool = False


class TimerTriggers(ClockLoop):
    """Runs the app's timer-triggered functions through the runner, on the devhost clock."""

    def __init__(
        self,
        runner: TimerRunner,
        clock: Clock,
        statuses: StatusStore,
        spawn: Callable[[Coroutine[Any, Any, None]], Any],
    ) -> None:
        super().__init__(clock)
        self.runner = runner
        self.statuses = statuses
        self.spawn = spawn
        self.timers: dict[str, _Timer] = {}

    @staticmethod
    def schedules(runner: TimerRunner) -> dict[str, Schedule]:
        """Every timer function's schedule; a bad one refuses the app, naming the function."""
        out = {}
        for name, expr in sorted(getattr(runner, "timers", {}).items()):
            try:
                out[name] = Schedule(expr)
            except ScheduleError as exc:
                raise ScheduleError(f"The function '{name}': {exc}") from exc
        return out

    async def start(self) -> None:
        now = self.clock.now()
        await self.statuses.open()
        startup: list[tuple[_Timer, bool]] = []
        for name, schedule in self.schedules(self.runner).items():
            trigger = self._trigger(name)
            monitored = str(trigger.get("useMonitor", True)).lower() != "false"
            recorded = await self.statuses.get(name) if monitored else None
            past_due = False
            if monitored:
                status, changed, past_due = check_past_due(schedule, recorded, now)
                if changed:
                    await self.statuses.put(name, status)
            else:
                status = Status(DEFAULT, schedule.next_after(now), DEFAULT)
            timer = _Timer(name, schedule, monitored, status)
            self.timers[name] = timer
            if past_due:
                startup.append((timer, True))
            elif name in self.runner.run_on_startup:
                startup.append((timer, False))
        self.start_loop()
        for timer, past_due in startup:
            self._invoke(timer, past_due=past_due, unscheduled=True)

    def _trigger(self, name: str) -> dict[str, Any]:
        for binding in self.runner.bindings.get(name, []):
            if str(binding.get("type", "")).lower() == "timertrigger":
                return binding
        return {}

    def has_due(self) -> bool:
        now = self.clock.now()
        return any(t.running or t.status.next <= now for t in self.timers.values())

    def next_due(self) -> datetime | None:
        waiting = [t.status.next for t in self.timers.values() if not t.running]
        return min(waiting) if waiting else None

    def fire_due(self) -> int:
        now, fired = self.clock.now(), 0
        for timer in self.timers.values():
            if not timer.running and timer.status.next <= now:
                self._invoke(timer, past_due=False, unscheduled=False)
                fired += 1
        return fired

    def _invoke(self, timer: _Timer, *, past_due: bool, unscheduled: bool) -> None:
        timer.running = True
        self.spawn(self._run_one(timer, past_due=past_due, unscheduled=unscheduled))

    async def _run_one(self, timer: _Timer, *, past_due: bool, unscheduled: bool) -> None:
        invoked = self.clock.now()
        try:
            status = timer.status.to_json() if timer.monitored else None
            await self.runner.run_timer(timer.name, past_due=past_due, schedule_status=status)
        except FunctionFailed as exc:
            log.warning("timer function %s failed: %s", timer.name, exc)
        finally:
            # TimerListener.InvokeJobFunction: a run that came early counts as the scheduled one.
            adjusted = invoked
            if not unscheduled and timer.status.next > invoked:
                adjusted = timer.status.next
            timer.status = Status(adjusted, timer.schedule.next_after(adjusted), adjusted)
            timer.running = False
            if timer.monitored:
                try:
                    await self.statuses.put(timer.name, timer.status)
                except Exception:
                    log.exception("could not record the schedule status of %s", timer.name)
            self._wake()
