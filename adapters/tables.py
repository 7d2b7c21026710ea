"""The appointment repository on Azure Table Storage (DESIGN §4).

Every write is idempotent, so an activity or a client may retry it:
- expert slots are claimed with *inserts* in one transaction per appointment; the
  Table service refuses the whole batch if any cell is taken (no double booking),
  and a retry that finds the cells held by the same booking code treats them as its own;
- records are replaced only with ``If-Match`` on their ETag where races are possible;
- an Idempotency-Key row is written before anything else, so a crashed booking resumes
  with the same booking code instead of making a second one.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from adapters.conditional import create_or_replace
from appointments.catalogue import Channel
from appointments.identity import CodeRecord, FailureCounter
from appointments.model import Appointment, Expert, Phase, WorkingHours, require_object_id
from appointments.ports import AuditEntry, IdempotencyMismatch, SlotHold, SlotTaken, StaleRecord
from appointments.timerules import iso, parse_utc

APPOINTMENTS = "Appointments"
BOOKING_CODES = "BookingCodes"
EXPERT_SLOTS = "ExpertSlots"
AUDIT = "Audit"
IDEMPOTENCY = "IdempotencyKeys"
EXPERTS = "Experts"
EXPERTS_PARTITION = "experts"
IDENTITY_CODES = "IdentityCodes"
SLOT_HOLDS = "SlotHolds"
HOLD_EXPIRES = "HoldExpiresAt"  # set on ExpertSlots cells that a hold (not a booking) claimed
FAILURES = "FailureCounters"
MEETING_SUBSCRIPTIONS = "MeetingSubscriptions"  # booking code -> Graph call-event subscription id
MAX_BATCH = 100  # the Table service's limit per transaction (Azurite fails opaquely above it)


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _to_entity(a: Appointment) -> dict[str, Any]:
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
    }
    return entity


def _from_entity(e: Any) -> Appointment:
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
        email=_opt(e.get("Email")),
        extra_info=e.get("ExtraInfo", "") or "",
        phase=Phase(e["Phase"]),
        phase_since=parse_utc(e["PhaseSince"]) if e.get("PhaseSince") else None,
        created_at=parse_utc(e["CreatedAt"]) if e.get("CreatedAt") else None,
        revision=int(e.get("Revision", 0)),
        meeting_id=_opt(e.get("MeetingId")),
        join_url=_opt(e.get("JoinUrl")),
        attention=_opt(e.get("Attention")),
        etag=e.metadata.get("etag") if hasattr(e, "metadata") else None,
    )


def _expert_entity(x: Expert) -> dict[str, Any]:
    return {
        "PartitionKey": EXPERTS_PARTITION,
        "RowKey": x.expert_id,
        "DisplayName": x.display_name,
        "Email": x.email,
        "Title": x.title,
        "Topics": json.dumps(list(x.topics)),
        "Languages": json.dumps(list(x.languages)),
        "Channels": json.dumps([c.value for c in x.channels]),
        "WorkingHours": json.dumps([[w.weekday, w.start, w.end] for w in x.working_hours]),
        "Active": x.active,
    }


def _expert_from(e: Any) -> Expert:
    return Expert(
        expert_id=e["RowKey"],
        display_name=e["DisplayName"],
        email=e.get("Email", ""),
        title=e.get("Title", ""),
        topics=tuple(json.loads(e["Topics"])),
        languages=tuple(json.loads(e["Languages"])),
        channels=tuple(Channel(c) for c in json.loads(e.get("Channels", '["online","phone","branch"]'))),
        working_hours=tuple(
            WorkingHours(int(d), s, t) for d, s, t in json.loads(e.get("WorkingHours", "[]"))
        ),
        active=bool(e.get("Active", True)),
    )


def _cell_key(cell: datetime) -> str:
    return iso(cell)


def _hold_holder(hold_id: str) -> str:
    from appointments.availability import hold_key

    return hold_key(hold_id)


def _expired_hold(row: Any, now: datetime | None) -> bool:
    expires = row.get(HOLD_EXPIRES)
    return bool(expires) and now is not None and parse_utc(str(expires)) <= now


class TableRepository:
    """``AppointmentRepository`` on ``azure-data-tables``. Tables are created on first use."""

    def __init__(self, service: TableServiceClient) -> None:
        self._service = service
        self._tables: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_connection_string(cls, connection_string: str) -> TableRepository:
        return cls(TableServiceClient.from_connection_string(connection_string))

    def table(self, name: str) -> TableClient:
        client = self._tables.get(name)
        if client is None:
            with self._lock:
                client = self._tables.get(name)
                if client is None:
                    with contextlib.suppress(ResourceExistsError):
                        self._service.create_table(name)
                    client = self._service.get_table_client(name)
                    self._tables[name] = client
        return client

    # --- reads -------------------------------------------------------------------------------

    def read(self, table: str, partition: str, row: str) -> Any | None:
        """A point read; ``None`` when the entity does not exist."""
        try:
            return self.table(table).get_entity(partition, row)
        except ResourceNotFoundError:
            return None

    def get(self, customer_id: str, booking_code: str) -> Appointment | None:
        row = self.read(APPOINTMENTS, customer_id, booking_code)
        return None if row is None else _from_entity(row)

    def _code_row(self, booking_code: str) -> Any | None:
        return self.read(BOOKING_CODES, booking_code, "")

    def get_by_code(self, booking_code: str) -> Appointment | None:
        row = self._code_row(booking_code)
        return None if row is None else self.get(row["CustomerId"], booking_code)

    def phone_hmac(self, booking_code: str) -> str | None:
        row = self._code_row(booking_code)
        return None if row is None else str(row["PhoneHmac"])

    def list_for_customer(self, customer_id: str) -> list[Appointment]:
        rows = self.table(APPOINTMENTS).query_entities("PartitionKey eq @pk", parameters={"pk": customer_id})
        return sorted((_from_entity(r) for r in rows), key=lambda a: a.start)

    def list_for_expert(self, expert_id: str, start: datetime, end: datetime) -> list[Appointment]:
        rows = self.table(EXPERT_SLOTS).query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
            parameters={"pk": expert_id, "lo": iso(start), "hi": iso(end)},
            select=["BookingCode"],
        )
        codes = dict.fromkeys(r["BookingCode"] for r in rows)  # cells of one booking: keep order, once
        found = (self.get_by_code(code) for code in codes)
        return sorted((a for a in found if a is not None and a.expert_id == expert_id), key=lambda a: a.start)

    def list_by_phase(self, phase: Phase | None) -> list[Appointment]:
        """Operators' cross-partition scan; fine at ops volume, never on a customer path."""
        if phase is None:
            rows = self.table(APPOINTMENTS).list_entities()
        else:
            rows = self.table(APPOINTMENTS).query_entities("Phase eq @p", parameters={"p": phase.value})
        return sorted((_from_entity(r) for r in rows), key=lambda a: a.start)

    def find_by_idempotency_key(self, customer_id: str, key: str) -> tuple[str, str] | None:
        row = self.read(IDEMPOTENCY, customer_id, key)
        if row is None:
            return None
        return str(row["BookingCode"]), str(row["Fingerprint"])

    # --- writes ------------------------------------------------------------------------------

    def _claim(
        self,
        expert_id: str,
        booking_code: str,
        cells: Iterable[datetime],
        *,
        now: datetime | None = None,
        hold_id: str | None = None,
        hold_expires_at: datetime | None = None,
    ) -> None:
        """Claim every cell in one transaction; cells this booking (or hold) already has are fine.

        Free cells are inserted. A cell of a hold that expired before ``now``, or of the hold
        ``hold_id`` (ours, being converted), is taken over with an ETag-conditional replace in
        the same transaction, so of two claimants racing for it exactly one wins. Without
        ``now`` every hold counts as live.
        """
        table = self.table(EXPERT_SLOTS)
        keys = [_cell_key(c) for c in cells]
        if len(keys) > MAX_BATCH:
            raise ValueError(f"an appointment may claim at most {MAX_BATCH} cells")
        extra = {HOLD_EXPIRES: iso(hold_expires_at)} if hold_expires_at is not None else {}
        takeover = {_hold_holder(hold_id)} if hold_id else set()
        ops: list[tuple[Any, ...]] = []
        for key in keys:
            entity = {"PartitionKey": expert_id, "RowKey": key, "BookingCode": booking_code, **extra}
            try:
                row = table.get_entity(expert_id, key)
            except ResourceNotFoundError:
                ops.append(("create", entity))
                continue
            holder = row["BookingCode"]
            if holder == booking_code:
                continue
            if holder in takeover or _expired_hold(row, now):
                ops.append(
                    (
                        "update",
                        entity,
                        {
                            "mode": UpdateMode.REPLACE,
                            "etag": row.metadata["etag"],
                            "match_condition": MatchConditions.IfNotModified,
                        },
                    )
                )
                continue
            raise SlotTaken(f"expert slot {key} is {'held' if row.get(HOLD_EXPIRES) else 'taken'}")
        if not ops:
            return
        try:
            table.submit_transaction(ops)
        except TableTransactionError as exc:
            # Lost a race for at least one cell. Whoever won, re-check: it may be ourselves (a retry).
            for op in ops:
                key = op[1]["RowKey"]
                try:
                    holder = table.get_entity(expert_id, key)["BookingCode"]
                except ResourceNotFoundError:
                    raise SlotTaken("expert slot changed while booking; try again") from exc
                if holder != booking_code:
                    raise SlotTaken(f"expert slot {key} is taken") from exc

    def release_cells(self, expert_id: str, booking_code: str, cells: list[datetime]) -> None:
        table = self.table(EXPERT_SLOTS)
        for cell in cells:
            try:
                row = table.get_entity(expert_id, _cell_key(cell))
            except ResourceNotFoundError:
                continue
            if row["BookingCode"] != booking_code:
                continue  # somebody else's now; never free another booking's cell
            try:
                table.delete_entity(
                    row, etag=row.metadata["etag"], match_condition=MatchConditions.IfNotModified
                )
            except (ResourceNotFoundError, ResourceModifiedError):
                continue

    def create(
        self,
        appointment: Appointment,
        *,
        phone_hmac: str,
        cells: list[datetime],
        idempotency_key: str | None,
        fingerprint: str,
        now: datetime | None = None,
        hold_id: str | None = None,
    ) -> Appointment:
        a = appointment
        if idempotency_key is not None:
            try:
                self.table(IDEMPOTENCY).create_entity(
                    {
                        "PartitionKey": a.customer_id,
                        "RowKey": idempotency_key,
                        "BookingCode": a.booking_code,
                        "Fingerprint": fingerprint,
                        "CreatedAt": iso(a.created_at or datetime.now(UTC)),
                    }
                )
            except ResourceExistsError:
                found = self.find_by_idempotency_key(a.customer_id, idempotency_key)
                if found is None:  # pragma: no cover - deleted between the two calls
                    raise
                code, stored_fingerprint = found
                if stored_fingerprint != fingerprint:
                    raise IdempotencyMismatch("Idempotency-Key was used for a different request") from None
                existing = self.get(a.customer_id, code)
                if existing is not None:
                    return existing
                a = a.with_changes(booking_code=code)  # an earlier attempt crashed half-way: finish it
        try:
            self._claim(a.expert_id, a.booking_code, cells, now=now, hold_id=hold_id)
        except SlotTaken:
            if idempotency_key is not None:
                # Nothing was booked under this key: free it, so the key does not pin a booking
                # code that never came to be (a retry of the same request gets "slot taken" again).
                self.table(IDEMPOTENCY).delete_entity(a.customer_id, idempotency_key)
            raise
        self.table(BOOKING_CODES).upsert_entity(
            {
                "PartitionKey": a.booking_code,
                "RowKey": "",
                "CustomerId": a.customer_id,
                "PhoneHmac": phone_hmac,
                "ExpertId": a.expert_id,
            }
        )
        with contextlib.suppress(ResourceExistsError):  # a retry of this very booking
            self.table(APPOINTMENTS).create_entity(_to_entity(a))
        if hold_id is not None:
            self._forget_hold(hold_id)  # its cells are the booking's now
        stored = self.get(a.customer_id, a.booking_code)
        assert stored is not None
        return stored

    def update(self, appointment: Appointment) -> Appointment:
        if appointment.etag is None:
            raise ValueError("update needs the record's ETag")
        try:
            self.table(APPOINTMENTS).update_entity(
                _to_entity(appointment),
                mode=UpdateMode.REPLACE,
                etag=appointment.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise StaleRecord("the appointment changed meanwhile") from exc
        except HttpResponseError as exc:
            if exc.status_code == 412:
                raise StaleRecord("the appointment changed meanwhile") from exc
            raise
        stored = self.get(appointment.customer_id, appointment.booking_code)
        assert stored is not None
        return stored

    def move(
        self, appointment: Appointment, new: Appointment, old_cells: list[datetime], new_cells: list[datetime]
    ) -> Appointment:
        self._claim(new.expert_id, new.booking_code, new_cells)
        try:
            stored = self.update(new.with_changes(etag=appointment.etag))
        except StaleRecord:
            keep = set(old_cells) if new.expert_id == appointment.expert_id else set()
            self.release_cells(new.expert_id, new.booking_code, [c for c in new_cells if c not in keep])
            raise
        if new.expert_id != appointment.expert_id:
            self.table(BOOKING_CODES).update_entity(
                {"PartitionKey": new.booking_code, "RowKey": "", "ExpertId": new.expert_id},
                mode=UpdateMode.MERGE,
            )
            self.release_cells(appointment.expert_id, appointment.booking_code, old_cells)
        else:
            keep = set(new_cells)
            self.release_cells(
                appointment.expert_id, appointment.booking_code, [c for c in old_cells if c not in keep]
            )
        return stored

    def _merge(self, booking_code: str, fields: dict[str, Any]) -> None:
        row = self._code_row(booking_code)
        if row is None:
            raise KeyError(booking_code)
        self.table(APPOINTMENTS).update_entity(
            {"PartitionKey": row["CustomerId"], "RowKey": booking_code, **fields}, mode=UpdateMode.MERGE
        )

    def set_phase(
        self,
        booking_code: str,
        phase: Phase,
        since: datetime,
        *,
        revision: int | None = None,
        attention: str | None = None,
    ) -> None:
        """Record the orchestration's phase. Idempotent; a terminal phase is never overwritten
        by a non-terminal one, and a stale revision never overwrites a newer one."""
        for _ in range(5):
            current = self.get_by_code(booking_code)
            if current is None:
                raise KeyError(booking_code)
            if current.phase.is_terminal and not phase.is_terminal:
                return
            if revision is not None and revision < current.revision:
                return
            if current.phase is phase and current.attention == attention:
                return
            try:
                self.table(APPOINTMENTS).update_entity(
                    {
                        "PartitionKey": current.customer_id,
                        "RowKey": booking_code,
                        "Phase": phase.value,
                        "PhaseSince": iso(since),
                        "Attention": attention or "",
                    },
                    mode=UpdateMode.MERGE,
                    etag=current.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
                return
            except ResourceModifiedError:
                continue
        raise StaleRecord(f"could not record phase {phase} for {booking_code}")

    def advance_phase(
        self, booking_code: str, expected: frozenset[Phase], phase: Phase, since: datetime
    ) -> bool:
        """Compare-and-set: move the record to ``phase`` only if it is still in ``expected``.

        HTTP triggers use it right after raising an event, so the caller's next read sees
        its own change; the orchestration records the same phase a moment later. Being
        conditional, a late write can never overwrite a phase the orchestration set since.
        """
        for _ in range(5):
            current = self.get_by_code(booking_code)
            if current is None or current.phase not in expected or current.phase is phase:
                return False
            try:
                self.table(APPOINTMENTS).update_entity(
                    {
                        "PartitionKey": current.customer_id,
                        "RowKey": booking_code,
                        "Phase": phase.value,
                        "PhaseSince": iso(since),
                    },
                    mode=UpdateMode.MERGE,
                    etag=current.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
                return True
            except ResourceModifiedError:
                continue
        return False

    def set_meeting(self, booking_code: str, meeting_id: str, join_url: str) -> None:
        self._merge(booking_code, {"MeetingId": meeting_id, "JoinUrl": join_url})

    def audit(self, entry: AuditEntry) -> None:
        self.table(AUDIT).create_entity(
            {
                "PartitionKey": entry.booking_code,
                # Time to the microsecond, then the writer's nanosecond clock: ordered, and unique.
                "RowKey": f"{entry.at:%Y-%m-%dT%H:%M:%S.%fZ}-{time.time_ns():020d}-{uuid.uuid4().hex[:6]}",
                "At": iso(entry.at),
                "Actor": entry.actor,
                "Action": entry.action,
                "Detail": entry.detail,
            }
        )

    def audit_trail(self, booking_code: str) -> list[AuditEntry]:
        rows = self.table(AUDIT).query_entities("PartitionKey eq @pk", parameters={"pk": booking_code})
        return [
            AuditEntry(booking_code, parse_utc(r["At"]), r["Actor"], r["Action"], r.get("Detail", ""))
            for r in rows
        ]

    # --- experts -----------------------------------------------------------------------------

    def list_experts(self) -> list[Expert]:
        rows = self.table(EXPERTS).query_entities("PartitionKey eq @pk", parameters={"pk": EXPERTS_PARTITION})
        return sorted((_expert_from(r) for r in rows), key=lambda x: x.display_name)

    def get_expert(self, expert_id: str) -> Expert | None:
        row = self.read(EXPERTS, EXPERTS_PARTITION, expert_id)
        return None if row is None else _expert_from(row)

    def put_expert(self, expert: Expert) -> None:
        require_object_id(expert.expert_id)
        self.table(EXPERTS).upsert_entity(_expert_entity(expert), mode=UpdateMode.REPLACE)

    # --- identification codes and failure counters (DESIGN §7) --------------------------------

    def get_code(self, booking_code: str) -> CodeRecord | None:
        e = self.read(IDENTITY_CODES, booking_code, "current")
        if e is None:
            return None
        return CodeRecord(
            booking_code=booking_code,
            code_hash=e["CodeHash"],
            salt=e["Salt"],
            issued_at=parse_utc(e["IssuedAt"]),
            expires_at=parse_utc(e["ExpiresAt"]),
            issued_by=e["IssuedBy"],
            attempts=int(e["Attempts"]),
            used=bool(e["Used"]),
            etag=e.metadata["etag"],
        )

    @staticmethod
    def _code_entity(r: CodeRecord) -> dict[str, Any]:
        return {
            "PartitionKey": r.booking_code,
            "RowKey": "current",
            "CodeHash": r.code_hash,
            "Salt": r.salt,
            "IssuedAt": iso(r.issued_at),
            "ExpiresAt": iso(r.expires_at),
            "IssuedBy": r.issued_by,
            "Attempts": r.attempts,
            "Used": r.used,
        }

    def put_code(self, record: CodeRecord) -> None:
        """A new code replaces the earlier one, attempts and all."""
        self.table(IDENTITY_CODES).upsert_entity(self._code_entity(record), mode=UpdateMode.REPLACE)

    def update_code(self, record: CodeRecord) -> None:
        """Write an attempt's result only if nobody else wrote since we read (If-Match)."""
        try:
            self.table(IDENTITY_CODES).update_entity(
                self._code_entity(record),
                mode=UpdateMode.REPLACE,
                etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise StaleRecord("the code changed meanwhile") from exc

    def get_counter(self, key: str) -> FailureCounter:
        e = self.read(FAILURES, key, "")
        if e is None:
            return FailureCounter(key)
        return FailureCounter(
            key,
            int(e["Failures"]),
            parse_utc(e["BlockedUntil"]) if e.get("BlockedUntil") else None,
            e.metadata["etag"],
        )

    def save_counter(self, counter: FailureCounter) -> None:
        entity = {
            "PartitionKey": counter.key,
            "RowKey": "",
            "Failures": counter.failures,
            "BlockedUntil": iso(counter.blocked_until) if counter.blocked_until else "",
        }
        create_or_replace(self.table(FAILURES), entity, counter.etag)

    def reset_counter(self, key: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table(FAILURES).delete_entity(key, "")

    # --- availability and holds ---------------------------------------------------------------

    def taken_cells(self, expert_id: str, start: datetime, end: datetime, now: datetime) -> set[datetime]:
        rows = self.table(EXPERT_SLOTS).query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
            parameters={"pk": expert_id, "lo": iso(start), "hi": iso(end)},
            select=["RowKey", HOLD_EXPIRES],
        )
        return {parse_utc(r["RowKey"]) for r in rows if not _expired_hold(r, now)}

    def hold(self, hold: SlotHold, cells: list[datetime], *, now: datetime) -> None:
        self._claim(
            hold.expert_id, _hold_holder(hold.hold_id), cells, now=now, hold_expires_at=hold.expires_at
        )
        self.table(SLOT_HOLDS).upsert_entity(
            {
                "PartitionKey": hold.hold_id,
                "RowKey": "",
                "CustomerId": hold.customer_id,
                "ExpertId": hold.expert_id,
                "Start": iso(hold.start),
                "DurationMinutes": hold.duration_minutes,
                "ExpiresAt": iso(hold.expires_at),
            }
        )

    def get_hold(self, hold_id: str) -> SlotHold | None:
        e = self.read(SLOT_HOLDS, hold_id, "")
        if e is None:
            return None
        return SlotHold(
            hold_id=hold_id,
            customer_id=e["CustomerId"],
            expert_id=e["ExpertId"],
            start=parse_utc(e["Start"]),
            duration_minutes=int(e["DurationMinutes"]),
            expires_at=parse_utc(e["ExpiresAt"]),
        )

    def release_hold(self, hold: SlotHold, cells: list[datetime]) -> None:
        self.release_cells(hold.expert_id, _hold_holder(hold.hold_id), cells)
        self._forget_hold(hold.hold_id)

    def _forget_hold(self, hold_id: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table(SLOT_HOLDS).delete_entity(hold_id, "")

    # --- Graph call-event subscriptions --------------------------------------------------------

    def set_subscription(self, booking_code: str, subscription_id: str) -> None:
        """Remember the appointment's Graph subscription, so cancelling can delete it."""
        self.table(MEETING_SUBSCRIPTIONS).upsert_entity(
            {"PartitionKey": booking_code, "RowKey": "", "SubscriptionId": subscription_id},
            mode=UpdateMode.REPLACE,
        )

    def get_subscription(self, booking_code: str) -> str | None:
        row = self.read(MEETING_SUBSCRIPTIONS, booking_code, "")
        value = row.get("SubscriptionId") if row is not None else None
        return str(value) if value else None
