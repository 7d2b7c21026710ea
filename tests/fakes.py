"""In-memory stand-ins that record what they received (narrow unit tests only)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from appointments.lookup_throttle import Backoff
from appointments.ports import MailMessage, StaleRecord


@dataclass
class FakeClock:
    current: datetime = field(default_factory=lambda: datetime(2026, 12, 1, 8, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, **kw: float) -> None:
        self.current += timedelta(**kw)


@dataclass
class RecordingMailer:
    sent: list[MailMessage] = field(default_factory=list)

    async def send(self, message: MailMessage) -> None:
        self.sent.append(message)

    async def was_sent(self, message: MailMessage) -> bool:
        return bool(message.internet_message_id) and any(
            m.internet_message_id == message.internet_message_id for m in self.sent
        )


class FakeThrottleStore:
    """``ThrottleStore`` in memory with the Table store's conflict rules: create fails if the row
    exists, replace fails unless the ETag still matches (both StaleRecord). Thread-safe, so
    parallel tests race on it as they would on the Table service."""

    def __init__(self) -> None:
        import threading

        self.rows: dict[str, Backoff] = {}
        self.writes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Backoff:
        with self._lock:
            return self.rows.get(key) or Backoff(key)

    def save(self, counter: Backoff) -> None:
        with self._lock:
            current = self.rows.get(counter.key)
            if (current.etag if current else None) != counter.etag:
                raise StaleRecord(counter.key)
            self.writes += 1
            self.rows[counter.key] = replace(counter, etag=f"W/{self.writes}")

    def reset(self, key: str) -> None:
        with self._lock:
            self.rows.pop(key, None)
