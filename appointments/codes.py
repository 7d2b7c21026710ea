"""Booking codes: 8 characters from a CSPRNG, in an alphabet without look-alikes.

The alphabet drops 0/O and 1/I/L, which get confused when read aloud or typed on a
phone, and U (Crockford's choice: it turns codes into words). V stays, so codes look
like the portal's ``2KMEVE6X``. 30 symbols ** 8 ≈ 6.6e11 codes: guessing one is
hopeless, and the lookup endpoint is rate-limited on top.
"""

from __future__ import annotations

import re
import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # 30 symbols; no 0 O 1 I L U
LENGTH = 8
_CODE_RE = re.compile(f"^[{ALPHABET}]{{{LENGTH}}}$")


def new_booking_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalize_booking_code(raw: str) -> str | None:
    """Upper-case and strip spaces/hyphens; ``None`` when it cannot be a booking code."""
    code = re.sub(r"[\s-]", "", raw or "").upper()
    return code if _CODE_RE.match(code) else None
