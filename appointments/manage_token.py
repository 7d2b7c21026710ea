"""A short-lived token that lets a caller without a login manage one booking.

``POST /api/appointments/lookup`` (booking code + phone number, rate-limited) hands it out;
``GET/PATCH/DELETE /api/appointments/{code}`` accept it in ``X-Booking-Token``. It names its
booking code and expiry and is signed with a key derived from the app's pepper, so it cannot
be forged or moved to another booking. Joining the meeting and verifying identity still need
the strongly authenticated portal login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

TTL = timedelta(minutes=15)
HEADER = "x-booking-token"
_CONTEXT = b"verkkoneuvottelu/manage-token/v1"


def _key(secret: str) -> bytes:
    # Domain separation: the pepper's other uses never produce a valid token signature.
    return hmac.new(secret.encode(), _CONTEXT, hashlib.sha256).digest()


def _sign(secret: str, payload: bytes) -> str:
    mac = hmac.new(_key(secret), payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def issue(booking_code: str, secret: str, now: datetime, ttl: timedelta = TTL) -> tuple[str, datetime]:
    expires = (now + ttl).astimezone(UTC).replace(microsecond=0)
    payload = f"{booking_code}.{int(expires.timestamp())}".encode()
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    return f"{body}.{_sign(secret, payload)}", expires


def verify(token: str, secret: str, now: datetime) -> str | None:
    """The booking code the token is valid for, or None (bad signature, malformed or expired)."""
    if not token or len(token) > 256 or token.count(".") != 1:
        return None
    body, signature = token.split(".")
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        code, expiry = payload.decode("ascii").split(".")
        if not (expiry.isdigit() and len(expiry) <= 11):  # "99999999999" is year 5138: no overflow
            return None
        expires = datetime.fromtimestamp(int(expiry), UTC)
    except (ValueError, UnicodeDecodeError, OverflowError, OSError):
        return None
    if not hmac.compare_digest(_sign(secret, payload), signature) or now >= expires:
        return None
    return code
