"""What the notifier remembers on Table Storage (``NotificationLog``): how far each notification key
got (``sending`` before the first mail leaves, ``sent`` after the last), and the customer's SMS and
push rows for the bank's own channels."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from azure.data.tables import UpdateMode

from adapters.tables.mappers import CUSTOMER_OUTBOX, NOTIFICATIONS
from adapters.tables.store import TableAdapter
from appointments.timerules import iso


class TableNotificationLog(TableAdapter):
    def state(self, booking_code: str, key_hash: str) -> str | None:
        marker = self.read(NOTIFICATIONS, booking_code, key_hash)
        return None if marker is None else str(marker.get("State") or "") or None

    def mark(
        self, booking_code: str, key_hash: str, state: str, kind: str, recipient: str, at: datetime
    ) -> None:
        self.table(NOTIFICATIONS).upsert_entity(
            {
                "PartitionKey": booking_code,
                "RowKey": key_hash,
                "State": state,
                "Kind": kind,
                "Recipient": recipient,
                ("SentAt" if state == "sent" else "SendingAt"): iso(at),
            },
            mode=UpdateMode.REPLACE,
        )

    def queue_customer_messages(self, customer_id: str, rows: Mapping[str, dict[str, Any]]) -> None:
        """The bank's SMS and push rows in one entity-group transaction (one customer partition, one
        round trip); the row keys make a retry overwrite, not add."""
        operations: list[Any] = [
            (
                "upsert",
                {"PartitionKey": customer_id, "RowKey": row_key, **fields},
                {"mode": UpdateMode.REPLACE},
            )
            for row_key, fields in rows.items()
        ]
        if operations:
            self.table(CUSTOMER_OUTBOX).submit_transaction(operations)
