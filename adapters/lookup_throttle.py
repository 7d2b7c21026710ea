"""The lookup throttle's counters (``appointments.lookup_throttle.ThrottleStore``) on Table Storage.

One row per counter in ``LookupThrottle`` (PartitionKey = the counter's key, RowKey = ""). A first
attempt *creates* the row, so two first attempts cannot both succeed (409 → StaleRecord); later
ones *replace* it with ``If-Match`` on the ETag read (412 → StaleRecord). The domain retries on
StaleRecord with a fresh read, which is what makes parallel attempts count exactly.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient

from adapters.conditional import create_or_replace
from appointments.lookup_throttle import Backoff
from appointments.timerules import parse_utc

TABLE = "LookupThrottle"


def _time(e: Any, name: str) -> Any:
    return parse_utc(e[name]) if e.get(name) else None


class TableThrottleStore:
    def __init__(self, service: TableServiceClient) -> None:
        self._service = service
        self._client: TableClient | None = None
        self._lock = threading.Lock()

    @property
    def table(self) -> TableClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    with contextlib.suppress(ResourceExistsError):
                        self._service.create_table(TABLE)
                    self._client = self._service.get_table_client(TABLE)
        return self._client

    def get(self, key: str) -> Backoff:
        try:
            e = self.table.get_entity(key, "")
        except ResourceNotFoundError:
            return Backoff(key)
        return Backoff(
            key, int(e["Attempts"]), _time(e, "BlockedUntil"), _time(e, "LastAttempt"), e.metadata["etag"]
        )

    def save(self, counter: Backoff) -> None:
        entity = {
            "PartitionKey": counter.key,
            "RowKey": "",
            "Attempts": counter.attempts,
            "BlockedUntil": counter.blocked_until.isoformat() if counter.blocked_until else "",
            "LastAttempt": counter.last_attempt.isoformat() if counter.last_attempt else "",
        }
        create_or_replace(self.table, entity, counter.etag)

    def reset(self, key: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(key, "")
