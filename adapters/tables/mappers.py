"""Table names, and the mappers between domain records and Table entities (no I/O here)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from appointments.catalogue import Channel
from appointments.identity import CodeRecord, FailureCounter
from appointments.model import Appointment, Expert, Phase, WorkingHours
from appointments.ports import AuditEntry, OutboxEntry, SlotHold
from appointments.timerules import iso, parse_utc

APPOINTMENTS = "Appointments"
EXPERT_SLOTS = "ExpertSlots"
EXPERTS = "Experts"
EXPERTS_PARTITION = "experts"
# Per booking code, one partition of one table, so that what a request writes about a booking
# commits in one entity-group transaction (one round trip):
# - row "": the code index (the record's customer, the phone HMAC, the expert and, for a booking
#   made with an Idempotency-Key, the request's fingerprint: the key's record);
# - row "code": the current identification code;
# - rows "event-<id>": the lifecycle outbox;
# - rows "audit-<time>-<suffix>": the audit trail (append-only; only retention deletes them).
MEETING_STATE = "MeetingState"
BOOKING_CODES = MEETING_STATE  # the code index's table
INDEX_ROW = ""
AUDIT = MEETING_STATE  # the audit trail's table
AUDIT_ROW_PREFIX = "audit-"
CODE_ROW = "code"
EVENT_ROW_PREFIX = "event-"
SLOT_HOLDS = "SlotHolds"
HOLD_EXPIRES = "HoldExpiresAt"  # set on ExpertSlots cells that a hold (not a booking) claimed
FAILURES = "FailureCounters"
MEETING_SUBSCRIPTIONS = "MeetingSubscriptions"  # booking code -> Graph call-event subscription id
NOTIFICATIONS = "Notifications"  # which notification keys were sent
CUSTOMER_OUTBOX = "Outbox"  # SMS and push rows for the bank's own channels


def opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def appointment_entity(a: Appointment) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": a.customer_id,
        "RowKey": a.booking_code,
        "ExpertId": a.expert_id,
        "Channel": a.channel.value,
        "TopicId": a.topic_id,
        "Start": iso(a.start),
        "DurationMinutes": a.duration_minutes,
        "Language": a.language,
        "Phone": a.phone,
        "Email": a.email or "",
        "ExtraInfo": a.extra_info,
        "Phase": a.phase.value,
        "PhaseSince": iso(a.phase_since) if a.phase_since else "",
        "CreatedAt": iso(a.created_at) if a.created_at else "",
        "Revision": a.revision,
        "MeetingId": a.meeting_id or "",
        "JoinUrl": a.join_url or "",
        "Attention": a.attention or "",
        "CustomerName": a.customer_name or "",
    }
    return entity


def appointment_from(e: Any) -> Appointment:
    return Appointment(
        booking_code=e["RowKey"],
        customer_id=e["PartitionKey"],
        expert_id=e["ExpertId"],
        channel=Channel(e["Channel"]),
        topic_id=e["TopicId"],
        start=parse_utc(e["Start"]),
        duration_minutes=int(e["DurationMinutes"]),
        language=e["Language"],
        phone=e["Phone"],
        email=opt(e.get("Email")),
        extra_info=e.get("ExtraInfo", "") or "",
        phase=Phase(e["Phase"]),
        phase_since=parse_utc(e["PhaseSince"]) if e.get("PhaseSince") else None,
        created_at=parse_utc(e["CreatedAt"]) if e.get("CreatedAt") else None,
        revision=int(e.get("Revision", 0)),
        meeting_id=opt(e.get("MeetingId")),
        join_url=opt(e.get("JoinUrl")),
        attention=opt(e.get("Attention")),
        customer_name=opt(e.get("CustomerName")),
        etag=e.metadata.get("etag") if hasattr(e, "metadata") else None,
    )


def expert_entity(x: Expert) -> dict[str, Any]:
    return {
        "PartitionKey": EXPERTS_PARTITION,
        "RowKey": x.expert_id,
        "DisplayName": x.display_name,
        "Email": x.email,
        "Title": x.title,
        "Bank": x.bank,
        "Topics": json.dumps(list(x.topics)),
        "Languages": json.dumps(list(x.languages)),
        "Channels": json.dumps([c.value for c in x.channels]),
        "WorkingHours": json.dumps([[w.weekday, w.start, w.end] for w in x.working_hours]),
        "Active": x.active,
    }


def expert_from(e: Any) -> Expert:
    return Expert(
        expert_id=e["RowKey"],
        display_name=e["DisplayName"],
        email=e.get("Email", ""),
        title=e.get("Title", ""),
        bank=e.get("Bank", "") or "",
        topics=tuple(json.loads(e["Topics"])),
        languages=tuple(json.loads(e["Languages"])),
        channels=tuple(Channel(c) for c in json.loads(e.get("Channels", '["online","phone","branch"]'))),
        working_hours=tuple(
            WorkingHours(int(d), s, t) for d, s, t in json.loads(e.get("WorkingHours", "[]"))
        ),
        active=bool(e.get("Active", True)),
    )


def event_entity(entry: OutboxEntry) -> dict[str, Any]:
    return {
        "PartitionKey": entry.booking_code,
        "RowKey": EVENT_ROW_PREFIX + entry.entry_id,
        "Event": entry.event,
        "Payload": json.dumps(entry.payload),
    }


def code_entity(r: CodeRecord) -> dict[str, Any]:
    return {
        "PartitionKey": r.booking_code,
        "RowKey": CODE_ROW,
        "CodeHash": r.code_hash,
        "Salt": r.salt,
        "IssuedAt": iso(r.issued_at),
        "ExpiresAt": iso(r.expires_at),
        "IssuedBy": r.issued_by,
        "Attempts": r.attempts,
        "Used": r.used,
    }


def code_from(e: Any) -> CodeRecord:
    return CodeRecord(
        booking_code=e["PartitionKey"],
        code_hash=e["CodeHash"],
        salt=e["Salt"],
        issued_at=parse_utc(e["IssuedAt"]),
        expires_at=parse_utc(e["ExpiresAt"]),
        issued_by=e["IssuedBy"],
        attempts=int(e["Attempts"]),
        used=bool(e["Used"]),
        etag=e.metadata["etag"],
    )


def event_from(e: Any) -> OutboxEntry:
    return OutboxEntry(
        e["PartitionKey"], e["RowKey"][len(EVENT_ROW_PREFIX) :], e["Event"], json.loads(e["Payload"])
    )


def counter_entity(counter: FailureCounter) -> dict[str, Any]:
    return {
        "PartitionKey": counter.key,
        "RowKey": "",
        "Failures": counter.failures,
        "BlockedUntil": iso(counter.blocked_until) if counter.blocked_until else "",
    }


def counter_from(key: str, e: Any) -> FailureCounter:
    return FailureCounter(
        key,
        int(e["Failures"]),
        parse_utc(e["BlockedUntil"]) if e.get("BlockedUntil") else None,
        e.metadata["etag"],
    )


def hold_entity(hold: SlotHold) -> dict[str, Any]:
    return {
        "PartitionKey": hold.hold_id,
        "RowKey": "",
        "CustomerId": hold.customer_id,
        "ExpertId": hold.expert_id,
        "Start": iso(hold.start),
        "DurationMinutes": hold.duration_minutes,
        "ExpiresAt": iso(hold.expires_at),
    }


def hold_from(hold_id: str, e: Any) -> SlotHold:
    return SlotHold(
        hold_id=hold_id,
        customer_id=e["CustomerId"],
        expert_id=e["ExpertId"],
        start=parse_utc(e["Start"]),
        duration_minutes=int(e["DurationMinutes"]),
        expires_at=parse_utc(e["ExpiresAt"]),
    )


def audit_entity(entry: AuditEntry) -> dict[str, Any]:
    return {
        "PartitionKey": entry.booking_code,
        # Time to the microsecond, then the writer's nanosecond clock: ordered, and unique.
        "RowKey": f"{AUDIT_ROW_PREFIX}{entry.at:%Y-%m-%dT%H:%M:%S.%fZ}"
        f"-{time.time_ns():020d}-{uuid.uuid4().hex[:6]}",
        "At": iso(entry.at),
        "Actor": entry.actor,
        "Action": entry.action,
        "Detail": entry.detail,
    }


def audit_from(booking_code: str, r: Any) -> AuditEntry:
    return AuditEntry(booking_code, parse_utc(r["At"]), r["Actor"], r["Action"], r.get("Detail", ""))
