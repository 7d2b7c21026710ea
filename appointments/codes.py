"""Booking codes: 8 characters from a CSPRNG, in an alphabet without look-alikes.

The alphabet drops 0/O, 1/I/L and U/V (read aloud and typed on phones, these get
confused). 29 symbols ** 8 ≈ 5.0e11 codes: guessing one is hopeless, and the
lookup endpoint is rate-limited on top.
"""

from __future__ import annotations

import re
import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"  # 29 symbols; no 0 O 1 I L U V
LENGTH = 8
_CODE_RE = re.compile(f"^[{ALPHABET}]{{{LENGTH}}}$")


def new_booking_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalize_booking_code(raw: str) -> str | None:
    """Upper-case and strip spaces/hyphens; ``None`` when it cannot be a booking code."""
    code = re.sub(r"[\s-]", "", raw or "").upper()
    return code if _CODE_RE.match(code) else None
