"""What may reach storage, JSON and dates: text, key fields, timestamps and JSON shape.

Rules (issue 16 §1, §5):
- **Text.** No lone surrogates (they cannot be encoded as UTF-8, so a stored one poisons every
  view that shows it), no control characters (C0, DEL, C1) and no bidirectional overrides or
  isolates (U+202A-U+202E, U+2066-U+2069: they make a text read differently than it is stored).
  Free text (``extraInfo``) may hold newlines (LF); nothing else may.
- **Keys.** ``Idempotency-Key``, ``expertId``, ``holdId`` and the customer id from the principal
  become Table keys, where ``/ \\ # ?`` and control characters are refused by the service. They
  use :data:`KEY_ALPHABET`, 1-128 characters: enough for GUIDs, base64url tokens and the ids
  other identity providers use.
- **Timestamps** are RFC 3339 ``date-time`` (§5.6): ``YYYY-MM-DDTHH:MM:SS[.frac]`` with ``Z`` or
  ``±HH:MM``. ``datetime.fromisoformat`` also takes a space separator, week dates (``2026-W49-2``),
  the basic format (``20261201T100000Z``) and offsets such as ``+00:30``: none of those is RFC 3339
  except the odd offset. RFC 3339 allows any offset, but one that no time zone uses (``+00:30``,
  ``+02:07``) is a typo that would book a time other than the one meant, so the offset must be
  one the tz database has today (:data:`ZONE_OFFSETS`).
  Years outside 2000-2999 are refused before arithmetic, so year 1 or 9999 cannot overflow.
- **JSON** bodies are at most :data:`MAX_BODY_BYTES` and nested at most :data:`MAX_DEPTH` deep.
  The parser recurses, and raises RecursionError near 1,000 levels, which the reader turns into
  a 400; shallower bodies are measured without recursion before anything else walks them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

KEY_ALPHABET = "A-Z a-z 0-9 . _ : @ -"
MAX_KEY = 128
_KEY = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

MAX_BODY_BYTES = 64 * 1024  # a booking is well under 2 KB; the largest field is 500 characters
MAX_DEPTH = 16  # the deepest body the API takes is 2 levels

_RFC3339 = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt](?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?)"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# Every UTC offset in use by a tz database zone: whole hours -12..+14 and these halves/quarters.
ZONE_OFFSETS = frozenset(
    {f"{sign}{h:02d}:00" for h in range(15) for sign in "+-" if sign == "+" or h <= 12}
    | {"-09:30", "-03:30", "+03:30", "+04:30", "+05:30", "+06:30", "+09:30", "+10:30"}
    | {"+05:45", "+08:45", "+12:45"}
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MIN_YEAR, MAX_YEAR = 2000, 2999


def bad_characters(text: str, *, allow_newline: bool = False) -> bool:
    """True when ``text`` holds a lone surrogate, a control character or a bidi override."""
    for ch in text:
        if ch == "\n" and allow_newline:
            continue
        category = unicodedata.category(ch)
        if category in ("Cs", "Cc") or ch in _BIDI_CONTROLS:
            return True
    return False


def is_key(value: object) -> bool:
    """Whether ``value`` is a string in the key alphabet, 1-128 characters."""
    return isinstance(value, str) and _KEY.fullmatch(value) is not None


def is_code_entry(entered: object, digits: int) -> bool:
    """Whether ``entered`` is an identification code as typed: ``digits`` ASCII digits, spaces allowed."""
    if not isinstance(entered, str) or len(entered) > 4 * digits:
        return False
    compact = entered.replace(" ", "")
    return len(compact) == digits and compact.isascii() and compact.isdigit()


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 timestamp with an offset, as aware UTC; ValueError for anything else."""
    m = _RFC3339.fullmatch(value)
    if m is None:
        raise ValueError("not an RFC 3339 date-time with an offset")
    offset = m.group("offset")
    if offset not in ("Z", "z") and offset not in ZONE_OFFSETS:
        raise ValueError("no time zone has this offset")
    year = int(value[:4])
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError("the year is out of range")
    frac = m.group("time")[8:]
    text = m.group("date") + "T" + m.group("time")[:8] + frac[:7] + ("+00:00" if offset in "Zz" else offset)
    return datetime.fromisoformat(text).astimezone(UTC)


def parse_date(value: str) -> datetime:
    """A calendar date ``YYYY-MM-DD`` (no week or ordinal dates) in the year range, at midnight UTC."""
    if _DATE.fullmatch(value) is None or not MIN_YEAR <= int(value[:4]) <= MAX_YEAR:
        raise ValueError("not a calendar date")
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def nested_deeper_than(value: Any, max_depth: int = MAX_DEPTH) -> bool:
    """Whether a parsed JSON value nests arrays/objects deeper than ``max_depth`` (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth + 1 > max_depth:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def strings(value: Any, path: str = "body") -> Iterator[tuple[str, str]]:
    """Every string in a parsed JSON value, keys included, with the field it sits in."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield path, key
            yield from strings(item, key if path == "body" else f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from strings(item, path)
