"""Free/busy through ``calendar/getSchedule``: batched, cached briefly, unknown never free.

Graph's limits (https://learn.microsoft.com/en-us/graph/api/calendar-getschedule and
https://learn.microsoft.com/en-us/graph/outlook-get-free-busy-schedule): at most 20
``schedules`` per request, a period (``endTime - startTime``) under 62 days, and
``availabilityViewInterval`` between 5 and 1440 minutes. So a question about many experts
or a long period becomes several calls, at most ``MAX_SCHEDULES`` addresses and
``MAX_PERIOD`` each, sent side by side inside the process's concurrency limit.

A mailbox Graph cannot read comes back as a ``scheduleInformation`` with ``error`` (a
``freeBusyError``): that organizer is absent from the result, so the caller offers none
of their slots, and a warning names how many calendars were unreadable and Graph's
reason (never the address: it is personal data).

Answers are cached per (organizer, period) for ``CACHE_SECONDS``: a slots page asked by
many customers at once is then one Graph call per expert and period, not a storm against
Outlook's 10,000 requests per 10 minutes per mailbox.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from adapters.graph.client import load_sdk
from adapters.graph.errors import graph_call
from appointments.ports import BusyInterval

if TYPE_CHECKING:  # pragma: no cover - names for annotations only
    from msgraph.graph_service_client import GraphServiceClient

log = logging.getLogger(__name__)

MAX_SCHEDULES = 20
MAX_PERIOD = timedelta(days=61)  # "less than 62 days"
CACHE_SECONDS = 60.0
VIEW_INTERVAL_MINUTES = 15
# unknown: do not offer the slot; workingElsewhere is free (the expert works, just elsewhere).
_BUSY_STATUSES = frozenset({"busy", "oof", "tentative", "unknown"})

Key = tuple[str, datetime, datetime]


class ScheduleReader:
    """getSchedule for many organizers over any period; one per Graph client."""

    def __init__(self, client: GraphServiceClient, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self._client = client
        self._cache_seconds = cache_seconds
        self._cache: dict[Key, tuple[float, list[BusyInterval] | None]] = {}
        self._lock = threading.Lock()

    async def busy(
        self, organizer_ids: list[str], start: datetime, end: datetime
    ) -> dict[str, list[BusyInterval]]:
        """Busy intervals per organizer (UPN or SMTP address: getSchedule takes addresses).

        An organizer whose calendar Graph could not read, for any part of the period, is
        absent from the result: unknown is not the same as free.
        """
        for moment in (start, end):
            if moment.tzinfo is None:
                raise ValueError("schedule times must be timezone-aware (UTC)")
        organizers = list(dict.fromkeys(organizer_ids))
        if not organizers or end <= start:
            return {}
        periods = list(_periods(start, end))
        found: dict[Key, list[BusyInterval] | None] = {}
        missing: dict[tuple[datetime, datetime], list[str]] = {}
        now = time.monotonic()
        with self._lock:
            for p_start, p_end in periods:
                for organizer in organizers:
                    key = (organizer.lower(), p_start, p_end)
                    cached = self._cache.get(key)
                    if cached is not None and now - cached[0] < self._cache_seconds:
                        found[key] = cached[1]
                    else:
                        missing.setdefault((p_start, p_end), []).append(organizer)
        calls = [
            self._call(batch, p_start, p_end)
            for (p_start, p_end), names in missing.items()
            for batch in _batches(names, MAX_SCHEDULES)
        ]
        answers = await asyncio.gather(*calls)
        stored = time.monotonic()
        with self._lock:
            for answer in answers:
                for key, value in answer.items():
                    found[key] = value
                    self._cache[key] = (stored, value)
            self._forget_expired(stored)
        result: dict[str, list[BusyInterval]] = {}
        for organizer in organizers:
            parts = [found.get((organizer.lower(), p_start, p_end)) for p_start, p_end in periods]
            if any(part is None for part in parts):
                continue
            result[organizer] = sorted(
                (i for part in parts if part for i in part if i.start < end and i.end > start),
                key=lambda interval: interval.start,
            )
        return result

    def _forget_expired(self, now: float) -> None:
        if len(self._cache) < 4096:
            return
        for key in [k for k, (at, _) in self._cache.items() if now - at >= self._cache_seconds]:
            del self._cache[key]

    async def _call(
        self, organizers: list[str], start: datetime, end: datetime
    ) -> dict[Key, list[BusyInterval] | None]:
        """One getSchedule request: ≤ 20 addresses, one period under 62 days."""
        load_sdk()
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
        from msgraph.generated.users.item.calendar.get_schedule.get_schedule_post_request_body import (
            GetSchedulePostRequestBody,
        )

        body = GetSchedulePostRequestBody(
            schedules=list(organizers),
            start_time=DateTimeTimeZone(date_time=graph_local(start), time_zone="UTC"),
            end_time=DateTimeTimeZone(date_time=graph_local(end), time_zone="UTC"),
            availability_view_interval=VIEW_INTERVAL_MINUTES,
        )
        config: RequestConfiguration[Any] = RequestConfiguration()
        # Without it Graph answers in the mailbox's own zone, with no offset in the string.
        config.headers.add("Prefer", 'outlook.timezone="UTC"')
        action = self._client.users.by_user_id(organizers[0]).calendar.get_schedule
        async with graph_call("getSchedule"):
            result = await action.post(body, request_configuration=config)
        wanted = {organizer.lower() for organizer in organizers}
        answer: dict[Key, list[BusyInterval] | None] = {(o, start, end): None for o in wanted}
        errors: dict[str, int] = {}
        for info in (result.value if result else None) or []:
            organizer = (info.schedule_id or "").lower()
            if organizer not in wanted:
                continue
            if info.error is not None:
                reason = str(getattr(info.error, "response_code", None) or "error")
                errors[reason] = errors.get(reason, 0) + 1
                continue
            intervals: list[BusyInterval] = []
            for item in info.schedule_items or []:
                status = getattr(item.status, "value", item.status)
                if status not in _BUSY_STATUSES or not item.start or not item.end:
                    continue
                intervals.append(BusyInterval(from_graph_time(item.start), from_graph_time(item.end)))
            answer[(organizer, start, end)] = intervals
        unread = sum(1 for value in answer.values() if value is None)
        if unread:
            log.warning(
                "getSchedule could not read %d of %d calendars (%s): those experts offer no slots",
                unread,
                len(wanted),
                ", ".join(f"{code} x{n}" for code, n in sorted(errors.items())) or "no answer",
            )
        return answer


def _periods(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    periods = []
    cursor = start
    while cursor < end:
        periods.append((cursor, min(end, cursor + MAX_PERIOD)))
        cursor += MAX_PERIOD
    return periods


def _batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def graph_local(moment: datetime) -> str:
    """Graph's dateTimeTimeZone wants a wall-clock string; the zone travels separately."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def from_graph_time(value: Any) -> datetime:
    """A dateTimeTimeZone ("2026-01-05T09:00:00.0000000", "UTC") as an aware UTC datetime."""
    from zoneinfo import ZoneInfo

    text: str = value.date_time or ""
    head, _, fraction = text.partition(".")
    parsed = datetime.fromisoformat(head)
    if fraction:
        parsed = parsed.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    zone = (value.time_zone or "UTC").strip()
    tz = UTC if zone.upper() in {"UTC", "Z"} else ZoneInfo(zone)
    return parsed.replace(tzinfo=tz).astimezone(UTC)
