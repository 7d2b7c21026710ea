"""Appointments on Table Storage (``AppointmentRepository``, ARCHITECTURE.md §4).

Every write is idempotent, so an activity or a client may retry it:
- records are replaced only with ``If-Match`` on their ETag where races are possible;
- an Idempotency-Key row is written before anything else, so a crashed booking resumes
  with the same booking code instead of making a second one;
- the expert's cells are claimed through the slot ledger before the record is written.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import UpdateMode

from adapters.tables.mappers import (
    APPOINTMENTS,
    AUDIT,
    BOOKING_CODES,
    EXPERT_SLOTS,
    EXPERTS,
    EXPERTS_PARTITION,
    IDEMPOTENCY,
    MEETING_SUBSCRIPTIONS,
    appointment_entity,
    appointment_from,
    audit_from,
    expert_entity,
    expert_from,
)
from adapters.tables.slots import TableSlotLedger
from adapters.tables.store import TableAdapter, TableStore
from appointments.model import Appointment, Expert, Phase, require_object_id
from appointments.ports import AuditEntry, IdempotencyMismatch, SlotHold, SlotTaken, StaleRecord
from appointments.timerules import iso


class TableAppointmentRepository(TableAdapter):
    """Records, the booking-code index, idempotency keys, experts, audit, subscriptions; the slot
    methods of the port are the ledger's."""

    def __init__(self, store: TableStore, slots: TableSlotLedger | None = None) -> None:
        super().__init__(store)
        self.slots = slots or TableSlotLedger(store)

    # --- reads -------------------------------------------------------------------------------

    def get(self, customer_id: str, booking_code: str) -> Appointment | None:
        row = self.read(APPOINTMENTS, customer_id, booking_code)
        return None if row is None else appointment_from(row)

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
        return sorted((appointment_from(r) for r in rows), key=lambda a: a.start)

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
        return sorted((appointment_from(r) for r in rows), key=lambda a: a.start)

    def find_by_idempotency_key(self, customer_id: str, key: str) -> tuple[str, str] | None:
        row = self.read(IDEMPOTENCY, customer_id, key)
        if row is None:
            return None
        return str(row["BookingCode"]), str(row["Fingerprint"])

    # --- writes -------------------------------------------------------------------------------

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
            self.slots.claim(a.expert_id, a.booking_code, cells, now=now, hold_id=hold_id)
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
            self.table(APPOINTMENTS).create_entity(appointment_entity(a))
        if hold_id is not None:
            self.slots.forget_hold(hold_id)  # its cells are the booking's now
        stored = self.get(a.customer_id, a.booking_code)
        assert stored is not None
        return stored

    def update(self, appointment: Appointment) -> Appointment:
        self.store.update_if_match(
            APPOINTMENTS, appointment_entity(appointment), appointment.etag, "the appointment"
        )
        stored = self.get(appointment.customer_id, appointment.booking_code)
        assert stored is not None
        return stored

    def move(
        self, appointment: Appointment, new: Appointment, old_cells: list[datetime], new_cells: list[datetime]
    ) -> Appointment:
        self.slots.claim(new.expert_id, new.booking_code, new_cells)
        try:
            stored = self.update(new.with_changes(etag=appointment.etag))
        except StaleRecord:
            keep = set(old_cells) if new.expert_id == appointment.expert_id else set()
            self.slots.release_cells(new.expert_id, new.booking_code, [c for c in new_cells if c not in keep])
            raise
        if new.expert_id != appointment.expert_id:
            self.table(BOOKING_CODES).update_entity(
                {"PartitionKey": new.booking_code, "RowKey": "", "ExpertId": new.expert_id},
                mode=UpdateMode.MERGE,
            )
            self.slots.release_cells(appointment.expert_id, appointment.booking_code, old_cells)
        else:
            keep = set(new_cells)
            self.slots.release_cells(
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
            fields = {"Phase": phase.value, "PhaseSince": iso(since), "Attention": attention or ""}
            try:
                self._merge_if_match(current, fields)
                return
            except StaleRecord:
                continue
        raise StaleRecord(f"could not record phase {phase} for {booking_code}")

    def advance_phase(self, appointment: Appointment, phase: Phase, since: datetime) -> bool:
        """Compare-and-set on the ETag the caller read: a phase the orchestration recorded since wins."""
        try:
            self._merge_if_match(appointment, {"Phase": phase.value, "PhaseSince": iso(since)})
        except StaleRecord:
            return False
        return True

    def _merge_if_match(self, current: Appointment, fields: dict[str, Any]) -> None:
        entity = {"PartitionKey": current.customer_id, "RowKey": current.booking_code, **fields}
        self.store.update_if_match(APPOINTMENTS, entity, current.etag, "the appointment", UpdateMode.MERGE)

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
        return [audit_from(booking_code, r) for r in rows]

    # --- experts ------------------------------------------------------------------------------

    def list_experts(self) -> list[Expert]:
        rows = self.table(EXPERTS).query_entities("PartitionKey eq @pk", parameters={"pk": EXPERTS_PARTITION})
        return sorted((expert_from(r) for r in rows), key=lambda x: x.display_name)

    def get_expert(self, expert_id: str) -> Expert | None:
        row = self.read(EXPERTS, EXPERTS_PARTITION, expert_id)
        return None if row is None else expert_from(row)

    def put_expert(self, expert: Expert) -> None:
        require_object_id(expert.expert_id)
        self.table(EXPERTS).upsert_entity(expert_entity(expert), mode=UpdateMode.REPLACE)

    # --- Graph call-event subscriptions -------------------------------------------------------

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

    # --- the expert's time (the slot ledger) ---------------------------------------------------

    def release_cells(self, expert_id: str, booking_code: str, cells: list[datetime]) -> None:
        self.slots.release_cells(expert_id, booking_code, cells)

    def taken_cells(self, expert_id: str, start: datetime, end: datetime, now: datetime) -> set[datetime]:
        return self.slots.taken_cells(expert_id, start, end, now)

    def hold(self, hold: SlotHold, cells: list[datetime], *, now: datetime) -> None:
        self.slots.hold(hold, cells, now=now)

    def get_hold(self, hold_id: str) -> SlotHold | None:
        return self.slots.get_hold(hold_id)

    def release_hold(self, hold: SlotHold, cells: list[datetime]) -> None:
        self.slots.release_hold(hold, cells)
