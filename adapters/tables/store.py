"""The Table Storage client every Table adapter shares: tables created on first use, point reads,
and the one conditional-write helper that maps a lost ETag race (412) to ``StaleRecord``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from appointments.ports import StaleRecord

MAX_BATCH = 100  # the Table service's limit per transaction (Azurite fails opaquely above it)
# The statuses of a conditional write that lost: 412 (If-Match failed), 404 (the row is gone), and
# 409 (an insert found the row there: someone else created it first).
LOST_RACE = frozenset({404, 409, 412})


@contextlib.contextmanager
def if_match(what: str) -> Iterator[None]:
    """Around a conditional write or transaction: a lost race becomes ``StaleRecord``, the same
    everywhere (the SDK raises ResourceModifiedError, ResourceNotFoundError, ResourceExistsError or a
    TableTransactionError carrying the status)."""
    try:
        yield
    except (ResourceModifiedError, ResourceNotFoundError, ResourceExistsError) as exc:
        raise StaleRecord(f"{what} changed meanwhile") from exc
    except (TableTransactionError, HttpResponseError) as exc:
        if exc.status_code in LOST_RACE:
            raise StaleRecord(f"{what} changed meanwhile") from exc
        raise


def etag_options(etag: str | None, mode: UpdateMode = UpdateMode.REPLACE) -> dict[str, Any]:
    """The keyword arguments of an If-Match update (also a transaction operation's options)."""
    return {"mode": mode, "etag": etag, "match_condition": MatchConditions.IfNotModified}


class TableStore:
    """One ``TableServiceClient`` and its table clients; each table is created on first use."""

    def __init__(self, service: TableServiceClient) -> None:
        self._service = service
        self._tables: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_connection_string(cls, connection_string: str, **client_options: Any) -> TableStore:
        """``client_options`` go to the client; the transport is ``table_transport()`` unless given."""
        from adapters.tables.transport import table_transport

        client_options.setdefault("transport", table_transport())
        return cls(TableServiceClient.from_connection_string(connection_string, **client_options))

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

    def read(self, table: str, partition: str, row: str) -> Any | None:
        """A point read; ``None`` when the entity does not exist."""
        try:
            return self.table(table).get_entity(partition, row)
        except ResourceNotFoundError:
            return None

    def update_if_match(
        self,
        table: str,
        entity: dict[str, Any],
        etag: str | None,
        what: str,
        mode: UpdateMode = UpdateMode.REPLACE,
    ) -> dict[str, Any]:
        """Write ``entity`` only if its row still has ``etag``; ``StaleRecord`` otherwise.
        Returns the service's answer (its ``etag`` is the row's new one)."""
        if etag is None:
            raise ValueError(f"updating {what} needs its ETag")
        with if_match(what):
            return dict(self.table(table).update_entity(entity, **etag_options(etag, mode)))


class TableAdapter:
    """Base of the Table adapters: each serves one port on a shared ``TableStore``."""

    def __init__(self, store: TableStore) -> None:
        self.store = store

    def table(self, name: str) -> TableClient:
        return self.store.table(name)

    def read(self, table: str, partition: str, row: str) -> Any | None:
        return self.store.read(table, partition, row)
