"""Helsinki wall time: formatting in fi/sv/en and conversions across DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from appointments.localtime import (
    LANGUAGES,
    NonexistentLocalTimeError,
    format_date,
    format_datetime,
    format_duration,
    format_time,
    local_day_bounds,
    local_to_utc,
    require_language,
    to_local,
    weekday_name,
)

DESIGN_EXAMPLE = datetime(2022, 2, 7, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("fi", "maanantai 7.2.2022 klo 12.30"),
        ("sv", "måndag 7.2.2022 kl. 12.30"),
        ("en", "Monday 7 February 2022 at 12:30"),
    ],
)
def test_design_example_formats_in_every_language(lang: str, expected: str) -> None:
    """2022-02-07T10:30Z is Monday 12.30 in Helsinki (EET, UTC+2)."""
    assert format_datetime(DESIGN_EXAMPLE, lang) == expected


def test_date_and_time_have_no_leading_zeros_in_finnish_and_swedish() -> None:
    """fi/sv write 9.05 and 1.3.2026; en writes 09:05 and 1 March 2026."""
    dt = datetime(2026, 3, 1, 7, 5, tzinfo=UTC)  # 09:05 EET
    assert format_time(dt, "fi") == "9.05"
    assert format_time(dt, "sv") == "9.05"
    assert format_time(dt, "en") == "09:05"
    assert format_date(dt, "fi") == "1.3.2026"
    assert format_date(dt, "sv") == "1.3.2026"
    assert format_date(dt, "en") == "1 March 2026"
    assert format_date(dt, "fi", weekday=True) == "sunnuntai 1.3.2026"


@pytest.mark.parametrize(
    ("lang", "names"),
    [
        ("fi", ["maanantai", "tiistai", "keskiviikko", "torstai", "perjantai", "lauantai", "sunnuntai"]),
        ("sv", ["måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag", "söndag"]),
        ("en", ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]),
    ],
)
def test_weekday_names_cover_the_whole_week(lang: str, names: list[str]) -> None:
    """Weekday names run Monday to Sunday (2022-02-07 was a Monday)."""
    assert [weekday_name(date(2022, 2, 7) + timedelta(days=i), lang) for i in range(7)] == names


def test_every_english_month_is_spelled_out() -> None:
    """English dates spell the month, avoiding 7/2 vs 2/7 confusion."""
    months = [format_date(date(2026, m, 15), "en").split()[1] for m in range(1, 13)]
    assert months[0] == "January" and months[-1] == "December" and len(set(months)) == 12


def test_weekday_of_an_instant_is_the_helsinki_weekday() -> None:
    """Sunday 22:30 UTC is already Monday 00.30 in Helsinki."""
    dt = datetime(2022, 2, 6, 22, 30, tzinfo=UTC)
    assert weekday_name(dt, "fi") == "maanantai"
    assert format_datetime(dt, "fi") == "maanantai 7.2.2022 klo 0.30"


def test_midnight_utc_on_new_years_eve_is_already_next_year_in_helsinki() -> None:
    """2026-12-31T22:00Z is 1.1.2027 at 0.00 local time."""
    dt = datetime(2026, 12, 31, 22, 0, tzinfo=UTC)
    assert format_datetime(dt, "fi") == "perjantai 1.1.2027 klo 0.00"
    assert format_datetime(dt, "en") == "Friday 1 January 2027 at 00:00"
    assert format_datetime(dt - timedelta(minutes=1), "sv") == "torsdag 31.12.2026 kl. 23.59"


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # Spring 2026: Sunday 29 March, 03:00 EET -> 04:00 EEST (01:00Z).
        (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "sunnuntai 29.3.2026 klo 2.59"),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "sunnuntai 29.3.2026 klo 4.00"),
        (datetime(2026, 3, 29, 9, 30, tzinfo=UTC), "sunnuntai 29.3.2026 klo 12.30"),
        # Autumn 2026: Sunday 25 October, 04:00 EEST -> 03:00 EET (01:00Z); 03.xx happens twice.
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "sunnuntai 25.10.2026 klo 3.30"),
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "sunnuntai 25.10.2026 klo 3.30"),
        (datetime(2026, 10, 25, 10, 30, tzinfo=UTC), "sunnuntai 25.10.2026 klo 12.30"),
        # 2027: Sunday 28 March and Sunday 31 October.
        (datetime(2027, 3, 28, 1, 0, tzinfo=UTC), "sunnuntai 28.3.2027 klo 4.00"),
        (datetime(2027, 3, 29, 7, 0, tzinfo=UTC), "maanantai 29.3.2027 klo 10.00"),
        (datetime(2027, 10, 31, 0, 59, tzinfo=UTC), "sunnuntai 31.10.2027 klo 3.59"),
        (datetime(2027, 10, 31, 1, 0, tzinfo=UTC), "sunnuntai 31.10.2027 klo 3.00"),
        (datetime(2027, 11, 1, 8, 0, tzinfo=UTC), "maanantai 1.11.2027 klo 10.00"),
    ],
)
def test_formatting_follows_daylight_saving_changes(utc: datetime, expected: str) -> None:
    """Summer time is UTC+3, winter time UTC+2, switching on the last Sundays of March and October."""
    assert format_datetime(utc, "fi") == expected


def test_to_local_keeps_the_instant_and_uses_helsinki_offsets() -> None:
    """to_local changes only the wall-clock view, with +02:00 in winter and +03:00 in summer."""
    winter, summer = datetime(2026, 1, 15, 10, tzinfo=UTC), datetime(2026, 7, 15, 10, tzinfo=UTC)
    assert to_local(winter) == winter and to_local(winter).utcoffset() == timedelta(hours=2)
    assert to_local(summer).utcoffset() == timedelta(hours=3)
    other_zone = datetime(2026, 7, 15, 12, tzinfo=timezone(timedelta(hours=2)))
    assert to_local(other_zone).hour == 13


def test_naive_datetimes_are_refused_for_formatting() -> None:
    """A naive datetime is ambiguous: formatting refuses it instead of guessing."""
    with pytest.raises(ValueError, match="aware"):
        format_datetime(datetime(2022, 2, 7, 10, 30), "fi")
    with pytest.raises(ValueError, match="aware"):
        to_local(datetime(2022, 2, 7, 10, 30))


@pytest.mark.parametrize(
    ("minutes", "fi", "sv", "en"),
    [
        (5, "5 minuuttia", "5 minuter", "5 minutes"),
        (1, "1 minuutti", "1 minut", "1 minute"),
        (30, "30 minuuttia", "30 minuter", "30 minutes"),
        (45, "45 minuuttia", "45 minuter", "45 minutes"),
        (60, "1 tunti", "1 timme", "1 hour"),
        (61, "1 tunti 1 minuutti", "1 timme 1 minut", "1 hour 1 minute"),
        (90, "1 tunti 30 minuuttia", "1 timme 30 minuter", "1 hour 30 minutes"),
        (120, "2 tuntia", "2 timmar", "2 hours"),
        (135, "2 tuntia 15 minuuttia", "2 timmar 15 minuter", "2 hours 15 minutes"),
    ],
)
def test_durations_read_in_words_as_the_guide_writes_them(minutes: int, fi: str, sv: str, en: str) -> None:
    """Durations are spelled out in every language ("1 tunti", not "60 min")."""
    assert format_duration(minutes, "fi") == fi
    assert format_duration(minutes, "sv") == sv
    assert format_duration(minutes, "en") == en


@pytest.mark.parametrize("minutes", [0, -15, True])
def test_a_duration_must_be_a_positive_number_of_minutes(minutes: int) -> None:
    """Zero, negative and boolean durations are programming errors."""
    with pytest.raises(ValueError, match="positive"):
        format_duration(minutes, "fi")


@pytest.mark.parametrize("lang", ["de", "FI", "", "fi-FI", "se"])
def test_an_unsupported_language_raises(lang: str) -> None:
    """Only fi, sv and en are supported; anything else fails loudly everywhere."""
    for call in (
        lambda: format_datetime(DESIGN_EXAMPLE, lang),
        lambda: format_date(DESIGN_EXAMPLE, lang),
        lambda: format_time(DESIGN_EXAMPLE, lang),
        lambda: format_duration(30, lang),
        lambda: weekday_name(DESIGN_EXAMPLE, lang),
        lambda: require_language(lang),
    ):
        with pytest.raises(ValueError, match="unsupported language"):
            call()


def test_supported_languages_are_exactly_fi_sv_en() -> None:
    """The language list is the contract the templates follow."""
    assert LANGUAGES == ("fi", "sv", "en")
    assert [require_language(lang) for lang in LANGUAGES] == ["fi", "sv", "en"]


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        (date(2026, 3, 29), 23),
        (date(2026, 3, 28), 24),
        (date(2026, 3, 30), 24),
        (date(2026, 10, 25), 25),
        (date(2026, 10, 24), 24),
        (date(2027, 3, 28), 23),
        (date(2027, 10, 31), 25),
        (date(2027, 1, 1), 24),
        (date(2026, 7, 1), 24),
    ],
)
def test_a_helsinki_day_lasts_23_24_or_25_hours(day: date, hours: int) -> None:
    """Day bounds are local midnights in UTC; DST days are one hour shorter or longer."""
    start, end = local_day_bounds(day)
    assert end - start == timedelta(hours=hours)
    assert start.tzinfo is UTC and end.tzinfo is UTC
    assert to_local(start).date() == day and to_local(start).hour == 0
    assert to_local(end).date() == day + timedelta(days=1) and to_local(end).hour == 0


def test_day_bounds_are_local_midnights_in_utc() -> None:
    """Winter midnight is 22:00Z the day before, summer midnight 21:00Z; across a year boundary too."""
    assert local_day_bounds(date(2027, 1, 1)) == (
        datetime(2026, 12, 31, 22, tzinfo=UTC),
        datetime(2027, 1, 1, 22, tzinfo=UTC),
    )
    assert local_day_bounds(date(2026, 3, 29)) == (
        datetime(2026, 3, 28, 22, tzinfo=UTC),
        datetime(2026, 3, 29, 21, tzinfo=UTC),
    )
    assert local_day_bounds(date(2026, 10, 25)) == (
        datetime(2026, 10, 24, 21, tzinfo=UTC),
        datetime(2026, 10, 25, 22, tzinfo=UTC),
    )


def test_day_bounds_take_a_date_not_a_datetime() -> None:
    """A datetime would silently drop its time and zone, so it is refused."""
    with pytest.raises(TypeError):
        local_day_bounds(datetime(2026, 3, 29, tzinfo=UTC))


def test_local_wall_time_converts_to_utc() -> None:
    """12.30 on 7.2.2022 in Helsinki is 10:30Z; strings in ISO format work too."""
    assert local_to_utc(datetime(2022, 2, 7, 12, 30)) == DESIGN_EXAMPLE
    assert local_to_utc("2022-02-07T12:30") == DESIGN_EXAMPLE
    assert local_to_utc("2026-07-01T12:00") == datetime(2026, 7, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    "wall", ["2026-03-29T03:00", "2026-03-29T03:30", "2026-03-29T03:59", "2027-03-28T03:15"]
)
def test_a_time_in_the_spring_gap_does_not_exist(wall: str) -> None:
    """The hour skipped when summer time starts raises a dedicated ValueError."""
    with pytest.raises(NonexistentLocalTimeError, match="does not exist"):
        local_to_utc(wall)


def test_the_edges_of_the_spring_gap_exist() -> None:
    """02.59 is the last winter minute and 04.00 the first summer minute."""
    assert local_to_utc("2026-03-29T02:59") == datetime(2026, 3, 29, 0, 59, tzinfo=UTC)
    assert local_to_utc("2026-03-29T04:00") == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("wall", "earlier"),
    [
        (datetime(2026, 10, 25, 3, 0), datetime(2026, 10, 25, 0, 0, tzinfo=UTC)),
        (datetime(2026, 10, 25, 3, 30), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        (datetime(2027, 10, 31, 3, 59), datetime(2027, 10, 31, 0, 59, tzinfo=UTC)),
    ],
)
def test_an_ambiguous_autumn_time_means_the_earlier_occurrence(wall: datetime, earlier: datetime) -> None:
    """The repeated hour resolves to summer time (fold=0); fold=1 asks for the later, winter one."""
    assert local_to_utc(wall) == earlier
    assert local_to_utc(wall.replace(fold=1)) == earlier + timedelta(hours=1)


def test_the_edges_of_the_autumn_overlap_are_unambiguous() -> None:
    """02.59 is plain summer time and 04.00 plain winter time."""
    assert local_to_utc("2026-10-25T02:59") == datetime(2026, 10, 24, 23, 59, tzinfo=UTC)
    assert local_to_utc("2026-10-25T04:00") == datetime(2026, 10, 25, 2, 0, tzinfo=UTC)


def test_an_aware_datetime_is_not_a_wall_time() -> None:
    """Passing an aware value (or an ISO string with an offset) to local_to_utc is a mistake."""
    with pytest.raises(ValueError, match="naive"):
        local_to_utc(DESIGN_EXAMPLE)
    with pytest.raises(ValueError, match="naive"):
        local_to_utc("2022-02-07T12:30+02:00")


def test_conversion_round_trips_for_every_quarter_hour_of_a_dst_year() -> None:
    """Formatting a converted wall time gives back the same wall time, except in the spring gap."""
    wall = datetime(2026, 1, 1)
    while wall < datetime(2027, 1, 1):
        try:
            utc = local_to_utc(wall)
        except NonexistentLocalTimeError:
            assert (wall.month, wall.day, wall.hour) == (3, 29, 3)
        else:
            assert to_local(utc).replace(tzinfo=None) == wall
        wall += timedelta(minutes=15)
