"""Free-slot computation: working hours in Helsinki time across DST, claims, busy times, lead and advance."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from appointments.availability import (
    SlotQuery,
    candidate_experts,
    free_slots,
    parse_slot_query,
    search_window,
    slots_view,
    working_windows,
    works_at,
)
from appointments.catalogue import Channel
from appointments.errors import ValidationFailed
from appointments.model import Expert, WorkingHours
from appointments.ports import BusyInterval
from appointments.settings import Settings

SETTINGS = Settings()  # 30-minute grid, 30/45/60-minute meetings, 2 h lead, 90 days ahead, no buffer
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ALL_WEEK = tuple(WorkingHours(d, "08:00", "16:00") for d in range(7))


def expert(expert_id: str = "x1", name: str = "Aino", hours: tuple[WorkingHours, ...] = ALL_WEEK) -> Expert:
    return Expert(
        expert_id=expert_id,
        display_name=name,
        email=f"{expert_id}@pankki.example",
        topics=("loans.home-loan",),
        languages=("fi", "sv"),
        working_hours=hours,
    )


def query(
    first: date, last: date | None = None, duration: int = 30, expert_id: str | None = None
) -> SlotQuery:
    return SlotQuery("loans.home-loan", Channel.ONLINE, "fi", duration, first, last or first, expert_id)


def starts(slots: list, day: date | None = None) -> list[str]:  # type: ignore[type-arg]
    return [s.start.strftime("%H:%M") for s in slots if day is None or s.start.date() == day]


def compute(
    q: SlotQuery,
    experts: list[Expert],
    *,
    taken: dict[str, set[datetime]] | None = None,
    busy: dict[str, list[BusyInterval]] | None = None,
    now: datetime = NOW,
    settings: Settings = SETTINGS,
) -> list:  # type: ignore[type-arg]
    busy = busy if busy is not None else {x.expert_id: [] for x in experts}
    return free_slots(q, experts, taken or {}, busy, now, settings)


def test_an_ordinary_winter_day_runs_0600_to_1400_utc() -> None:
    """08:00-16:00 in Helsinki in December (UTC+2): 16 half-hour starts from 06:00Z, the last at 13:30Z."""
    slots = compute(query(date(2026, 12, 1)), [expert()])
    assert starts(slots)[0] == "06:00" and starts(slots)[-1] == "13:30" and len(slots) == 16
    assert all(s.end - s.start == timedelta(minutes=30) for s in slots)


def test_an_ordinary_summer_day_runs_0500_to_1300_utc() -> None:
    """The same hours in June (UTC+3) start an hour earlier in UTC."""
    slots = compute(query(date(2026, 6, 2)), [expert()], now=datetime(2026, 5, 30, tzinfo=UTC))
    assert starts(slots)[0] == "05:00" and starts(slots)[-1] == "12:30" and len(slots) == 16


def test_spring_dst_change_shifts_the_utc_hours_from_that_day() -> None:
    """2026-03-29: Saturday 06:00Z, Sunday (summer time from 04:00) and Monday 05:00Z."""
    slots = compute(
        query(date(2026, 3, 28), date(2026, 3, 30)), [expert()], now=datetime(2026, 3, 20, tzinfo=UTC)
    )
    firsts = {d: starts(slots, d)[0] for d in (date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30))}
    assert firsts == {date(2026, 3, 28): "06:00", date(2026, 3, 29): "05:00", date(2026, 3, 30): "05:00"}


def test_a_window_across_the_skipped_hour_is_an_hour_shorter() -> None:
    """02:00-06:00 local on 2026-03-29 is only 3 real hours (03:00-04:00 does not exist): 6 slots."""
    night = expert(hours=(WorkingHours(6, "02:00", "06:00"),))
    slots = compute(query(date(2026, 3, 29)), [night], now=datetime(2026, 3, 20, tzinfo=UTC))
    assert starts(slots) == ["00:00", "00:30", "01:00", "01:30", "02:00", "02:30"]
    labels = [s["timeLabel"] for d in slots_view(query(date(2026, 3, 29)), slots)["days"] for s in d["slots"]]
    assert labels == ["2.00", "2.30", "4.00", "4.30", "5.00", "5.30"]


def test_autumn_dst_change_repeats_an_hour_and_keeps_the_day_together() -> None:
    """02:00-06:00 local on 2026-10-25 is 5 real hours; 03.00 comes twice; all under 25 October."""
    night = expert(hours=(WorkingHours(6, "02:00", "06:00"),))
    q = query(date(2026, 10, 25))
    slots = compute(q, [night], now=datetime(2026, 10, 20, tzinfo=UTC))
    assert len(slots) == 10
    assert slots[0].start == datetime(2026, 10, 24, 23, 0, tzinfo=UTC)
    assert slots[-1].start == datetime(2026, 10, 25, 3, 30, tzinfo=UTC)
    view = slots_view(q, slots)
    assert [d["date"] for d in view["days"]] == ["2026-10-25"]
    assert view["days"][0]["label"] == "sunnuntai 25.10.2026"
    labels = [s["timeLabel"] for s in view["days"][0]["slots"]]
    assert labels == ["2.00", "2.30", "3.00", "3.30", "3.00", "3.30", "4.00", "4.30", "5.00", "5.30"]
    offsets = [s["startLocal"][-6:] for s in view["days"][0]["slots"][2:6]]
    assert offsets == ["+03:00", "+03:00", "+02:00", "+02:00"]


def test_autumn_dst_sunday_working_day_is_0600_to_1400_utc() -> None:
    """08:00-16:00 on 2026-10-25 (winter time again) is 06:00-14:00Z; the Saturday before is 05:00-13:00Z."""
    slots = compute(
        query(date(2026, 10, 24), date(2026, 10, 25)), [expert()], now=datetime(2026, 10, 1, tzinfo=UTC)
    )
    saturday, sunday = starts(slots, date(2026, 10, 24)), starts(slots, date(2026, 10, 25))
    assert (saturday[0], saturday[-1]) == ("05:00", "12:30")
    assert (sunday[0], sunday[-1]) == ("06:00", "13:30")


def test_working_windows_follow_the_weekdays() -> None:
    """Mon-Fri hours give nothing on the weekend."""
    weekdays = expert(hours=tuple(WorkingHours(d, "08:00", "16:00") for d in range(5)))
    windows = working_windows(weekdays, date(2026, 12, 4), date(2026, 12, 7))  # Fri..Mon
    assert [w[0].date() for w in windows] == [date(2026, 12, 4), date(2026, 12, 7)]


def test_a_meeting_must_end_within_working_hours() -> None:
    """A 60-minute meeting can start at 15.00 local, not at 15.30; 45 minutes at 15.00 is fine."""
    slots = compute(query(date(2026, 12, 1), duration=60), [expert()])
    assert starts(slots)[-1] == "13:00"
    x = expert()
    assert works_at(x, datetime(2026, 12, 1, 13, 0, tzinfo=UTC), 60)
    assert not works_at(x, datetime(2026, 12, 1, 13, 30, tzinfo=UTC), 60)
    assert not works_at(x, datetime(2026, 12, 1, 5, 30, tzinfo=UTC), 30)


def test_an_expert_without_working_hours_is_not_restricted_but_offers_no_slots() -> None:
    """Legacy directory entries: booking is not refused, the slot finder offers nothing."""
    legacy = expert(hours=())
    assert works_at(legacy, datetime(2026, 12, 5, 22, 0, tzinfo=UTC), 30)
    assert compute(query(date(2026, 12, 1)), [legacy]) == []


def test_claimed_cells_remove_every_overlapping_slot() -> None:
    """A 45-minute booking at 10:00Z (15-minute cells) blocks the 30-minute starts 10:00 and 10:30."""
    t = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    cells = {t + timedelta(minutes=15 * i) for i in range(3)}
    slots = compute(query(date(2026, 12, 1)), [expert()], taken={"x1": cells})
    assert "10:00" not in starts(slots) and "10:30" not in starts(slots)
    assert "09:30" in starts(slots) and "11:00" in starts(slots)
    slots60 = compute(query(date(2026, 12, 1), duration=60), [expert()], taken={"x1": cells})
    assert "09:30" not in starts(slots60) and "09:00" in starts(slots60)


def test_busy_times_from_graph_remove_slots_with_the_buffer() -> None:
    """Busy 09:10-10:00Z removes 09:00 and 09:30; with a 15-minute buffer also 10:00 and 08:30."""
    busy = {
        "x1": [
            BusyInterval(datetime(2026, 12, 1, 9, 10, tzinfo=UTC), datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
        ]
    }
    plain = starts(compute(query(date(2026, 12, 1)), [expert()], busy=busy))
    assert "09:00" not in plain and "09:30" not in plain and "08:30" in plain and "10:00" in plain
    buffered = Settings(buffer_minutes=15)
    with_buffer = starts(compute(query(date(2026, 12, 1)), [expert()], busy=busy, settings=buffered))
    assert "10:00" not in with_buffer and "10:30" in with_buffer
    assert "08:30" not in with_buffer  # 08:30-09:00 plus its 15-minute buffer runs into the busy time


def test_an_expert_whose_calendar_could_not_be_read_offers_nothing() -> None:
    """Missing from getSchedule's answer means unknown, and unknown is not free."""
    assert compute(query(date(2026, 12, 1)), [expert()], busy={}) == []


def test_lead_time_and_advance_limit() -> None:
    """Nothing sooner than 2 h from now, nothing later than 90 days ahead."""
    now = datetime(2026, 12, 1, 8, 10, tzinfo=UTC)  # 10.10 in Helsinki
    today = starts(compute(query(date(2026, 12, 1)), [expert()], now=now))
    assert today[0] == "10:30"
    far = NOW + timedelta(days=90)
    last_day = compute(query(far.date()), [expert()])
    assert last_day and all(s.start <= far for s in last_day) and starts(last_day)[-1] == "10:00"
    assert compute(query(far.date() + timedelta(days=1)), [expert()]) == []


def test_any_expert_lists_everyone_free_at_each_start() -> None:
    """Two experts: a start shows both by name, or only the one still free."""
    a, b = expert("a", "Aino"), expert("b", "Bertta")
    busy = {
        "a": [],
        "b": [BusyInterval(datetime(2026, 12, 1, 6, 0, tzinfo=UTC), datetime(2026, 12, 1, 7, 0, tzinfo=UTC))],
    }
    slots = compute(query(date(2026, 12, 1)), [b, a], busy=busy)
    assert [x.display_name for x in slots[0].experts] == ["Aino"]
    assert [x.display_name for x in slots[2].experts] == ["Aino", "Bertta"]


def test_view_groups_by_helsinki_day_with_labels_in_the_language() -> None:
    """Days carry a weekday label in fi/sv/en and ISO dates; slots carry UTC and local times."""
    q = query(date(2026, 12, 1), date(2026, 12, 2))
    view = slots_view(q, compute(q, [expert()]))
    assert [d["label"] for d in view["days"]] == ["tiistai 1.12.2026", "keskiviikko 2.12.2026"]
    first = view["days"][0]["slots"][0]
    assert first["start"] == "2026-12-01T06:00:00Z" and first["startLocal"] == "2026-12-01T08:00:00+02:00"
    assert first["experts"] == [{"id": "x1", "displayName": "Aino"}]
    sv = slots_view(SlotQuery(q.topic_id, q.channel, "sv", 30, q.first_day, q.last_day, None), [])
    assert sv["days"] == [] and sv["language"] == "sv"


def test_query_defaults_and_rules() -> None:
    """Defaults: a week from today, fi, the shortest duration, any expert."""
    q = parse_slot_query({"topic": "loans.home-loan", "channel": "online"}, NOW, SETTINGS)
    assert (q.first_day, q.last_day, q.language, q.duration_minutes, q.expert_id) == (
        date(2026, 11, 25),
        date(2026, 12, 1),
        "fi",
        30,
        None,
    )
    named = parse_slot_query(
        {
            "topic": "loans.home-loan",
            "channel": "phone",
            "expert": "x1",
            "duration": "60",
            "from": "2026-12-01",
            "to": "2026-12-31",
            "language": "en",
        },
        NOW,
        SETTINGS,
    )
    assert named.expert_id == "x1" and named.last_day == date(2026, 12, 31)


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"from": "1.12.2026"}, 400, "from"),
        ({"duration": "half"}, 400, "duration"),
        ({"duration": "50"}, 422, "duration"),
        ({"topic": "nope"}, 422, "topic"),
        ({"channel": "fax"}, 422, "channel"),
        ({"language": "de"}, 422, "language"),
        ({"from": "2026-12-10", "to": "2026-12-01"}, 422, "to"),
        ({"from": "2026-12-01", "to": "2027-01-01"}, 422, "to"),
    ],
)
def test_bad_queries_are_refused(params: dict[str, str], status: int, field: str) -> None:
    """Malformed values are 400, values that break a rule are 422 (at most 31 days)."""
    with pytest.raises(ValidationFailed) as caught:
        parse_slot_query({"topic": "loans.home-loan", "channel": "online", **params}, NOW, SETTINGS)
    assert caught.value.status == status and field in {e.field for e in caught.value.errors}


def test_a_named_expert_must_serve_the_query() -> None:
    """Unknown or unsuitable named experts are 422; "any" filters the directory."""
    other = Expert("o", "Olli", "o@x.example", ("daily.cards",), ("fi",), working_hours=ALL_WEEK)
    directory = [expert(), other]
    assert [x.expert_id for x in candidate_experts(query(date(2026, 12, 1)), directory)] == ["x1"]
    for name in ("o", "nobody"):
        with pytest.raises(ValidationFailed):
            candidate_experts(query(date(2026, 12, 1), expert_id=name), directory)


def test_search_window_is_clipped_to_what_can_be_booked() -> None:
    """Past days give no window; today's starts at now + lead time."""
    assert search_window(query(date(2026, 11, 20)), NOW, SETTINGS) is None
    window = search_window(query(date(2026, 11, 25)), NOW, SETTINGS)
    assert window is not None and window[0] == NOW + timedelta(hours=2)
