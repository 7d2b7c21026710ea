"""An iCalendar (RFC 5545) entry for the expert's calendar.

Teams meetings made with createOrGet do not appear in the organizer's calendar, so the
expert's mails carry the appointment as an .ics attachment: a REQUEST when it is booked or
moved (the same UID with a higher SEQUENCE updates it in place), a CANCEL when it is
cancelled. The entry names the topic and the booking code, never the customer.
"""

from __future__ import annotations

from datetime import UTC, datetime

PRODID = "-//Verkkoneuvottelu//Appointments//FI"


def _escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def _fold(line: str) -> str:
    """Fold a content line at 75 octets (RFC 5545 §3.1), never inside a UTF-8 character."""
    data = line.encode()
    if len(data) <= 75:
        return line
    parts: list[str] = []
    chunk = b""
    for ch in line:
        encoded = ch.encode()
        limit = 75 if not parts else 74  # continuation lines start with a space
        if len(chunk) + len(encoded) > limit:
            parts.append(chunk.decode())
            chunk = b""
        chunk += encoded
    parts.append(chunk.decode())
    return "\r\n ".join(parts)


def _stamp(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def appointment_ics(
    *,
    booking_code: str,
    start: datetime,
    end: datetime,
    summary: str,
    description: str,
    url: str,
    organizer: str,
    attendee: str,
    sequence: int,
    now: datetime,
    cancel: bool = False,
) -> bytes:
    """The .ics bytes (CRLF line endings) for one appointment."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        f"METHOD:{'CANCEL' if cancel else 'REQUEST'}",
        "BEGIN:VEVENT",
        f"UID:{booking_code}@verkkoneuvottelu",
        f"SEQUENCE:{sequence}",
        f"DTSTAMP:{_stamp(now)}",
        f"DTSTART:{_stamp(start)}",
        f"DTEND:{_stamp(end)}",
        f"SUMMARY:{_escape(summary)}",
        f"DESCRIPTION:{_escape(description)}",
        f"URL:{url}",
        f"ORGANIZER;CN=Verkkoneuvottelu:mailto:{organizer}",
        f"ATTENDEE;ROLE=REQ-PARTICIPANT;RSVP=FALSE:mailto:{attendee}",
        f"STATUS:{'CANCELLED' if cancel else 'CONFIRMED'}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(_fold(line) for line in lines) + "\r\n").encode()
