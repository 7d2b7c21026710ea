"""Booking codes: 8 characters from a CSPRNG, in an alphabet without look-alikes.

The alphabet drops 0/O and 1/I/L, which get confused when read aloud or typed on a
phone, and U (Crockford's choice: it turns codes into words). V stays, so codes look
like the portal's ``2KMEVE6X``. 30 symbols ** 8 ≈ 6.6e11 codes: guessing one is
hopeless, and the lookup endpoint is rate-limited on top.
"""

from __future__ import annotations

import hashlib
import hmac
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


def booking_code_for_key(secret: str, customer_id: str, idempotency_key: str) -> str:
    """The booking code of a booking made with an ``Idempotency-Key``: the same for every retry.

    An HMAC keyed by a secret the customer never sees, so it is as unguessable as a random code,
    and differs per customer for the same key. A retry of a booking that crashed half-way thus
    comes back to the cells and code index the first attempt wrote, with no key row to read or
    write first: the code index row is the key's record (``adapters/tables/repository.py``).
    """
    digest = hmac.new(
        secret.encode(), f"booking-code\x00{customer_id}\x00{idempotency_key}".encode(), hashlib.sha256
    ).digest()
    n = int.from_bytes(digest, "big")  # 256 bits: the bias of taking it mod 30**8 is nil
    out = []
    for _ in range(LENGTH):
        n, i = divmod(n, len(ALPHABET))
        out.append(ALPHABET[i])
    return "".join(out)
