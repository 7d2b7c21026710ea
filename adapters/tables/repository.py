"""Appointments on Table Storage (``AppointmentRepository``, ARCHITECTURE.md §4).

Every write is idempotent, so an activity or a client may retry it:
- records are replaced only with ``If-Match`` on their ETag where races are possible;
- a booking made with an Idempotency-Key has the key's own booking code
  (``codes.booking_code_for_key``), so a crashed booking resumes with the same code;
- the expert's cells are claimed through the slot ledger before anything else is written.

A booking is three round trips, one per partition it must write (an entity-group transaction
spans one partition of one table): the expert's cells (``ExpertSlots``, one transaction), the
booking's own partition of ``MeetingState`` (the code index and the audit entry ``booked``, one
transaction; the index row is also the Idempotency-Key's record: the request's fingerprint),
and the record (``Appointments``, partition = customer, so that the customer's list is one
query). In that order: until the record exists nothing is visible (a code index without a
record answers like an unknown code, and orphaned cells are swept by retention); once it
exists everything it needs is there.

Where a booking code's record lives (its customer) never changes but for retention's erasure,
which moves it to ``ERASED_PARTITION``: ``get_by_code`` remembers it (a bounded LRU of what
storage confirmed), so every later lookup of that code in this process is one point read, not
two. A remembered location that no longer holds the record is forgotten and read again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from adapters.tables.mappers import (
    APPOINTMENTS,
    AUDIT,
    AUDIT_ROW_PREFIX,
    BOOKING_CODES,
    EXPERT_SLOTS,
    EXPERTS,
    EXPERTS_PARTITION,
    INDEX_ROW,
    MEETING_SUBSCRIPTIONS,
    appointment_entity,
    appointment_from,
    audit_entity,
    audit_from,
    expert_entity,
    expert_from,
)
from adapters.tables.slots import TableSlotLedger
from adapters.tables.store import TableAdapter, TableStore
from appointments.model import Appointment, Expert, Phase, require_object_id
from appointments.ports import (
    AuditEntry,
    CodeTaken,
    Created,
    IdempotencyMismatch,
    SlotHold,
    StaleRecord,
)
from appointments.timerules import iso

LOCATIONS_CACHED = 50_000  # booking code -> customer id, ~150 bytes each: a few MB at most


class Locations:
    """A bounded, thread-safe LRU of booking code -> the partition (customer id) of its record."""

    def __init__(self, size: int = LOCATIONS_CACHED) -> None:
        self._size = size
        self._items: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, code: str) -> str | None:
        with self._lock:
            found = self._items.get(code)
            if found is not None:
                self._items.move_to_end(code)
            return found

    def put(self, code: str, customer_id: str) -> None:
        with self._lock:
            self._items[code] = customer_id
            self._items.move_to_end(code)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def forget(self, code: str) -> None:
        with self._lock:
            self._items.pop(code, None)


def appointment_from_written(entity: dict[str, Any], answer: Any) -> Appointment:
    """The record an insert or a REPLACE stored (exactly ``entity``), with the answer's ETag."""
    return appointment_from(entity).with_changes(etag=(answer or {}).get("etag"))


class TableAppointmentRepository(TableAdapter):
    """Records, the booking-code index, idempotency keys, experts, audit, subscriptions; the slot
    methods of the port are the ledger's."""

    def __init__(self, store: TableStore, slots: TableSlotLedger | None = None) -> None:
        super().__init__(store)
        self.slots = slots or TableSlotLedger(store)
        self.locations = Locations()

    # --- reads -------------------------------------------------------------------------------

    def get(self, customer_id: str, booking_code: str) -> Appointment | None:
        row = self.read(APPOINTMENTS, customer_id, booking_code)
        return None if row is None else appointment_from(row)

    def _code_row(self, booking_code: str) -> Any | None:
        return self.read(BOOKING_CODES, booking_code, INDEX_ROW)

    def get_by_code(self, booking_code: str) -> Appointment | None:
        """One point read when this process has seen the code; the index and the record otherwise."""
        cached = self.locations.get(booking_code)
        if cached is not None:
            found = self.get(cached, booking_code)
            if found is not None:
                return found
            self.locations.forget(booking_code)  # moved (erased) or gone: ask the index
        row = self._code_row(booking_code)
        found = None if row is None else self.get(row["CustomerId"], booking_code)
        if found is not None:  # only what storage confirmed
            self.locations.put(booking_code, found.customer_id)
        return found

    def phone_hmac(self, booking_code: str) -> str | None:
        row = self._code_row(booking_code)
        return None if row is None else str(row["PhoneHmac"])

    def idempotency_fingerprint(self, customer_id: str, booking_code: str) -> str | None:
        row = self._code_row(booking_code)
        if row is None or row.get("CustomerId") != customer_id or not row.get("Fingerprint"):
            return None
        return str(row["Fingerprint"])

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
    ) -> Created:
        a = appointment
        keyed = idempotency_key is not None
        claimed = self.slots.claim(a.expert_id, a.booking_code, cells, now=now, hold_id=hold_id)
        index = {
            "PartitionKey": a.booking_code,
            "RowKey": INDEX_ROW,
            "CustomerId": a.customer_id,
            "PhoneHmac": phone_hmac,
            "ExpertId": a.expert_id,
            "Fingerprint": fingerprint if keyed else "",
        }
        booked = AuditEntry(
            a.booking_code,
            a.created_at or now or datetime.now(UTC),
            "customer",
            "booked",
            f"{a.channel.value} {iso(a.start)} {a.duration_minutes} min",
        )
        try:
            self.table(BOOKING_CODES).submit_transaction(
                [("create", index), ("create", audit_entity(booked))]
            )
        except TableTransactionError as exc:
            if exc.status_code != 409:
                raise
            earlier = self._earlier(a, keyed, fingerprint, claimed)
            if earlier is not None:
                return earlier
        entity = appointment_entity(a)
        try:
            written = self.table(APPOINTMENTS).create_entity(entity)
        except ResourceExistsError:  # a parallel retry of this very booking got here first
            existing = self.get(a.customer_id, a.booking_code)
            assert existing is not None
            return Created(existing, created=False)
        self.locations.put(a.booking_code, a.customer_id)
        if hold_id is not None:
            self.slots.forget_hold(hold_id)  # its cells are the booking's now
        # The record as written, with the ETag from the insert's answer: no read back.
        return Created(appointment_from_written(entity, written), created=True)

    def _earlier(
        self, a: Appointment, keyed: bool, fingerprint: str, claimed: list[datetime]
    ) -> Created | None:
        """The code index exists. Ours (a keyed retry): the earlier booking, or ``None`` to finish
        one that crashed before its record. Anyone else's: give back the cells, and refuse."""
        row = self._code_row(a.booking_code)
        mine = row is not None and row.get("CustomerId") == a.customer_id
        if not (keyed and mine):
            self.slots.release_cells(a.expert_id, a.booking_code, claimed)
            raise CodeTaken(a.booking_code)
        assert row is not None
        if row.get("Fingerprint") != fingerprint:
            self.slots.release_cells(a.expert_id, a.booking_code, claimed)
            raise IdempotencyMismatch("Idempotency-Key was used for a different request")
        existing = self.get(a.customer_id, a.booking_code)
        if existing is not None:
            # Cells this retry took are not the booking's (it was cancelled, or another expert
            # was free first this time): give them back.
            self.slots.release_cells(a.expert_id, a.booking_code, claimed)
            return Created(existing, created=False)
        if row.get("ExpertId") != a.expert_id:  # the retry found another expert free
            self.table(BOOKING_CODES).update_entity(
                {"PartitionKey": a.booking_code, "RowKey": INDEX_ROW, "ExpertId": a.expert_id},
                mode=UpdateMode.MERGE,
            )
        return None

    def update(self, appointment: Appointment) -> Appointment:
        entity = appointment_entity(appointment)
        written = self.store.update_if_match(APPOINTMENTS, entity, appointment.etag, "the appointment")
        # A REPLACE stores exactly ``entity``: the record is that, with the answer's new ETag.
        return appointment_from_written(entity, written)

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
                {"PartitionKey": new.booking_code, "RowKey": INDEX_ROW, "ExpertId": new.expert_id},
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
        cached = self.locations.get(booking_code)
        if cached is not None:
            try:
                self.table(APPOINTMENTS).update_entity(
                    {"PartitionKey": cached, "RowKey": booking_code, **fields}, mode=UpdateMode.MERGE
                )
                return
            except ResourceNotFoundError:
                self.locations.forget(booking_code)  # moved (erased): ask the index
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
        current: Appointment | None = None,
    ) -> Appointment:
        """Record the orchestration's phase. Idempotent; a terminal phase is never overwritten
        by a non-terminal one, and a stale revision never overwrites a newer one. ``current`` (the
        record as the caller just read it) saves the first read: the write is conditional on its
        ETag, so a record changed since is read again. Returns the record as it now stands."""
        for _ in range(5):
            if current is None:
                current = self.get_by_code(booking_code)
            if current is None:
                raise KeyError(booking_code)
            if current.phase.is_terminal and not phase.is_terminal:
                return current
            if revision is not None and revision < current.revision:
                return current
            if current.phase is phase and current.attention == attention:
                return current
            fields = {"Phase": phase.value, "PhaseSince": iso(since), "Attention": attention or ""}
            try:
                answer = self._merge_if_match(current, fields)
            except StaleRecord:
                current = None
                continue
            return current.with_changes(
                phase=phase, phase_since=since, attention=attention or None, etag=answer.get("etag")
            )
        raise StaleRecord(f"could not record phase {phase} for {booking_code}")

    def advance_phase(self, appointment: Appointment, phase: Phase, since: datetime) -> bool:
        """Compare-and-set on the ETag the caller read: a phase the orchestration recorded since wins."""
        try:
            self._merge_if_match(appointment, {"Phase": phase.value, "PhaseSince": iso(since)})
        except StaleRecord:
            return False
        return True

    def _merge_if_match(self, current: Appointment, fields: dict[str, Any]) -> dict[str, Any]:
        entity = {"PartitionKey": current.customer_id, "RowKey": current.booking_code, **fields}
        return self.store.update_if_match(
            APPOINTMENTS, entity, current.etag, "the appointment", UpdateMode.MERGE
        )

    def set_meeting(self, booking_code: str, meeting_id: str, join_url: str) -> None:
        self._merge(booking_code, {"MeetingId": meeting_id, "JoinUrl": join_url})

    def audit(self, entry: AuditEntry) -> None:
        self.table(AUDIT).create_entity(audit_entity(entry))

    def audit_trail(self, booking_code: str) -> list[AuditEntry]:
        rows = self.table(AUDIT).query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
            parameters={"pk": booking_code, "lo": AUDIT_ROW_PREFIX, "hi": AUDIT_ROW_PREFIX[:-1] + "."},
        )
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
