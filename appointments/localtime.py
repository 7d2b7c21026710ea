"""Europe/Helsinki wall time: conversions and fi/sv/en formatting.

Everything the service stores and computes is aware UTC; this module is the one place
that turns it into what a customer in Finland reads (``maanantai 7.2.2022 klo 12.30``)
and turns a wall time someone typed back into UTC.

Conventions:

* fi ``maanantai 7.2.2022 klo 12.30``: no leading zeros on day, month or hour, a dot
  between hours and minutes (Kielitoimisto's recommendation).
* sv ``måndag 7.2.2022 kl. 12.30``: the Finland-Swedish convention, the same numbers as
  fi, since our Swedish-speaking customers live in Finland.
* en ``Monday 7 February 2022 at 12:30``: British day-month order with the month
  spelled out (no 7/2 vs 2/7 confusion) and a 24-hour clock with a colon.

Daylight saving time comes from the IANA database (``zoneinfo``): on the last Sunday of
March the clocks go 03:00 → 04:00 (EET → EEST), on the last Sunday of October 04:00 →
03:00 (EEST → EET). See :func:`local_to_utc` for what happens to the missing and the
repeated hour.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

HELSINKI: Final = ZoneInfo("Europe/Helsinki")

Language = Literal["fi", "sv", "en"]
LANGUAGES: Final[tuple[Language, ...]] = ("fi", "sv", "en")

_WEEKDAYS: Final[dict[Language, tuple[str, ...]]] = {
    "fi": ("maanantai", "tiistai", "keskiviikko", "torstai", "perjantai", "lauantai", "sunnuntai"),
    "sv": ("måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag", "söndag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_EN_MONTHS: Final = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_AT: Final[dict[Language, str]] = {"fi": "klo", "sv": "kl.", "en": "at"}
# (singular, plural) of hour and of minute: Finnish takes the partitive plural after a numeral.
_DURATION_WORDS: Final[dict[Language, tuple[tuple[str, str], tuple[str, str]]]] = {
    "fi": (("tunti", "tuntia"), ("minuutti", "minuuttia")),
    "sv": (("timme", "timmar"), ("minut", "minuter")),
    "en": (("hour", "hours"), ("minute", "minutes")),
}


class NonexistentLocalTimeError(ValueError):
    """The wall time falls into the hour skipped when daylight saving time begins."""


def require_language(lang: str) -> Language:
    """Return ``lang`` as a :data:`Language`; anything but fi, sv or en raises ValueError."""
    if lang not in LANGUAGES:
        raise ValueError(f"unsupported language {lang!r}; expected one of {', '.join(LANGUAGES)}")
    return lang


def to_local(dt: datetime) -> datetime:
    """The aware datetime ``dt`` as Helsinki wall time (still aware)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got naive {dt.isoformat()}")
    return dt.astimezone(HELSINKI)


def _local_date(day: date | datetime) -> date:
    # datetime is a subclass of date: an instant is first moved to Helsinki, a plain date is already local.
    return to_local(day).date() if isinstance(day, datetime) else day


def weekday_name(day: date | datetime, lang: str) -> str:
    """Weekday of a Helsinki calendar day (or of an aware instant), e.g. ``maanantai``."""
    return _WEEKDAYS[require_language(lang)][_local_date(day).weekday()]


def format_date(day: date | datetime, lang: str, *, weekday: bool = False) -> str:
    """``7.2.2022`` (fi, sv) or ``7 February 2022`` (en); with ``weekday=True`` prefixed by its name."""
    language = require_language(lang)
    d = _local_date(day)
    text = (
        f"{d.day} {_EN_MONTHS[d.month - 1]} {d.year}" if language == "en" else f"{d.day}.{d.month}.{d.year}"
    )
    return f"{weekday_name(d, language)} {text}" if weekday else text


def format_time(dt: datetime, lang: str) -> str:
    """Helsinki clock time: ``9.05`` (fi, sv) or ``09:05`` (en)."""
    language = require_language(lang)
    local = to_local(dt)
    if language == "en":
        return f"{local.hour:02d}:{local.minute:02d}"
    return f"{local.hour}.{local.minute:02d}"


def format_datetime(dt: datetime, lang: str) -> str:
    """Weekday, date and time in Helsinki, e.g. ``maanantai 7.2.2022 klo 12.30``."""
    language = require_language(lang)
    return f"{format_date(dt, language, weekday=True)} {_AT[language]} {format_time(dt, language)}"


def format_duration(minutes: int, lang: str) -> str:
    """In words, as the bank's guide writes it: ``45 minuuttia``, ``1 tunti``, ``1 tunti 30 minuuttia``
    (fi); ``45 minuter``, ``1 timme`` (sv); ``45 minutes``, ``1 hour 30 minutes`` (en)."""
    language = require_language(lang)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
        raise ValueError(f"duration must be a positive number of minutes, got {minutes!r}")
    hours, rest = divmod(minutes, 60)
    hour_words, minute_words = _DURATION_WORDS[language]
    parts = [f"{hours} {hour_words[hours != 1]}"] if hours else []
    parts += [f"{rest} {minute_words[rest != 1]}"] if rest else []
    return " ".join(parts)


def local_to_utc(wall: datetime | str) -> datetime:
    """Turn a naive Helsinki wall time (a datetime or an ISO 8601 string) into aware UTC.

    * A time in the hour skipped in spring (e.g. 2026-03-29 03:30) does not exist:
      :class:`NonexistentLocalTimeError`.
    * A time in the hour repeated in autumn (e.g. 2026-10-25 03:30) happens twice. We
      take the **earlier** one (still summer time, UTC+3), which is what ``fold=0``
      means in PEP 495 and what a person booking "03:30" most likely expects; pass
      ``wall.replace(fold=1)`` to ask for the later one (UTC+2).
    * An aware input raises ValueError: it is not a wall time, convert it directly.
    """
    naive = datetime.fromisoformat(wall) if isinstance(wall, str) else wall
    if naive.tzinfo is not None:
        raise ValueError(f"expected a naive Helsinki wall time, got aware {naive.isoformat()}")
    utc = naive.replace(tzinfo=HELSINKI).astimezone(UTC)
    if utc.astimezone(HELSINKI).replace(tzinfo=None, fold=0) != naive.replace(fold=0):
        raise NonexistentLocalTimeError(
            f"{naive.isoformat()} does not exist in Europe/Helsinki (clocks skip it when summer time starts)"
        )
    return utc


def local_day_bounds(day: date) -> tuple[datetime, datetime]:
    """A Helsinki calendar day as a half-open UTC interval ``[start, end)``.

    Usually 24 hours; 23 hours on the last Sunday of March and 25 on the last Sunday of
    October. Midnight always exists in Helsinki (the clocks change at 03:00/04:00).
    """
    if isinstance(day, datetime):
        raise TypeError("local_day_bounds takes a calendar date, not a datetime")
    start = local_to_utc(datetime.combine(day, time()))
    end = local_to_utc(datetime.combine(day + timedelta(days=1), time()))
    return start, end
