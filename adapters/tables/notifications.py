"""What the notifier remembers on Table Storage (``NotificationLog``): how far each notification key
got (``sending`` before the first mail leaves, ``sent`` after the last), and the customer's SMS and
push rows for the bank's own channels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from azure.data.tables import TableTransactionError, UpdateMode

from adapters.tables.mappers import CUSTOMER_OUTBOX, NOTIFICATIONS
from adapters.tables.store import TableAdapter
from appointments.timerules import iso


class TableNotificationLog(TableAdapter):
    def states(self, booking_code: str, key_hashes: Sequence[str]) -> dict[str, str]:
        """How far each of these keys got: one round trip (a point read for one key, a query of the
        booking's partition for more)."""
        if not key_hashes:
            return {}
        if len(key_hashes) == 1:
            marker = self.read(NOTIFICATIONS, booking_code, key_hashes[0])
            rows = [] if marker is None else [marker]
        else:
            names = [f"k{n}" for n in range(len(key_hashes))]
            rows = list(
                self.table(NOTIFICATIONS).query_entities(
                    # Spaced parentheses: the SDK substitutes ``@name`` only in a space-delimited word.
                    "PartitionKey eq @pk and ( " + " or ".join(f"RowKey eq @{name}" for name in names) + " )",
                    parameters={"pk": booking_code, **dict(zip(names, key_hashes, strict=True))},
                    select=["RowKey", "State"],
                )
            )
        return {str(r["RowKey"]): str(r.get("State") or "") for r in rows if r.get("State")}

    def mark_all(
        self, booking_code: str, marks: Sequence[tuple[str, str, str]], state: str, at: datetime
    ) -> None:
        """``(key hash, kind, recipient)`` rows to ``state``: one upsert, or one transaction for more
        (they share the booking's partition)."""
        entities = [
            {
                "PartitionKey": booking_code,
                "RowKey": key_hash,
                "State": state,
                "Kind": kind,
                "Recipient": recipient,
                ("SentAt" if state == "sent" else "SendingAt"): iso(at),
            }
            for key_hash, kind, recipient in marks
        ]
        if len(entities) == 1:
            self.table(NOTIFICATIONS).upsert_entity(entities[0], mode=UpdateMode.REPLACE)
        elif entities:
            self.table(NOTIFICATIONS).submit_transaction(
                [("upsert", entity, {"mode": UpdateMode.REPLACE}) for entity in entities]
            )

    def queue_customer_messages(self, customer_id: str, rows: Mapping[str, dict[str, Any]]) -> bool:
        """The bank's SMS and push rows, inserted in one entity-group transaction (one customer
        partition, one round trip). False if they exist already: an earlier attempt wrote them
        (the transaction is all or nothing, so then all of them), and they are left as the bank's
        senders may have updated them."""
        operations: list[Any] = [
            ("create", {"PartitionKey": customer_id, "RowKey": row_key, **fields})
            for row_key, fields in rows.items()
        ]
        if not operations:
            return True
        try:
            self.table(CUSTOMER_OUTBOX).submit_transaction(operations)
        except TableTransactionError as exc:
            if exc.status_code == 409:  # EntityAlreadyExists
                return False
            raise
        return True
