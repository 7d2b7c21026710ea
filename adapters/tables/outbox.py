"""The lifecycle outbox on Table Storage (``LifecycleOutbox``, ARCHITECTURE.md §3).

Rows ``event-<id>`` in the booking's ``MeetingState`` partition; ids sort in commit order.
"""

from __future__ import annotations

import contextlib

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableTransactionError

from adapters.tables.mappers import EVENT_ROW_PREFIX, MEETING_STATE, audit_entity, event_entity, event_from
from adapters.tables.store import TableAdapter
from appointments.ports import AuditEntry, OutboxEntry


class TableLifecycleOutbox(TableAdapter):
    def add(self, entry: OutboxEntry, audit: AuditEntry | None = None) -> None:
        """One round trip: the audit row shares the entry's partition, so both go in one
        transaction. An entry that exists already is the same entry again (ids are unique):
        then neither is written twice."""
        if audit is None:
            with contextlib.suppress(ResourceExistsError):
                self.table(MEETING_STATE).create_entity(event_entity(entry))
            return
        assert audit.booking_code == entry.booking_code, "one partition, one transaction"
        try:
            self.table(MEETING_STATE).submit_transaction(
                [("create", event_entity(entry)), ("create", audit_entity(audit))]
            )
        except TableTransactionError as exc:
            if exc.status_code != 409:
                raise

    def pending(self, booking_code: str) -> list[OutboxEntry]:
        rows = self.table(MEETING_STATE).query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
            parameters={"pk": booking_code, "lo": EVENT_ROW_PREFIX, "hi": EVENT_ROW_PREFIX[:-1] + "."},
        )
        return sorted((event_from(r) for r in rows), key=lambda e: e.entry_id)

    def ack(self, booking_code: str, entry_ids: list[str]) -> None:
        table = self.table(MEETING_STATE)
        for entry_id in entry_ids:
            with contextlib.suppress(ResourceNotFoundError):
                table.delete_entity(booking_code, EVENT_ROW_PREFIX + entry_id)
