"""Booking codes, time rules, request validation, settings and the identity header."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from appointments import codes
from appointments.booking import parse_booking, parse_change, parse_lookup, phone_hmac
from appointments.errors import Unauthenticated, ValidationFailed
from appointments.principal import encode_principal, parse_principal
from appointments.settings import Settings, SettingsError
from appointments.timerules import cell_minutes, claimed_cells, is_on_grid, join_window_opens, parse_utc

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
SETTINGS = Settings.from_env({"DEV_MODE": "true"})


def good(**kw: object) -> dict[str, object]:
    b: dict[str, object] = {
        "expertId": "x",
        "topic": "loans.home-loan",
        "channel": "online",
        "start": "2026-12-08T10:00:00Z",
        "durationMinutes": 45,
        "language": "fi",
        "phone": "+358401234567",
    }
    b.update(kw)
    return b


def fields(payload: object) -> set[str]:
    with pytest.raises(ValidationFailed) as err:
        parse_booking(payload, NOW, SETTINGS)
    return {e.field for e in err.value.errors}


def test_booking_codes_are_eight_unambiguous_characters() -> None:
    """No 0/O, 1/I/L or U; 8 characters; practically never repeated."""
    seen = {codes.new_booking_code() for _ in range(2000)}
    assert len(seen) == 2000
    for code in seen:
        assert len(code) == 8 and not set(code) & set("01OILU")
        assert codes.normalize_booking_code(code.lower()[:4] + "-" + code[4:]) == code
    assert codes.normalize_booking_code("2KMEVE6") is None
    assert codes.normalize_booking_code("2KMEVE6O") is None


def test_join_window_opens_fifteen_minutes_before() -> None:
    """The window rule takes its length from settings."""
    start = datetime(2022, 2, 7, 10, 30, tzinfo=UTC)
    assert join_window_opens(start, SETTINGS.join_window) == start - timedelta(minutes=15)
    s = Settings.from_env({"DEV_MODE": "true", "JOIN_WINDOW_MINUTES": "5"})
    assert join_window_opens(start, s.join_window) == start - timedelta(minutes=5)


def test_slot_grid_and_cells() -> None:
    """Starts sit on the grid; a 45-minute meeting claims three 15-minute cells."""
    assert is_on_grid(datetime(2026, 3, 29, 1, 30, tzinfo=UTC), 30)
    assert not is_on_grid(datetime(2026, 3, 29, 1, 45, tzinfo=UTC), 30)
    assert not is_on_grid(datetime(2026, 3, 29, 1, 30, 5, tzinfo=UTC), 30)
    cell = cell_minutes(30, (30, 45, 60))
    assert cell == 15
    start = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
    assert list(claimed_cells(start, 45, cell)) == [start + timedelta(minutes=m) for m in (0, 15, 30)]
    assert len(list(claimed_cells(start, 45, cell, buffer_minutes=15))) == 4


def test_timestamps_must_carry_an_offset() -> None:
    """A naive time is ambiguous (Helsinki or UTC?) and refused."""
    assert parse_utc("2026-12-08T12:00:00+02:00") == datetime(2026, 12, 8, 10, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_utc("2026-12-08T12:00:00")


def test_a_good_booking_parses() -> None:
    """Phone spacing is normalised to E.164; optional fields default."""
    req = parse_booking(good(phone="+358 40 123-4567"), NOW, SETTINGS)
    assert req.phone == "+358401234567" and req.email is None and req.extra_info == ""


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"start": "2026-11-30T10:00:00Z"}, "start"),  # past
        ({"start": "2026-12-01T09:00:00Z"}, "start"),  # inside the 2 h lead time
        ({"start": "2027-06-01T10:00:00Z"}, "start"),  # beyond 90 days
        ({"start": "2026-12-08T10:10:00Z"}, "start"),  # off the grid
        ({"start": "tomorrow"}, "start"),
        ({"start": "2026-12-08T10:00:00"}, "start"),  # naive
        ({"durationMinutes": 50}, "durationMinutes"),
        ({"durationMinutes": "45"}, "durationMinutes"),
        ({"durationMinutes": True}, "durationMinutes"),
        ({"topic": "loans"}, "topic"),
        ({"channel": "video"}, "channel"),
        ({"language": "de"}, "language"),
        ({"phone": "040 12"}, "phone"),  # too short to exist
        ({"phone": "+0401234567"}, "phone"),
        ({"phone": 358401234567}, "phone"),
        ({"email": "not-an-address"}, "email"),
        ({"extraInfo": "x" * 501}, "extraInfo"),
        ({"expertId": ""}, "expertId"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_each_bad_field_is_named(change: dict[str, object], field: str) -> None:
    """Every field is validated, and the error names it."""
    assert field in fields(good(**change))


def test_all_errors_are_reported_at_once() -> None:
    """One request, every problem: the portal can mark all fields."""
    assert fields({}) >= {"topic", "channel", "start", "durationMinutes", "language", "phone"}


def test_a_non_object_body_is_malformed() -> None:
    """A JSON array is not a booking: 400, not 422."""
    with pytest.raises(ValidationFailed) as err:
        parse_booking([1, 2], NOW, SETTINGS)
    assert err.value.status == 400


def test_change_needs_something_to_change() -> None:
    """An empty PATCH is a 422; unknown fields are named."""
    with pytest.raises(ValidationFailed):
        parse_change({}, NOW, SETTINGS)
    with pytest.raises(ValidationFailed) as err:
        parse_change({"phone": "+358401234567"}, NOW, SETTINGS)
    assert {e.field for e in err.value.errors} == {"phone", "body"}
    assert parse_change({"durationMinutes": 60}, NOW, SETTINGS).duration_minutes == 60


def test_lookup_normalises_the_code() -> None:
    """People type codes in lower case with spaces."""
    assert parse_lookup({"bookingCode": "2kme ve6x", "phone": "+358401234567"}).booking_code == "2KMEVE6X"
    with pytest.raises(ValidationFailed):
        parse_lookup({"bookingCode": "short", "phone": "+358401234567"})


def test_phone_hmac_is_keyed() -> None:
    """The same phone hashes differently under another key; formatting is settled before hashing."""
    assert phone_hmac(parse_lookup({"bookingCode": "2KMEVE6X", "phone": "040 123 4567"}).phone, "k1") == (
        phone_hmac("+358401234567", "k1")
    )
    assert phone_hmac("+358401234567", "k1") != phone_hmac("+358401234567", "k2")


def test_settings_hide_secrets_and_refuse_weak_production_config() -> None:
    """Secrets never show in repr; outside dev mode the pepper and phone key are required."""
    s = Settings.from_env(
        {
            "DEV_MODE": "false",
            "CODE_PEPPER": "p" * 32,
            "PHONE_HMAC_KEY": "k" * 32,
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "GRAPH_CLIENT_SECRET": "hush",
        }
    )
    assert "hush" not in repr(s) and "p" * 32 not in repr(s)
    assert s.graph_client_secret.value == "hush"
    with pytest.raises(SettingsError):
        Settings.from_env({"AzureWebJobsStorage": "x"})
    with pytest.raises(SettingsError):
        Settings.from_env({"DEV_MODE": "true", "CODE_TTL_MINUTES": "30"})
    with pytest.raises(SettingsError):
        Settings.from_env({"DEV_MODE": "maybe"})
    with pytest.raises(SettingsError):
        Settings.from_env({"DEV_MODE": "true", "ALLOWED_DURATIONS": "30,x"})
    with pytest.raises(SettingsError):
        Settings.from_env({"DEV_MODE": "true", "CODE_DIGITS": "4"})
    s2 = Settings.from_env({"DEV_MODE": "1", "ALLOWED_DURATIONS": "60, 30"})
    assert s2.allowed_durations == (30, 60)


def test_principal_is_parsed_strictly() -> None:
    """Only a well-formed Easy Auth principal passes, and only when it can be trusted."""
    header = encode_principal("cust-1")
    who = parse_principal(header, trusted=True)
    assert who.user_id == "cust-1" and not who.is_expert
    assert parse_principal(encode_principal("exp-1", ("Expert",)), trusted=True).is_expert
    with pytest.raises(Unauthenticated):
        parse_principal(header, trusted=False)  # forged: platform auth is off
    bad = [
        "",
        "not base64!!",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b"[]").decode(),
        base64.b64encode(json.dumps({"claims": [{"typ": "oid"}]}).encode()).decode(),
        base64.b64encode(json.dumps({"claims": []}).encode()).decode(),
        base64.b64encode(json.dumps({"claims": [{"typ": "oid", "val": "x\n"}]}).encode()).decode(),
    ]
    for value in bad:
        with pytest.raises(Unauthenticated):
            parse_principal(value, trusted=True)
