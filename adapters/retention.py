"""The retention sweeps' side of Table Storage and of the Durable client (appointments/retention.py).

Each write here is idempotent, so a run that crashed half-way is finished by the next one:
erasing writes the erased record before it deletes the original, which is what the next
run's query selects on; deletes of rows that are already gone count as done.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from adapters.tables import TableRepository
from adapters.tables.mappers import (
    APPOINTMENTS,
    AUDIT,
    BOOKING_CODES,
    CODE_ROW,
    CUSTOMER_OUTBOX,
    EXPERT_SLOTS,
    FAILURES,
    HOLD_EXPIRES,
    IDEMPOTENCY,
    MEETING_STATE,
    SLOT_HOLDS,
)
from adapters.tables.store import MAX_BATCH
from appointments.availability import hold_key
from appointments.model import Appointment, Phase
from appointments.retention import ERASED_PARTITION
from appointments.timerules import iso, parse_utc

OUTBOX = CUSTOMER_OUTBOX  # the notifier's SMS and push rows for the bank's own channels


def counter_tables() -> tuple[str, ...]:
    """Verification failures per customer, and the lookup throttle per caller address and code.
    (adapters.lookup_throttle is imported here: at module level it closes an import cycle.)"""
    from adapters.lookup_throttle import TABLE as THROTTLE

    return (FAILURES, THROTTLE)


# What identifies or describes the customer on an Appointments row. Blanked, not dropped:
# the repository reads Phone as a required property.
PERSONAL_PROPERTIES = {"Phone": "", "Email": "", "ExtraInfo": "", "JoinUrl": ""}
HOLD_PREFIX = hold_key("")


class TableRetentionStore:
    """``RetentionStore`` on the app's tables (the same account and tables as ``TableRepository``)."""

    def __init__(self, repo: TableRepository, *, buffer_minutes: int = 0) -> None:
        self.repo = repo
        self.buffer = timedelta(minutes=buffer_minutes)

    # --- personal data --------------------------------------------------------------------

    def appointments_started_before(self, cutoff: datetime) -> Iterator[Appointment]:
        rows = self.repo.table(APPOINTMENTS).query_entities(
            "PartitionKey ne @erased and Start lt @cutoff",
            parameters={"erased": ERASED_PARTITION, "cutoff": iso(cutoff)},
            select=["PartitionKey", "RowKey"],
        )
        for row in rows:
            a = self.repo.get(row["PartitionKey"], row["RowKey"])
            if a is not None:
                yield a

    def erase(self, a: Appointment) -> dict[str, int]:
        code, customer = a.booking_code, a.customer_id
        counts: dict[str, int] = {}
        table = self.repo.table(APPOINTMENTS)
        row = self.repo.read(APPOINTMENTS, customer, code)
        if row is not None:
            kept = {k: v for k, v in row.items() if k not in ("PartitionKey", "RowKey")}
            kept.update(PERSONAL_PROPERTIES, PartitionKey=ERASED_PARTITION, RowKey=code)
            with contextlib.suppress(ResourceExistsError):  # an earlier run got this far
                table.create_entity(kept)
        # The code index now leads to the erased record, and forgets the phone number's HMAC.
        self.repo.table(BOOKING_CODES).upsert_entity(
            # An empty PhoneHmac matches no phone: a lookup by code and phone answers 404.
            {
                "PartitionKey": code,
                "RowKey": "",
                "CustomerId": ERASED_PARTITION,
                "PhoneHmac": "",
                "ExpertId": a.expert_id,
            },
            mode=UpdateMode.REPLACE,
        )
        by_code = "PartitionKey eq @pk and BookingCode eq @code"
        for name in (OUTBOX, IDEMPOTENCY):
            keys = self._keys(name, by_code, {"pk": customer, "code": code})
            counts[name] = self._delete_rows(name, customer, keys)
        # The identification code's hash lives in the appointment's MeetingState partition.
        counts["IdentityCodes"] = self._delete_rows(MEETING_STATE, code, [CODE_ROW])
        if row is not None:
            with contextlib.suppress(ResourceNotFoundError):
                table.delete_entity(customer, code)
        counts[APPOINTMENTS] = 1
        return counts

    def counters_untouched_since(self, cutoff: datetime) -> Iterator[tuple[str, str, str]]:
        for table in counter_tables():
            rows = self.repo.table(table).query_entities(
                "Timestamp lt @cutoff", parameters={"cutoff": cutoff}, select=["PartitionKey", "RowKey"]
            )
            for row in rows:
                yield table, str(row["PartitionKey"]), str(row["RowKey"])

    def delete_counter(self, table: str, partition: str, row: str) -> bool:
        return self._delete_rows(table, partition, [row]) == 1

    # --- audit ----------------------------------------------------------------------------

    def audit_partitions_before(self, cutoff: datetime) -> Iterator[tuple[str, list[str]]]:
        grouped: dict[str, list[str]] = defaultdict(list)
        rows = self.repo.table(AUDIT).query_entities(
            "At lt @cutoff", parameters={"cutoff": iso(cutoff)}, select=["PartitionKey", "RowKey"]
        )
        for row in rows:
            grouped[row["PartitionKey"]].append(row["RowKey"])
        yield from grouped.items()

    def delete_audit(self, booking_code: str, row_keys: list[str]) -> int:
        return self._delete_rows(AUDIT, booking_code, row_keys)

    # --- slots ----------------------------------------------------------------------------

    def expired_holds(self, now: datetime) -> Iterator[str]:
        rows = self.repo.table(SLOT_HOLDS).query_entities(
            "ExpiresAt le @now", parameters={"now": iso(now)}, select=["PartitionKey"]
        )
        for row in rows:
            yield row["PartitionKey"]

    def release_hold(self, hold_id: str) -> int:
        hold = self.repo.get_hold(hold_id)
        if hold is None:
            return 0
        cells = self.repo.table(EXPERT_SLOTS).query_entities(
            "PartitionKey eq @pk and BookingCode eq @holder",
            parameters={"pk": hold.expert_id, "holder": hold_key(hold_id)},
            select=["RowKey"],
        )
        mine = [parse_utc(c["RowKey"]) for c in cells]
        self.repo.release_hold(hold, mine)  # frees only cells it still has, then forgets it
        return len(mine)

    def orphaned_cells(self, now: datetime, grace: timedelta) -> Iterator[tuple[str, str, str]]:
        written_before = datetime.now(UTC) - grace  # the race is in real time, not virtual time
        records: dict[str, Appointment | None] = {}
        for cell in self.repo.table(EXPERT_SLOTS).list_entities():
            holder = str(cell.get("BookingCode", ""))
            if holder.startswith(HOLD_PREFIX):
                expires = cell.get(HOLD_EXPIRES)
                orphan = bool(expires) and parse_utc(str(expires)) <= now
            else:
                if holder not in records:
                    records[holder] = self.repo.get_by_code(holder) if holder else None
                orphan = self._not_claimed_by(records[holder], cell, written_before)
            if orphan:
                yield str(cell["PartitionKey"]), str(cell["RowKey"]), str(cell.metadata["etag"])

    def _not_claimed_by(self, a: Appointment | None, cell: Any, written_before: datetime) -> bool:
        if a is None:
            written = cell.metadata.get("timestamp")
            return written is not None and written <= written_before
        if a.phase is Phase.CANCELLED or a.expert_id != cell["PartitionKey"]:
            return True
        # A reschedule claims the new cells, then releases the old ones; a crash in between
        # leaves cells outside the booking's time.
        at = parse_utc(cell["RowKey"])
        return not (a.start <= at < a.end + self.buffer)

    def delete_cell(self, expert_id: str, cell_key: str, etag: str) -> bool:
        try:
            self.repo.table(EXPERT_SLOTS).delete_entity(
                expert_id, cell_key, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    # --- helpers --------------------------------------------------------------------------

    def _keys(self, table: str, query: str, parameters: dict[str, str]) -> list[str]:
        rows = self.repo.table(table).query_entities(query, parameters=parameters, select=["RowKey"])
        return [r["RowKey"] for r in rows]

    def _delete_rows(self, table: str, partition: str, row_keys: list[str]) -> int:
        """Delete in transactions of at most 100; a batch that fails (a row already gone) is
        done row by row, where a missing row counts as deleted."""
        client = self.repo.table(table)
        deleted = 0
        for i in range(0, len(row_keys), MAX_BATCH):
            chunk = row_keys[i : i + MAX_BATCH]
            try:
                client.submit_transaction(
                    [("delete", {"PartitionKey": partition, "RowKey": k}) for k in chunk]
                )
                deleted += len(chunk)
                continue
            except TableTransactionError:
                pass
            for key in chunk:
                try:
                    client.delete_entity(partition, key)
                    deleted += 1
                except ResourceNotFoundError:
                    continue
        return deleted


@dataclass(frozen=True)
class FinishedInstance:
    instance_id: str
    last_updated: datetime


class DurableClientHistory:
    """``DurableHistory`` through the durable client binding (the management API underneath)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def finished_before(self, cutoff: datetime) -> list[FinishedInstance]:
        import azure.durable_functions as df

        done = [
            df.OrchestrationRuntimeStatus.Completed,
            df.OrchestrationRuntimeStatus.Failed,
            df.OrchestrationRuntimeStatus.Terminated,
        ]
        # Finished before the cutoff implies created before it: the server-side filter. The SDK
        # reads one page of the management API's answer (it ignores x-ms-continuation-token);
        # what the page left out is found by the next run, as with the sweep's own limit.
        statuses = await self.client.get_status_by(created_time_to=cutoff, runtime_status=done)
        return [
            FinishedInstance(s.instance_id, s.last_updated_time.astimezone(UTC))
            for s in statuses
            if s.instance_id and s.last_updated_time is not None
        ]

    async def purge(self, instance_id: str) -> bool:
        result = await self.client.purge_instance_history(instance_id)
        return bool(result.instances_deleted)
