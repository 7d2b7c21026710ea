"""Parsing and validating what customers send: every field, all errors at once."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from appointments.catalogue import LANGUAGES, TOPICS, Channel
from appointments.errors import Problems
from appointments.phones import to_e164
from appointments.settings import Settings
from appointments.timerules import is_on_grid
from appointments.validation import bad_characters, is_code_entry, is_key, parse_rfc3339

EMAIL = re.compile(r"^[^@\s<>\"']{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
MAX_EXTRA_INFO = 500
BOOKING_FIELDS = {
    "expertId",
    "topic",
    "channel",
    "start",
    "durationMinutes",
    "language",
    "phone",
    "email",
    "extraInfo",
    "holdId",
}
CHANGE_FIELDS = {"start", "durationMinutes", "topic", "expertId"}
ANY_EXPERT = "any"


def phone_hmac(phone: str, key: str) -> str:
    """A keyed hash of an E.164 phone number: a plain hash of a phone number is easily reversed."""
    return hmac.new(key.encode(), phone.encode(), hashlib.sha256).hexdigest()


def fingerprint(payload: dict[str, Any]) -> str:
    """A stable digest of a request body, to spot an Idempotency-Key reused for another request."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class BookingRequest:
    expert_id: str  # or ANY_EXPERT
    topic_id: str
    channel: Channel
    start: datetime
    duration_minutes: int
    language: str
    phone: str
    email: str | None
    extra_info: str
    hold_id: str | None = None  # the customer's own hold on this slot (POST /api/slots/hold)


def _require_object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        p = Problems()
        p.add("body", "body_not_object")
        p.raise_if_any(malformed=True)
    assert isinstance(payload, dict)
    return payload


def _check_unknown(payload: dict[str, Any], allowed: set[str], p: Problems) -> None:
    for key in sorted(set(payload) - allowed):
        p.add(key, "unknown_field", field=key)


def check_start(
    start: datetime, now: datetime, settings: Settings, p: Problems, field: str = "start"
) -> None:
    if start <= now:
        p.add(field, "start_in_past")
    elif start < now + timedelta(minutes=settings.min_lead_minutes):
        p.add(field, "start_too_soon", minutes=settings.min_lead_minutes)
    elif start > now + timedelta(days=settings.max_advance_days):
        p.add(field, "start_too_far", days=settings.max_advance_days)
    if not is_on_grid(start, settings.slot_interval_minutes):
        p.add(field, "start_off_grid", minutes=settings.slot_interval_minutes)


def _parse_start(value: Any, p: Problems, field: str = "start") -> datetime | None:
    try:
        if isinstance(value, str):
            return parse_rfc3339(value)
    except ValueError:
        pass
    p.add(field, "datetime_invalid")
    return None


def _parse_duration(value: Any, settings: Settings, p: Problems) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value not in settings.allowed_durations:
        p.add("durationMinutes", "duration_invalid", choices=", ".join(map(str, settings.allowed_durations)))
        return None
    return value


def _parse_topic(value: Any, p: Problems) -> str | None:
    if not isinstance(value, str) or value not in TOPICS:
        p.add("topic", "topic_invalid")
        return None
    return value


def parse_booking(payload: Any, now: datetime, settings: Settings) -> BookingRequest:
    body = _require_object(payload)
    p = Problems()
    _check_unknown(body, BOOKING_FIELDS, p)
    expert_id = body.get("expertId", ANY_EXPERT)
    if not is_key(expert_id):
        p.add("expertId", "expert_id_invalid")
    topic = _parse_topic(body.get("topic"), p)
    channel: Channel | None = None
    try:
        channel = Channel(str(body.get("channel")))
    except ValueError:
        p.add("channel", "channel_invalid", channels=[c.value for c in Channel])
    start = _parse_start(body.get("start"), p)
    if start is not None:
        check_start(start, now, settings, p)
    duration = _parse_duration(body.get("durationMinutes"), settings, p)
    language = body.get("language")
    if language not in LANGUAGES:
        p.add("language", "language_invalid")
    phone = to_e164(body.get("phone"), settings.phone_default_region)
    if phone is None:
        p.add("phone", "phone_invalid")
    email = body.get("email")
    if email is not None and (not isinstance(email, str) or not EMAIL.match(email) or bad_characters(email)):
        p.add("email", "email_invalid")
    extra = body.get("extraInfo", "")
    if not isinstance(extra, str) or len(extra) > MAX_EXTRA_INFO:
        p.add("extraInfo", "extra_info_invalid", max=MAX_EXTRA_INFO)
    elif bad_characters(extra, allow_newline=True):
        p.add("extraInfo", "text_invalid")
    hold_id = body.get("holdId")
    if hold_id is not None and not is_key(hold_id):
        p.add("holdId", "hold_id_invalid")
    p.raise_if_any()
    assert topic and channel and start and duration and isinstance(language, str) and isinstance(extra, str)
    assert isinstance(expert_id, str) and phone is not None
    return BookingRequest(
        expert_id.strip(),
        topic,
        channel,
        start,
        duration,
        language,
        phone,
        email if isinstance(email, str) else None,
        extra.strip(),
        hold_id if isinstance(hold_id, str) else None,
    )


@dataclass(frozen=True)
class ChangeRequest:
    start: datetime | None
    duration_minutes: int | None
    topic_id: str | None
    expert_id: str | None


def parse_change(payload: Any, now: datetime, settings: Settings) -> ChangeRequest:
    body = _require_object(payload)
    p = Problems()
    _check_unknown(body, CHANGE_FIELDS, p)
    if not set(body) & CHANGE_FIELDS:
        p.add("body", "change_empty")
    start = duration = topic = None
    if "start" in body:
        start = _parse_start(body["start"], p)
        if start is not None:
            check_start(start, now, settings, p)
    if "durationMinutes" in body:
        duration = _parse_duration(body["durationMinutes"], settings, p)
    if "topic" in body:
        topic = _parse_topic(body["topic"], p)
    expert_id = body.get("expertId")
    if expert_id is not None and not is_key(expert_id):
        p.add("expertId", "expert_id_invalid")
    p.raise_if_any()
    return ChangeRequest(start, duration, topic, expert_id)


@dataclass(frozen=True)
class LookupRequest:
    booking_code: str
    phone: str


def parse_lookup(payload: Any, region: str = "FI") -> LookupRequest:
    from appointments.codes import normalize_booking_code

    body = _require_object(payload)
    p = Problems()
    _check_unknown(body, {"bookingCode", "phone"}, p)
    raw_code = body.get("bookingCode")
    code = normalize_booking_code(raw_code) if isinstance(raw_code, str) else None
    if code is None:
        p.add("bookingCode", "booking_code_invalid")
    phone = to_e164(body.get("phone"), region)
    if phone is None:
        p.add("phone", "phone_invalid")
    p.raise_if_any()
    assert code is not None and phone is not None
    return LookupRequest(code, phone)


def parse_identity_code(payload: Any, digits: int) -> str:
    """``{"code": "123 456"}``: the expert's one-time code, spaces allowed; returns the digits."""
    body = _require_object(payload)
    p = Problems()
    _check_unknown(body, {"code"}, p)
    entered = body.get("code")
    if not is_code_entry(entered, digits):
        p.add("code", "code_invalid", digits=digits)
    # Digits of other scripts are not a guess at the code: malformed, and never counted.
    p.raise_if_any(malformed=isinstance(entered, str) and not entered.isascii())
    assert isinstance(entered, str)
    return entered.replace(" ", "")
