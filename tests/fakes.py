"""In-memory fakes of the ports, with the real ones' conflict behaviour (ETags raise ``StaleRecord``).

Service-level unit tests run on them in milliseconds; the Azurite tests stay the integration tier.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from appointments.identity import CodeRecord, FailureCounter
from appointments.lookup_throttle import Backoff
from appointments.model import Appointment, Phase
from appointments.ports import AuditEntry, MailMessage, OutboxEntry, StaleRecord


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


class _ETags:
    """ETags as the Table service gives them: a new one on every write; a stale one is refused."""

    def __init__(self) -> None:
        self._n = 0

    def next(self) -> str:
        self._n += 1
        return f'W/"{self._n}"'


@dataclass
class FakeIdentityStore:
    """``IdentityStore`` in memory: codes and counters with ETags; a code and its event commit together."""

    outbox: FakeOutbox
    codes: dict[str, CodeRecord] = field(default_factory=dict)
    counters: dict[str, FailureCounter] = field(default_factory=dict)
    _etags: _ETags = field(default_factory=_ETags)

    def get_code(self, booking_code: str) -> CodeRecord | None:
        return self.codes.get(booking_code)

    def put_code(
        self, record: CodeRecord, event: OutboxEntry | None = None, audit: AuditEntry | None = None
    ) -> None:
        self.codes[record.booking_code] = replace(record, etag=self._etags.next())
        if event is not None:
            self.outbox.add(event)
        if audit is not None:
            self.outbox.trail.append(audit)

    def update_code(
        self, record: CodeRecord, event: OutboxEntry | None = None, audit: AuditEntry | None = None
    ) -> None:
        current = self.codes.get(record.booking_code)
        if current is None or current.etag != record.etag:
            raise StaleRecord("the code changed meanwhile")
        self.put_code(record, event, audit)

    def get_counter(self, key: str) -> FailureCounter:
        return self.counters.get(key) or FailureCounter(key)

    def save_counter(self, counter: FailureCounter) -> None:
        current = self.counters.get(counter.key)
        if (current.etag if current else None) != counter.etag:
            raise StaleRecord("the counter changed meanwhile")
        self.counters[counter.key] = replace(counter, etag=self._etags.next())

    def reset_counter(self, key: str) -> None:
        self.counters.pop(key, None)


@dataclass
class FakeOutbox:
    """``LifecycleOutbox`` in memory, in commit order. ``trail`` receives the audit entries
    committed with an entry (share it with ``FakeAppointments.trail``)."""

    entries: dict[str, list[OutboxEntry]] = field(default_factory=dict)
    trail: list[AuditEntry] = field(default_factory=list)

    def add(self, entry: OutboxEntry, audit: AuditEntry | None = None) -> None:
        mine = self.entries.setdefault(entry.booking_code, [])
        if all(e.entry_id != entry.entry_id for e in mine):
            mine.append(entry)
            if audit is not None:
                self.trail.append(audit)

    def pending(self, booking_code: str) -> list[OutboxEntry]:
        return sorted(self.entries.get(booking_code, []), key=lambda e: e.entry_id)

    def ack(self, booking_code: str, entry_ids: list[str]) -> None:
        self.entries[booking_code] = [
            e for e in self.entries.get(booking_code, []) if e.entry_id not in entry_ids
        ]


@dataclass
class FakeAppointments:
    """The record-keeping part of ``AppointmentRepository`` in memory, with ETags (``StaleRecord``).

    Enough for the use cases that act on an existing appointment (join, verify, end, cancel);
    booking and slots stay with the Azurite integration tests.
    """

    records: dict[str, Appointment] = field(default_factory=dict)
    trail: list[AuditEntry] = field(default_factory=list)
    _etags: _ETags = field(default_factory=_ETags)

    def put(self, a: Appointment) -> Appointment:
        stored = replace(a, etag=self._etags.next())
        self.records[a.booking_code] = stored
        return stored

    def get(self, customer_id: str, booking_code: str) -> Appointment | None:
        a = self.records.get(booking_code)
        return a if a is not None and a.customer_id == customer_id else None

    def get_by_code(self, booking_code: str) -> Appointment | None:
        return self.records.get(booking_code)

    def update(self, appointment: Appointment) -> Appointment:
        current = self.records.get(appointment.booking_code)
        if current is None or current.etag != appointment.etag:
            raise StaleRecord("the appointment changed meanwhile")
        return self.put(appointment)

    def advance_phase(self, appointment: Appointment, phase: Phase, since: datetime) -> bool:
        try:
            self.update(replace(appointment, phase=phase, phase_since=since))
        except StaleRecord:
            return False
        return True

    def release_cells(self, expert_id: str, booking_code: str, cells: list[datetime]) -> None:
        pass

    def audit(self, entry: AuditEntry) -> None:
        self.trail.append(entry)

    def audit_trail(self, booking_code: str) -> list[AuditEntry]:
        return [e for e in self.trail if e.booking_code == booking_code]
