"""Property tests of every request parser: arbitrary unicode, nesting and sizes never get past
validation unchecked, and never raise anything but the parser's documented refusal."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appointments import manage_token, messages
from appointments.availability import parse_hold, parse_slot_query
from appointments.booking import BOOKING_FIELDS, parse_booking, parse_change, parse_lookup
from appointments.errors import DomainError, Unauthenticated, ValidationFailed
from appointments.principal import parse_principal
from appointments.settings import Settings
from appointments.validation import (
    MIN_YEAR,
    bad_characters,
    is_code_entry,
    is_key,
    parse_date,
    parse_rfc3339,
)
from http_triggers.forwarded import source_address
from http_triggers.problem import dumps, read_json

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
SETTINGS = Settings.from_env({"DEV_MODE": "true"})
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Every code point, lone surrogates included (hypothesis leaves them out unless asked).
ANY_CHAR = st.characters(exclude_categories=())
TEXT = st.text(ANY_CHAR, max_size=40)
FIELD_VALUES = st.one_of(
    TEXT,
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.sampled_from(
        [
            "2026-12-08T10:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59+14:00",
            "040 123 4567",
            "+358401234567",
            "loans.home-loan",
            "online",
            "fi",
            "any",
            "6f1c2a4e-0b7d-4c1e-9a51-3d2f8e7c1a01",
        ]
    ),
)
JSON_VALUES = st.recursive(
    FIELD_VALUES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
BOOKING_KEYS = st.sampled_from(sorted(BOOKING_FIELDS | {"bookingCode", "code"}))
BODIES = st.one_of(JSON_VALUES, st.dictionaries(BOOKING_KEYS, JSON_VALUES, max_size=10))


def refused_cleanly(parse: Any, *args: Any) -> Any:
    """Parse; a refusal must be a ValidationFailed naming fields. Returns the result or None."""
    try:
        return parse(*args)
    except ValidationFailed as refusal:
        assert refusal.errors and refusal.status in (400, 422)
        return None


def assert_storable(value: Any) -> None:
    """What a parser accepted can be stored and shown: no lone surrogate, no control character."""
    for item in vars(value).values():
        if isinstance(item, str):
            assert not bad_characters(item, allow_newline=True)
            item.encode("utf-8")


@FAST
@given(BODIES)
def test_booking_parser(body: Any) -> None:
    """Any JSON value is either a clean booking request or a field-by-field refusal."""
    parsed = refused_cleanly(parse_booking, body, NOW, SETTINGS)
    if parsed is not None:
        assert_storable(parsed)
        assert is_key(parsed.expert_id) and parsed.phone.startswith("+")


@FAST
@given(BODIES)
def test_change_parser(body: Any) -> None:
    """A PATCH body likewise."""
    parsed = refused_cleanly(parse_change, body, NOW, SETTINGS)
    if parsed is not None:
        assert parsed.expert_id is None or is_key(parsed.expert_id)


@FAST
@given(BODIES)
def test_lookup_parser(body: Any) -> None:
    """A lookup yields an 8-character code in the code alphabet and an E.164 number, or a refusal."""
    parsed = refused_cleanly(parse_lookup, body, "FI")
    if parsed is not None:
        assert len(parsed.booking_code) == 8 and parsed.booking_code.isascii()
        assert parsed.phone.startswith("+") and parsed.phone[1:].isdigit() and parsed.phone.isascii()


@FAST
@given(BODIES)
def test_hold_parser(body: Any) -> None:
    """A slot hold request likewise."""
    parsed = refused_cleanly(parse_hold, body, NOW, SETTINGS)
    if parsed is not None:
        assert is_key(parsed.expert_id)


@FAST
@given(
    st.dictionaries(
        st.sampled_from(["from", "to", "duration", "topic", "channel", "language", "expert"]), TEXT
    )
)
def test_slot_query_parser(params: dict[str, str]) -> None:
    """Any query string is either a slot query or a refusal."""
    refused_cleanly(parse_slot_query, params, NOW, SETTINGS)


def request(body: bytes, content_type: str = "application/json") -> func.HttpRequest:
    return func.HttpRequest(
        "POST", "http://localhost/api/x", headers={"content-type": content_type}, body=body
    )


@FAST
@given(
    st.one_of(
        st.binary(max_size=300),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(min_value=1, max_value=5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    )
)
def test_json_body_reader(body: bytes) -> None:
    """Bytes, deep nesting and escaped surrogates: parsed clean, or a 400/413 problem, never a crash."""
    try:
        value = read_json(request(body))
    except DomainError as refusal:
        assert refusal.status in (400, 413)
        return
    dumps(value).encode("utf-8")


def test_json_body_reader_refuses_a_body_over_the_limit() -> None:
    """64 KiB and a byte: 413, before parsing."""
    try:
        read_json(request(b" " * (64 * 1024 + 1)))
    except DomainError as refusal:
        assert refusal.status == 413
    else:
        raise AssertionError("accepted")


@FAST
@given(
    st.one_of(
        TEXT,
        st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()),
        JSON_VALUES.map(lambda v: base64.b64encode(json.dumps(v).encode()).decode()),
        st.dictionaries(st.sampled_from(["claims", "role_typ", "auth_typ"]), JSON_VALUES).map(
            lambda v: base64.b64encode(json.dumps(v).encode()).decode()
        ),
    )
)
def test_principal_header_parser(header: str) -> None:
    """Any header is a principal whose id is a valid Table key, or a 401."""
    try:
        who = parse_principal(header, trusted=True)
    except Unauthenticated:
        return
    assert is_key(who.user_id)


@FAST
@given(
    st.one_of(
        TEXT,
        st.tuples(st.binary(max_size=60), TEXT).map(
            lambda t: base64.urlsafe_b64encode(t[0]).decode().rstrip("=") + "." + t[1]
        ),
        st.integers(min_value=-(10**40), max_value=10**40).map(
            lambda n: base64.urlsafe_b64encode(f"2KMEVE6X.{n}".encode()).decode().rstrip("=") + ".sig"
        ),
    )
)
def test_manage_token_verifier(token: str) -> None:
    """A token is a booking code or None; overflowing expiry times included."""
    assert manage_token.verify(token, "pepper", NOW) in (None,) or isinstance(
        manage_token.verify(token, "pepper", NOW), str
    )


@FAST
@given(
    st.one_of(
        TEXT, st.lists(st.sampled_from(["fi", "sv-FI", "en;q=0.5", ";q=", "*", "x" * 9, "q=2"])).map(",".join)
    )
)
def test_accept_language(header: str) -> None:
    """Always one of the three languages."""
    assert messages.negotiate(header) in ("fi", "sv", "en")


@FAST
@given(
    st.one_of(
        TEXT,
        st.lists(st.one_of(st.ip_addresses().map(str), TEXT, st.just("1.2.3.4/5")), max_size=6).map(
            ", ".join
        ),
        st.just("9" * 2000),
    ),
    st.integers(min_value=0, max_value=8),
)
def test_forwarded_for(header: str, hops: int) -> None:
    """An address usable as a Table key, or None."""
    source = source_address(header, hops)
    assert source is None or (source.isascii() and not set(source) & set("/\\#?") and len(source) < 64)


@FAST
@given(
    st.one_of(
        TEXT,
        st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
        st.datetimes().map(lambda d: d.isoformat(sep=" ") + "Z"),
    )
)
def test_timestamps(value: str) -> None:
    """RFC 3339 with an offset parses to aware UTC within the year range; anything else is ValueError."""
    try:
        parsed = parse_rfc3339(value)
    except ValueError:
        return
    assert parsed.tzinfo is UTC and parsed.year >= MIN_YEAR - 1 and "T" in value.upper()


@FAST
@given(st.one_of(TEXT, st.dates().map(lambda d: d.isoformat())))
def test_dates(value: str) -> None:
    """Calendar dates only."""
    try:
        parse_date(value)
    except ValueError:
        return
    assert len(value) == 10 and value.isascii()


@FAST
@given(st.one_of(TEXT, st.text(st.sampled_from("0123456789 ١٢３\t"), max_size=20)))
def test_identification_code_entry(entered: str) -> None:
    """Accepted entries are six ASCII digits once the spaces are gone; nothing else."""
    if is_code_entry(entered, 6):
        digits = entered.replace(" ", "")
        assert len(digits) == 6 and all(c in "0123456789" for c in digits)
