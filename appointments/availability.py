"""Free slots and held slots: which starts an expert can take, and holding one while the customer decides.

The computation is pure: working hours (Helsinki wall time, turned into UTC day by day
with ``zoneinfo``, so a 08:00-16:00 day is 06:00-14:00 UTC in winter and 05:00-13:00 UTC
in summer, and the DST Sundays come out right), minus the cells already claimed in
ExpertSlots, minus the experts' busy times from Graph, minus the buffer, inside the lead
time and the advance limit, on the slot grid.

A slot for "any expert" lists every expert free at that start; booking with
``expertId: "any"`` then tries them in order (the service's ``_candidates``).

Holds (``HoldService``) claim the same cells as the booking would, marked with the hold's
expiry; the repository lets an expired hold be taken over and lets a booking with the
right ``holdId`` convert its own hold.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from appointments.booking import _parse_duration, _parse_start, _require_object, check_start
from appointments.catalogue import LANGUAGES, TOPICS, Channel
from appointments.errors import Conflict, NotFound, Problems
from appointments.localtime import (
    HELSINKI,
    NonexistentLocalTimeError,
    format_date,
    format_time,
    local_to_utc,
    to_local,
)
from appointments.model import Expert
from appointments.ports import AppointmentRepository, BusyInterval, Clock, SlotHold, SlotTaken
from appointments.settings import Settings
from appointments.timerules import appointment_cells, cell_minutes, claimed_cells, iso
from appointments.validation import is_key, parse_date

MAX_RANGE_DAYS = 31
DEFAULT_RANGE_DAYS = 7
HOLD_FIELDS = {"expertId", "start", "durationMinutes"}


# --- working hours -----------------------------------------------------------------------------


def _wall(day: date, hhmm: str) -> datetime:
    """``day`` at ``hhmm`` (``"24:00"`` is the next midnight) as naive Helsinki wall time."""
    hours, minutes = (int(part) for part in hhmm.split(":"))
    if (hours, minutes) == (24, 0):
        return datetime.combine(day + timedelta(days=1), time())
    return datetime.combine(day, time(hours, minutes))


def _to_utc(wall: datetime) -> datetime:
    try:
        return local_to_utc(wall)
    except NonexistentLocalTimeError:
        # Inside the hour skipped in spring: the window starts (or ends) when the clocks resume.
        return local_to_utc(wall + timedelta(hours=1))


def working_windows(expert: Expert, first_day: date, last_day: date) -> list[tuple[datetime, datetime]]:
    """The expert's working hours on Helsinki days ``first_day..last_day`` as UTC ``[start, end)`` intervals.

    Each local day is converted on its own, so the UTC offset is the one in force that day.
    """
    windows: list[tuple[datetime, datetime]] = []
    day = first_day
    while day <= last_day:
        for wh in expert.working_hours:
            if wh.weekday == day.weekday():
                start, end = _to_utc(_wall(day, wh.start)), _to_utc(_wall(day, wh.end))
                if start < end:
                    windows.append((start, end))
        day += timedelta(days=1)
    return sorted(windows)


def works_at(expert: Expert, start: datetime, duration_minutes: int) -> bool:
    """Whether the whole appointment falls inside one of the expert's working windows.

    An expert whose directory entry has no working hours is not restricted (entries made
    before working hours existed); the slot finder offers no times for them, though.
    """
    if not expert.working_hours:
        return True
    end = start + timedelta(minutes=duration_minutes)
    local_day = to_local(start).date()
    # The day before too: a window may run past midnight ("20:00"-"24:00" ends on the next day).
    windows = working_windows(expert, local_day - timedelta(days=1), local_day)
    return any(w_start <= start and end <= w_end for w_start, w_end in windows)


# --- the query --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotQuery:
    topic_id: str
    channel: Channel
    language: str
    duration_minutes: int
    first_day: date  # Helsinki calendar days, inclusive
    last_day: date
    expert_id: str | None  # None: any expert


def _parse_day(raw: str | None, name: str, p: Problems) -> date | None:
    if raw is None:
        return None
    try:
        return parse_date(raw).date()
    except ValueError:
        p.add(name, "date_invalid")
        return None


def parse_slot_query(params: Mapping[str, str], now: datetime, settings: Settings) -> SlotQuery:
    """Validate the query string: malformed values are 400, values that break a rule 422."""
    malformed = Problems()
    first = _parse_day(params.get("from"), "from", malformed)
    last = _parse_day(params.get("to"), "to", malformed)
    # Absent parameters take their defaults; empty ones are values, and wrong.
    duration_raw = params.get("duration", params.get("durationMinutes"))
    duration: int | None = min(settings.allowed_durations)
    if duration_raw is not None:
        # int() takes "٣٠" and "1_0"; only ASCII digits are minutes here.
        duration = int(duration_raw) if duration_raw.isascii() and duration_raw.isdigit() else None
        if duration is None or len(duration_raw) > 4:
            malformed.add("duration", "duration_not_number")
    malformed.raise_if_any(malformed=True)

    p = Problems()
    topic = params.get("topic", "")
    if topic not in TOPICS:
        p.add("topic", "topic_invalid")
    channel: Channel | None = None
    try:
        channel = Channel(params.get("channel", ""))
    except ValueError:
        p.add("channel", "channel_invalid", channels=[c.value for c in Channel])
    language = params.get("language", "fi")
    if language not in LANGUAGES:
        p.add("language", "language_invalid")
    if duration not in settings.allowed_durations:
        p.add("duration", "duration_invalid", choices=", ".join(map(str, settings.allowed_durations)))
    today = to_local(now).date()
    first = first or today
    last = last or first + timedelta(days=DEFAULT_RANGE_DAYS - 1)
    if last < first:
        p.add("to", "range_reversed")
    elif (last - first).days + 1 > MAX_RANGE_DAYS:
        p.add("to", "range_too_long", days=MAX_RANGE_DAYS)
    expert = params.get("expert", "any")
    if not is_key(expert):
        p.add("expert", "expert_id_invalid")
    p.raise_if_any()
    assert channel is not None and duration is not None
    return SlotQuery(topic, channel, language, duration, first, last, None if expert == "any" else expert)


def candidate_experts(query: SlotQuery, directory: Iterable[Expert]) -> list[Expert]:
    """The experts who serve the query's topic, language and channel (422 for an unsuitable named expert)."""
    experts = [x for x in directory if x.active]
    if query.expert_id is None:
        return [x for x in experts if x.serves(query.topic_id, query.language, query.channel)]
    named = next((x for x in experts if x.expert_id == query.expert_id), None)
    p = Problems()
    if named is None:
        p.add("expert", "expert_unknown")
    elif not named.serves(query.topic_id, query.language, query.channel):
        p.add("expert", "expert_not_serving")
    p.raise_if_any()
    assert named is not None
    return [named]


def query_window(query: SlotQuery) -> tuple[datetime, datetime]:
    """The UTC interval the query's Helsinki days cover (midnight to midnight)."""
    start = local_to_utc(datetime.combine(query.first_day, time()))
    end = local_to_utc(datetime.combine(query.last_day + timedelta(days=1), time()))
    return start, end


def search_window(query: SlotQuery, now: datetime, settings: Settings) -> tuple[datetime, datetime] | None:
    """The part of the query's days that can be booked at ``now`` (lead time, advance limit), plus the
    length and buffer of the last possible slot; None when nothing can be. What to read from the
    calendars and the ExpertSlots table."""
    days_start, days_end = query_window(query)
    start = max(days_start, now + timedelta(minutes=settings.min_lead_minutes))
    end = min(
        days_end,
        now
        + timedelta(days=settings.max_advance_days, minutes=query.duration_minutes + settings.buffer_minutes),
    )
    return (start, end) if start < end else None


# --- the computation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    start: datetime  # aware UTC
    end: datetime
    experts: tuple[Expert, ...]


def _overlaps(start: datetime, end: datetime, busy: Iterable[tuple[datetime, datetime]]) -> bool:
    return any(b_start < end and start < b_end for b_start, b_end in busy)


def free_slots(
    query: SlotQuery,
    experts: Iterable[Expert],
    taken: Mapping[str, set[datetime]],
    busy: Mapping[str, list[BusyInterval]],
    now: datetime,
    settings: Settings,
) -> list[Slot]:
    """Every start on the grid where at least one expert is working and free.

    ``taken`` holds each expert's claimed cells (bookings and live holds); ``busy`` their
    Graph busy times. An expert missing from ``busy`` is left out: their calendar could
    not be read, and unknown is not free.
    """
    s = settings
    cell = cell_minutes(s.slot_interval_minutes, s.allowed_durations, s.buffer_minutes)
    length = timedelta(minutes=query.duration_minutes)
    buffer = timedelta(minutes=s.buffer_minutes)
    step = timedelta(minutes=s.slot_interval_minutes)
    earliest = now + timedelta(minutes=s.min_lead_minutes)
    latest = now + timedelta(days=s.max_advance_days)
    window_start, window_end = query_window(query)
    free: dict[datetime, list[Expert]] = {}
    for expert in experts:
        if expert.expert_id not in busy:
            continue
        # Graph busy times keep the same trailing buffer as our own appointments.
        blocked = [(b.start, b.end + buffer) for b in busy[expert.expert_id]]
        cells = taken.get(expert.expert_id, set())
        for w_start, w_end in working_windows(expert, query.first_day, query.last_day):
            t = _first_on_grid(max(w_start, window_start), s.slot_interval_minutes)
            while t + length <= min(w_end, window_end):
                if (
                    earliest <= t <= latest
                    and not _overlaps(t, t + length + buffer, blocked)
                    and not any(
                        c in cells for c in claimed_cells(t, query.duration_minutes, cell, s.buffer_minutes)
                    )
                ):
                    free.setdefault(t, []).append(expert)
                t += step
    return [
        Slot(t, t + length, tuple(sorted(xs, key=lambda x: x.display_name))) for t, xs in sorted(free.items())
    ]


def _first_on_grid(t: datetime, interval_minutes: int) -> datetime:
    """The first grid start at or after ``t``: ``timerules.is_on_grid``'s grid, counted from UTC midnight."""
    midnight = t.replace(hour=0, minute=0, second=0, microsecond=0)
    step = timedelta(minutes=interval_minutes)
    return midnight + -(-(t - midnight) // step) * step


def slots_view(query: SlotQuery, slots: Iterable[Slot]) -> dict[str, Any]:
    """The response body: slots grouped by Helsinki calendar day, days without slots left out."""
    days: dict[date, list[dict[str, Any]]] = {}
    for slot in slots:
        local = to_local(slot.start)
        days.setdefault(local.date(), []).append(
            {
                "start": iso(slot.start),
                "end": iso(slot.end),
                "startLocal": local.isoformat(),
                "timeLabel": format_time(slot.start, query.language),
                "experts": [{"id": x.expert_id, "displayName": x.display_name} for x in slot.experts],
            }
        )
    return {
        "topic": query.topic_id,
        "channel": query.channel.value,
        "language": query.language,
        "durationMinutes": query.duration_minutes,
        "from": query.first_day.isoformat(),
        "to": query.last_day.isoformat(),
        "timeZone": str(HELSINKI),
        "days": [
            {"date": d.isoformat(), "label": format_date(d, query.language, weekday=True), "slots": items}
            for d, items in sorted(days.items())
        ],
    }


# --- holds ------------------------------------------------------------------------------------


def hold_key(hold_id: str) -> str:
    """What a held cell carries where a booked one carries its booking code."""
    return f"hold:{hold_id}"


@dataclass(frozen=True)
class HoldRequest:
    expert_id: str
    start: datetime
    duration_minutes: int


def parse_hold(payload: Any, now: datetime, settings: Settings) -> HoldRequest:
    body = _require_object(payload)
    p = Problems()
    for key in sorted(set(body) - HOLD_FIELDS):
        p.add(key, "unknown_field", field=key)
    expert_id = body.get("expertId")
    if not is_key(expert_id):
        p.add("expertId", "expert_id_invalid")
    start = _parse_start(body.get("start"), p)
    if start is not None:
        check_start(start, now, settings, p)
    duration = _parse_duration(body.get("durationMinutes"), settings, p)
    p.raise_if_any()
    assert isinstance(expert_id, str) and start is not None and duration is not None
    return HoldRequest(expert_id.strip(), start, duration)


class HoldService:
    """Hold a slot for ``hold_minutes`` while the customer fills in the booking; release it."""

    def __init__(self, repo: AppointmentRepository, clock: Clock, settings: Settings) -> None:
        self.repo = repo
        self.clock = clock
        self.settings = settings

    def cells(self, start: datetime, duration_minutes: int) -> list[datetime]:
        return appointment_cells(self.settings, start, duration_minutes)

    def hold(self, customer_id: str, payload: Any) -> SlotHold:
        """Claim the cells for this customer; Conflict (409) when anyone else booked or holds them."""
        now = self.clock.now()
        req = parse_hold(payload, now, self.settings)
        expert = self.repo.get_expert(req.expert_id)
        p = Problems()
        if expert is None or not expert.active:
            p.add("expertId", "expert_unknown")
        elif not works_at(expert, req.start, req.duration_minutes):
            p.add("start", "outside_working_hours")
        p.raise_if_any()
        hold = SlotHold(
            hold_id=secrets.token_urlsafe(16),
            customer_id=customer_id,
            expert_id=req.expert_id,
            start=req.start,
            duration_minutes=req.duration_minutes,
            expires_at=now + timedelta(minutes=self.settings.hold_minutes),
        )
        try:
            self.repo.hold(hold, self.cells(req.start, req.duration_minutes), now=now)
        except SlotTaken:
            raise Conflict("slot_taken", reason="slot_taken") from None
        return hold

    def release(self, customer_id: str, hold_id: str) -> None:
        """Free the customer's own hold; someone else's (or an unknown) hold is 404."""
        hold = self.repo.get_hold(hold_id) if is_key(hold_id) else None
        if hold is None or hold.customer_id != customer_id:
            raise NotFound("hold_not_found")
        self.repo.release_hold(hold, self.cells(hold.start, hold.duration_minutes))
