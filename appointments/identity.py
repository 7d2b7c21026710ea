"""The one-time identification code that binds the portal customer to the Teams participant.

Rules (ARCHITECTURE.md §7; NIST SP 800-63B §5.1.3, §5.2.2; OWASP ASVS V6):
- 6+ random digits from ``secrets`` (≥ 20 bits), shown once to the expert who issued it;
- stored only as a salted, peppered HMAC-SHA256; compared in constant time;
- valid ``code_ttl`` (≤ 10 min), single use, bound to one booking code, replaced by a new one;
- ``max_attempts`` wrong entries lock it (the expert can issue a new one);
- besides, a customer's consecutive failures across codes slow them down with growing
  delays and stop them entirely after ``max_consecutive_failures``.

Everything here is pure: the repository stores records and applies them with ETags.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


def new_code(digits: int = 6) -> str:
    if digits < 6:
        raise ValueError("identification codes have at least 6 digits")
    return "".join(secrets.choice("0123456789") for _ in range(digits))


def hash_code(code: str, salt: str, pepper: str, booking_code: str) -> str:
    """Keyed by the pepper (kept outside the table) and bound to the booking code."""
    message = f"{booking_code}\x00{salt}\x00{code}".encode()
    return hmac.new(pepper.encode(), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class CodeRecord:
    booking_code: str
    code_hash: str
    salt: str
    issued_at: datetime
    expires_at: datetime
    issued_by: str  # the expert's id
    attempts: int = 0
    used: bool = False
    etag: str | None = None


def issue(
    booking_code: str, expert_id: str, now: datetime, ttl: timedelta, pepper: str, digits: int = 6
) -> tuple[str, CodeRecord]:
    """A fresh code and the record that replaces any earlier one. The plain code is returned once."""
    code = new_code(digits)
    salt = secrets.token_hex(16)
    record = CodeRecord(
        booking_code, hash_code(code, salt, pepper, booking_code), salt, now, now + ttl, expert_id
    )
    return code, record


class Outcome(StrEnum):
    VERIFIED = "verified"  # 200
    WRONG = "wrong"  # 422, attempts left
    LOCKED = "locked"  # 423 (this attempt locked it, or it was locked already)
    EXPIRED = "expired"  # 410
    NONE = "none"  # 409: no code outstanding (never issued, or already used)
    REPEATED = "repeated"  # 200 again: the code was used, by this very entry (a retried request)


@dataclass(frozen=True)
class Verification:
    outcome: Outcome
    record: CodeRecord | None  # the record to write back (None: write nothing)
    attempts_left: int = 0
    just_locked: bool = False  # this attempt used up the last try: raise CodeLocked once


def _normalize(entered: str) -> str:
    return "".join(ch for ch in entered if not ch.isspace())


def verify(
    record: CodeRecord | None, entered: str, now: datetime, pepper: str, max_attempts: int
) -> Verification:
    """Judge one attempt. Locked and expired codes are not compared at all."""
    if record is None:
        return Verification(Outcome.NONE, None)
    if record.used:
        # A retry of the request that used it answers what that one did; it changes nothing.
        candidate = hash_code(_normalize(entered), record.salt, pepper, record.booking_code)
        repeated = hmac.compare_digest(candidate, record.code_hash)
        return Verification(Outcome.REPEATED if repeated else Outcome.NONE, None)
    if record.attempts >= max_attempts:
        return Verification(Outcome.LOCKED, None)
    if now >= record.expires_at:
        return Verification(Outcome.EXPIRED, None)
    candidate = hash_code(_normalize(entered), record.salt, pepper, record.booking_code)
    if hmac.compare_digest(candidate, record.code_hash):
        return Verification(Outcome.VERIFIED, replace(record, used=True))
    attempts = record.attempts + 1
    left = max_attempts - attempts
    if left <= 0:
        return Verification(Outcome.LOCKED, replace(record, attempts=attempts), 0, just_locked=True)
    return Verification(Outcome.WRONG, replace(record, attempts=attempts), left)


@dataclass(frozen=True)
class FailureCounter:
    """A customer's consecutive failed verifications (or a lookup key's failed lookups)."""

    key: str
    failures: int = 0
    blocked_until: datetime | None = None
    etag: str | None = None


def retry_after(counter: FailureCounter, now: datetime, max_failures: int) -> int | None:
    """Seconds to wait before another attempt is allowed, or None. -1 means: stopped for good."""
    if counter.failures >= max_failures:
        return -1
    if counter.blocked_until is not None and now < counter.blocked_until:
        return max(1, int((counter.blocked_until - now).total_seconds() + 0.999))
    return None


def after_failure(
    counter: FailureCounter, now: datetime, free_failures: int = 3, max_delay_seconds: int = 900
) -> FailureCounter:
    """Count a failure; after ``free_failures`` each one doubles the wait (1 s, 2 s, 4 s … 15 min)."""
    failures = counter.failures + 1
    delay = 0 if failures < free_failures else min(2 ** (failures - free_failures), max_delay_seconds)
    return replace(
        counter, failures=failures, blocked_until=now + timedelta(seconds=delay) if delay else None
    )
