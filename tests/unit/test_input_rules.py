"""What the API takes: phone numbers as typed, RFC 3339 times, key alphabet, forwarded-for hops."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from appointments.phones import to_e164
from appointments.settings import Settings, SettingsError
from appointments.validation import bad_characters, is_key, parse_rfc3339
from http_triggers.forwarded import source_address


@pytest.mark.parametrize(
    "typed",
    ["040 123 4567", "0401234567", "040-123 4567", "+358 40 123 4567", "00358 40 123 4567", "+358401234567"],
)
def test_finnish_mobile_numbers_as_people_write_them_are_one_number(typed: str) -> None:
    """Domestic, international and 00 forms all become the same E.164 number."""
    assert to_e164(typed, "FI") == "+358401234567"


@pytest.mark.parametrize(
    "typed", ["040 12", "+358 40 123 4567 8901", "١٢٣٤٥٦٧٨٩٠", "040 123 4567\n", "", "abc"]
)
def test_numbers_that_cannot_exist_are_refused(typed: str) -> None:
    """Too short or long, other scripts' digits, control characters, letters."""
    assert to_e164(typed, "FI") is None


def test_the_default_region_is_a_setting() -> None:
    """A Swedish domestic number reads as Swedish when the region is SE."""
    assert to_e164("070 123 45 67", "SE") == "+46701234567"
    assert Settings.from_env({"DEV_MODE": "true", "PHONE_DEFAULT_REGION": "se"}).phone_default_region == "SE"
    with pytest.raises(SettingsError):
        Settings.from_env({"DEV_MODE": "true", "PHONE_DEFAULT_REGION": "XX"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-08T10:00:00Z", datetime(2026, 12, 8, 10, tzinfo=UTC)),
        ("2026-12-08t10:00:00z", datetime(2026, 12, 8, 10, tzinfo=UTC)),
        ("2026-12-08T12:00:00+02:00", datetime(2026, 12, 8, 10, tzinfo=UTC)),
        ("2026-12-08T15:30:00+05:30", datetime(2026, 12, 8, 10, tzinfo=UTC)),
        ("2026-12-08T10:00:00.5Z", datetime(2026, 12, 8, 10, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_rfc3339_times_parse_to_utc(value: str, expected: datetime) -> None:
    """Z or a real zone's offset, fractions allowed."""
    assert parse_rfc3339(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-08 10:00:00Z",  # space separator
        "2026-W50-2T10:00:00Z",  # ISO week date
        "20261208T100000Z",  # basic format
        "2026-12-08T10:00:00+00:30",  # no zone has it
        "2026-12-08T10:00:00+0200",  # basic offset
        "2026-12-08T10:00:00",  # naive
        "2026-12-08T10:00Z",  # no seconds
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "２０２６-12-08T10:00:00Z",
    ],
)
def test_lenient_or_out_of_range_times_are_refused(value: str) -> None:
    """What datetime.fromisoformat would take but RFC 3339 (or the calendar we serve) does not."""
    with pytest.raises(ValueError):
        parse_rfc3339(value)


def test_keys_use_the_documented_alphabet() -> None:
    """GUIDs, base64url tokens and e-mail-like ids pass; Table key characters and spaces do not."""
    assert all(
        is_key(k) for k in ["6f1c2a4e-0b7d-4c1e-9a51-3d2f8e7c1a01", "oby8jPu_1gapV5y", "a@b.fi", "any"]
    )
    assert not any(is_key(k) for k in ["a/b", "a#b", "a?b", "a\\b", "a b", "", "x" * 129, "ä", 5])


def test_text_rules() -> None:
    """Newlines only where allowed; surrogates, controls and bidi overrides never."""
    assert not bad_characters("rivi 1\nrivi 2", allow_newline=True)
    assert bad_characters("rivi 1\nrivi 2")
    assert all(
        bad_characters(t, allow_newline=True)
        for t in ["\ud800", "a\x00", "\x1b[31m", "\u202e", "\r\n", "\x85"]
    )


@pytest.mark.parametrize(
    ("header", "hops", "source"),
    [
        ("203.0.113.7", 1, "203.0.113.7"),
        ("198.51.100.1, 203.0.113.7", 1, "203.0.113.7"),  # the client's own entry is ignored
        ("198.51.100.1, 203.0.113.7, 10.0.0.1", 2, "203.0.113.7"),
        ("203.0.113.7:51234", 1, "203.0.113.7"),
        ("[2001:db8:1:2:3:4:5:6]:443", 1, "2001:db8:1:2::_64"),  # one subscriber's /64
        ("::ffff:203.0.113.7", 1, "203.0.113.7"),
        ("203.0.113.7", 0, None),  # nothing trusted in front
        ("1.2.3.4/5", 1, None),
        ("203.0.113.7", 2, None),  # fewer entries than trusted hops
        ("9" * 2000, 1, None),
        ("x" * 5000 + ", 203.0.113.7", 1, "203.0.113.7"),
        ("", 1, None),
        (None, 1, None),
    ],
)
def test_the_trusted_forwarded_hop_is_the_source(header: str | None, hops: int, source: str | None) -> None:
    """The entry the outermost trusted proxy appended; malformed or missing is no source at all."""
    assert source_address(header, hops) == source


def test_forwarded_hops_and_service_phone_are_settings() -> None:
    """TRUSTED_FORWARDED_HOPS 0-8, BANK_SERVICE_PHONE shown as given."""
    s = Settings.from_env(
        {"DEV_MODE": "true", "TRUSTED_FORWARDED_HOPS": "0", "BANK_SERVICE_PHONE": "010 555 1234"}
    )
    assert (s.trusted_forwarded_hops, s.bank_service_phone) == (0, "010 555 1234")
    for bad in (
        {"TRUSTED_FORWARDED_HOPS": "9"},
        {"TRUSTED_FORWARDED_HOPS": "-1"},
        {"BANK_SERVICE_PHONE": "0\n1"},
    ):
        with pytest.raises(SettingsError):
            Settings.from_env({"DEV_MODE": "true", **bad})
