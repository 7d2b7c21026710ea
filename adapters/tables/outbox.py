"""The lifecycle outbox on Table Storage (``LifecycleOutbox``, ARCHITECTURE.md §3).

Rows ``event-<id>`` in the booking's ``MeetingState`` partition; ids sort in commit order.
"""

from __future__ import annotations

import contextlib

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from adapters.tables.mappers import EVENT_ROW_PREFIX, MEETING_STATE, event_entity, event_from
from adapters.tables.store import TableAdapter
from appointments.ports import OutboxEntry


class TableLifecycleOutbox(TableAdapter):
    def add(self, entry: OutboxEntry) -> None:
        with contextlib.suppress(ResourceExistsError):  # the same entry again
            self.table(MEETING_STATE).create_entity(event_entity(entry))

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
