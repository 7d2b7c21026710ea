"""Phone numbers as people write them, to E.164 (issue 14): ``040 123 4567``, ``0401234567``,
``+358 40 123 4567`` and ``00358 40 123 4567`` are all ``+358401234567``.

Google's libphonenumber (the ``phonenumbers`` package) knows each region's trunk prefix (0 in
Finland), its international prefix (00) and which numbers exist, so a number is refused when it
cannot be dialled, not merely when it looks odd. The same function runs at booking and at lookup,
so the keyed hash of the stored number matches whichever way the customer types it later.
"""

from __future__ import annotations

import phonenumbers

MAX_INPUT = 32  # "+358 (0)40 123 4567" with room to spare; longer input is not a phone number
_ALLOWED = frozenset("0123456789+ -()./")


def to_e164(raw: object, region: str) -> str | None:
    """The number in E.164, or None when ``raw`` is not a valid phone number."""
    if not isinstance(raw, str) or not 0 < len(raw) <= MAX_INPUT or not set(raw) <= _ALLOWED:
        return None  # also keeps non-ASCII digits out: libphonenumber would accept them
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
