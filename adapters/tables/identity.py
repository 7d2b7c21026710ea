"""Identification codes and failure counters on Table Storage (``IdentityStore``, ARCHITECTURE.md §7).

A code lives in the ``MeetingState`` partition of its booking, beside the lifecycle outbox, so that
a code write and the event announcing it commit in one entity-group transaction.
"""

from __future__ import annotations

import contextlib
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from adapters.conditional import create_or_replace
from adapters.tables.mappers import (
    CODE_ROW,
    FAILURES,
    MEETING_STATE,
    audit_entity,
    code_entity,
    code_from,
    counter_entity,
    counter_from,
    event_entity,
)
from adapters.tables.store import TableAdapter, etag_options, if_match
from appointments.identity import CodeRecord, FailureCounter
from appointments.ports import AuditEntry, OutboxEntry


class TableIdentityStore(TableAdapter):
    def get_code(self, booking_code: str) -> CodeRecord | None:
        e = self.read(MEETING_STATE, booking_code, CODE_ROW)
        return None if e is None else code_from(e)

    def _commit(self, code_op: tuple[Any, ...], event: OutboxEntry | None, audit: AuditEntry | None) -> None:
        """The code, its event and its audit row share the booking's partition: one transaction."""
        ops = [code_op] + ([("create", event_entity(event))] if event is not None else [])
        ops += [("create", audit_entity(audit))] if audit is not None else []
        with if_match("the code"):
            self.table(MEETING_STATE).submit_transaction(ops)

    def put_code(
        self, record: CodeRecord, event: OutboxEntry | None = None, audit: AuditEntry | None = None
    ) -> None:
        """A new code replaces the earlier one, attempts and all."""
        self._commit(("upsert", code_entity(record), {"mode": UpdateMode.REPLACE}), event, audit)

    def update_code(
        self, record: CodeRecord, event: OutboxEntry | None = None, audit: AuditEntry | None = None
    ) -> None:
        """Write an attempt's result only if nobody else wrote since we read (If-Match)."""
        self._commit(("update", code_entity(record), etag_options(record.etag)), event, audit)

    def get_counter(self, key: str) -> FailureCounter:
        e = self.read(FAILURES, key, "")
        return FailureCounter(key) if e is None else counter_from(key, e)

    def save_counter(self, counter: FailureCounter) -> None:
        """Create the counter, or replace it If-Match; a lost race is ``StaleRecord``."""
        create_or_replace(self.table(FAILURES), counter_entity(counter), counter.etag)

    def reset_counter(self, key: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table(FAILURES).delete_entity(key, "")
