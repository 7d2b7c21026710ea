"""Table Storage adapters, one module per port (ARCHITECTURE.md §4):

- ``store``: the shared client, tables created on first use, and ``if_match``, the one place that
  maps a lost ETag race (412) to ``StaleRecord``;
- ``mappers``: table names and the entity <-> record mappers;
- ``repository``: ``AppointmentRepository``; ``slots``: its slot ledger (cells and holds);
- ``identity``: ``IdentityStore``; ``outbox``: ``LifecycleOutbox``; ``notifications``: the notifier's log.

``TableRepository`` serves them all on one store: what ``bootstrap`` wires by default.
"""

from __future__ import annotations

from typing import Any

from adapters.tables.identity import TableIdentityStore
from adapters.tables.mappers import EXPERT_SLOTS, MEETING_STATE
from adapters.tables.notifications import TableNotificationLog
from adapters.tables.outbox import TableLifecycleOutbox
from adapters.tables.repository import TableAppointmentRepository
from adapters.tables.slots import TableSlotLedger
from adapters.tables.store import TableStore

__all__ = [
    "EXPERT_SLOTS",
    "MEETING_STATE",
    "TableAppointmentRepository",
    "TableIdentityStore",
    "TableLifecycleOutbox",
    "TableNotificationLog",
    "TableRepository",
    "TableSlotLedger",
    "TableStore",
]


class TableRepository(
    TableAppointmentRepository, TableIdentityStore, TableLifecycleOutbox, TableNotificationLog
):
    """Every Table port on one ``TableStore`` (each is also usable alone)."""

    def __init__(self, service: Any) -> None:
        super().__init__(service if isinstance(service, TableStore) else TableStore(service))

    @classmethod
    def from_connection_string(cls, connection_string: str, **client_options: Any) -> TableRepository:
        return cls(TableStore.from_connection_string(connection_string, **client_options))
