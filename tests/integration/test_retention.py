"""Retention sweeps against a real Azurite and a real devhost: what policy keeps, and only that.

The sweeps run on a virtual clock (``now`` moved days and years ahead), through the same
use-case functions the timer triggers call. They scan whole tables, so each test has an
Azurite of its own: sweeping the session's shared one would erase other tests' bookings.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from adapters.notifier import Notifier
from adapters.retention import OUTBOX, TableRetentionStore
from adapters.tables import TableRepository
from adapters.tables.mappers import APPOINTMENTS, BOOKING_CODES, EXPERT_SLOTS, INDEX_ROW, MEETING_STATE
from appointments.availability import HoldService
from appointments.errors import NotFound
from appointments.identity import FailureCounter
from appointments.lookup_throttle import Backoff
from appointments.model import Expert, Phase, WorkingHours
from appointments.ports import AuditEntry
from appointments.retention import (
    ERASED_PARTITION,
    RetentionPolicy,
    erase_personal_data,
    expire_audit,
    sweep_slots,
)
from appointments.service import AppointmentService
from appointments.settings import Settings
from appointments.timerules import iso
from devhost import azurite
from tests.fakes import FakeClock, RecordingMailer

START = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)  # a Tuesday, 12.00 in Helsinki
PHONE, EMAIL, NOTE = "+358401234567", "matti.meikalainen@example.fi", "Matti Meikäläinen, asuntolaina"
POLICY = RetentionPolicy(durable_days=30, personal_data_days=90, audit_years=6)


@pytest.fixture
def own_storage() -> Iterator[str]:
    server = azurite.start()
    try:
        yield server.connection_string
    finally:
        server.stop()


@pytest.fixture
def repo(own_storage: str) -> TableRepository:
    return TableRepository.from_connection_string(own_storage)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()  # 2026-12-01 08:00Z


@pytest.fixture
def settings(own_storage: str) -> Settings:
    return Settings.from_env({"DEV_MODE": "true", "AzureWebJobsStorage": own_storage})


@pytest.fixture
def service(repo: TableRepository, clock: FakeClock, settings: Settings) -> AppointmentService:
    return AppointmentService(repo, clock, settings)


@pytest.fixture
def store(repo: TableRepository) -> TableRetentionStore:
    return TableRetentionStore(repo)


@pytest.fixture
def expert(repo: TableRepository) -> Expert:
    x = Expert(
        expert_id=str(uuid.uuid4()),
        display_name="Maija Suomalainen",
        email="maija@pankki.example",
        topics=("loans.home-loan",),
        languages=("fi",),
        working_hours=tuple(WorkingHours(d, "08:00", "16:00") for d in range(5)),
    )
    repo.put_expert(x)
    return x


def book(service: AppointmentService, expert: Expert, start: datetime = START) -> tuple[str, str]:
    """A booking with phone, e-mail and a name in the free text; (customer id, booking code)."""
    customer = f"customer-{uuid.uuid4().hex[:8]}"
    body: dict[str, Any] = {
        "expertId": expert.expert_id,
        "topic": "loans.home-loan",
        "channel": "online",
        "start": start.isoformat(),
        "durationMinutes": 45,
        "language": "fi",
        "phone": PHONE,
        "email": EMAIL,
        "extraInfo": NOTE,
    }
    booked = service.book(customer, body, f"key-{uuid.uuid4().hex[:8]}")
    return customer, booked.appointment.booking_code


def finish(repo: TableRepository, code: str, phase: Phase = Phase.ENDED) -> None:
    repo.set_phase(code, phase, START + timedelta(minutes=45))
    repo.set_meeting(code, "meeting-1", "https://teams.example/join/secret-link")


def notify(repo: TableRepository, settings: Settings, code: str) -> None:
    """The real notifier writes the customer's SMS and push rows to the Outbox."""
    n = Notifier(repo, RecordingMailer(), settings, FakeClock())
    assert asyncio.run(n.send(booking_code=code, kind="booking_confirmation", recipient="customer", key="k1"))


def rows(repo: TableRepository, table: str, partition: str) -> list[dict[str, Any]]:
    found = repo.table(table).query_entities("PartitionKey eq @pk", parameters={"pk": partition})
    return [dict(r) for r in found]


def test_personal_data_is_erased_only_after_the_retention_period(
    repo: TableRepository,
    service: AppointmentService,
    settings: Settings,
    store: TableRetentionStore,
    expert: Expert,
) -> None:
    """Past the period the record keeps code, times, phase and expert; phone, e-mail and text are gone."""
    customer, code = book(service, expert)
    finish(repo, code)
    notify(repo, settings, code)
    assert rows(repo, OUTBOX, customer)
    assert repo.read(BOOKING_CODES, code, INDEX_ROW)["Fingerprint"]  # the Idempotency-Key's record
    end = START + timedelta(minutes=45)

    early = erase_personal_data(store, end + timedelta(days=89), POLICY)
    assert early.changed == 0
    assert repo.get(customer, code) is not None and repo.phone_hmac(code)

    report = erase_personal_data(store, end + timedelta(days=91), POLICY)
    assert report.changed == 1 and report.details[OUTBOX] == 2
    kept = repo.get_by_code(code)
    assert kept is not None
    assert (kept.booking_code, kept.start, kept.phase, kept.expert_id) == (
        code,
        START,
        Phase.ENDED,
        expert.expert_id,
    )
    assert (kept.customer_id, kept.phone, kept.email, kept.extra_info, kept.join_url) == (
        ERASED_PARTITION,
        "",
        None,
        "",
        None,
    )
    with pytest.raises(NotFound):  # the phone number no longer finds it
        service.lookup({"bookingCode": code, "phone": PHONE})
    assert repo.list_for_customer(customer) == []
    assert rows(repo, OUTBOX, customer) == []
    assert "Fingerprint" not in repo.read(BOOKING_CODES, code, INDEX_ROW)  # a digest of the request
    for table in (APPOINTMENTS, OUTBOX, MEETING_STATE):
        for row in repo.table(table).list_entities():
            text = repr(dict(row))
            assert (
                PHONE not in text and EMAIL not in text and "Meikäläinen" not in text and customer not in text
            )

    again = erase_personal_data(store, end + timedelta(days=92), POLICY)
    assert (again.examined, again.changed) == (0, 0)


def test_counters_keyed_by_customer_or_address_go_once_untouched_for_the_period(
    repo: TableRepository, store: TableRetentionStore, own_storage: str
) -> None:
    """Verification failures (customer id) and the lookup throttle (caller address): kept while
    fresh, erased once untouched for the retention period."""
    # Imported here: imported before adapters.tables, adapters.lookup_throttle closes an import cycle.
    from adapters.lookup_throttle import TableThrottleStore

    throttle = TableThrottleStore(TableServiceClient.from_connection_string(own_storage))
    repo.save_counter(FailureCounter("verify:customer-1", 3))
    throttle.save(Backoff("ip:192.0.2.7", 4))
    written = datetime.now(UTC)  # the Table service stamps rows in real time
    early = erase_personal_data(store, written + timedelta(days=89), POLICY)
    assert early.changed == 0
    assert repo.get_counter("verify:customer-1").failures == 3 and throttle.get("ip:192.0.2.7").attempts == 4
    report = erase_personal_data(store, written + timedelta(days=91), POLICY)
    assert report.details["FailureCounters"] == 1 and report.details["LookupThrottle"] == 1
    assert repo.get_counter("verify:customer-1").failures == 0 and throttle.get("ip:192.0.2.7").attempts == 0


def test_an_unfinished_appointment_keeps_its_data(
    repo: TableRepository, service: AppointmentService, store: TableRetentionStore, expert: Expert
) -> None:
    """A lifecycle still running long after its time (stuck: the ops view shows it) is not erased."""
    customer, code = book(service, expert, START + timedelta(hours=2))
    report = erase_personal_data(store, START + timedelta(days=200), POLICY)
    assert report.skipped >= 1
    a = repo.get(customer, code)
    assert a is not None and a.phone == PHONE and a.email == EMAIL


class CrashingStore(TableRetentionStore):
    """Dies after the erased copy is written, before the original is deleted."""

    def erase(self, a: Any) -> dict[str, int]:
        real_delete = self.repo.table(APPOINTMENTS).delete_entity

        def crash(*args: Any, **kw: Any) -> None:
            raise RuntimeError("host died")

        self.repo.table(APPOINTMENTS).delete_entity = crash  # type: ignore[method-assign]
        try:
            return super().erase(a)
        finally:
            self.repo.table(APPOINTMENTS).delete_entity = real_delete  # type: ignore[method-assign]


def test_an_erasure_that_crashed_half_way_is_finished_by_the_next_run(
    repo: TableRepository, service: AppointmentService, store: TableRetentionStore, expert: Expert
) -> None:
    """Resumable: the next run finds the original still there and completes; one record remains."""
    customer, code = book(service, expert, START + timedelta(hours=3))
    finish(repo, code, Phase.CANCELLED)
    later = START + timedelta(days=120)
    with pytest.raises(RuntimeError):
        erase_personal_data(CrashingStore(repo), later, POLICY)
    assert repo.get(customer, code) is not None  # the original survived the crash
    report = erase_personal_data(store, later, POLICY)
    assert report.changed == 1
    assert repo.get(customer, code) is None
    erased = [r for r in rows(repo, APPOINTMENTS, ERASED_PARTITION) if r["RowKey"] == code]
    assert len(erased) == 1 and erased[0]["Phase"] == "cancelled"


def test_a_run_stops_at_its_limit_and_the_next_continues(
    repo: TableRepository, service: AppointmentService, store: TableRetentionStore, expert: Expert
) -> None:
    """Three erasable records, a limit of two: the first run says more remain, the second takes the last."""
    far = START + timedelta(days=7)
    for hour in (0, 1, 2):
        _, code = book(service, expert, far + timedelta(hours=hour))
        finish(repo, code)
    later = far + timedelta(days=200)
    first = erase_personal_data(store, later, POLICY, limit=2)
    assert (first.changed, first.more) == (2, True)
    second = erase_personal_data(store, later, POLICY, limit=2)
    assert second.changed == 1 and not second.more


def test_audit_rows_are_deleted_only_after_the_retention_years(
    repo: TableRepository, store: TableRetentionStore
) -> None:
    """Append-only: rows younger than AUDIT_RETENTION_YEARS stay untouched, older ones go, once."""
    code = f"AUD{uuid.uuid4().hex[:5].upper()}"
    for at in (START, START + timedelta(days=400)):
        repo.audit(AuditEntry(code, at, "system", "booked"))
    now = START.replace(year=START.year + 6) + timedelta(days=1)
    report = expire_audit(store, now, POLICY)
    assert report.changed == 1
    assert [e.at for e in repo.audit_trail(code)] == [START + timedelta(days=400)]
    assert expire_audit(store, now, POLICY).changed == 0


def test_expired_holds_and_orphaned_cells_are_swept(
    repo: TableRepository,
    service: AppointmentService,
    settings: Settings,
    clock: FakeClock,
    store: TableRetentionStore,
    expert: Expert,
) -> None:
    """Expired holds and cells nobody owns go; a live hold, a fresh claim and booked cells stay."""
    holds = HoldService(repo, clock, settings)
    day = START + timedelta(days=14)

    def hold_at(start: datetime) -> Any:
        body = {"expertId": expert.expert_id, "start": start.isoformat(), "durationMinutes": 45}
        return holds.hold(f"customer-{uuid.uuid4().hex[:8]}", body)

    expired = hold_at(day)
    clock.advance(minutes=settings.hold_minutes + 1)
    live = hold_at(day + timedelta(hours=2))
    _, code = book(service, expert, day - timedelta(hours=2))
    booked_cells = {k for k, v in owners(repo, expert).items() if v == code}
    slots = repo.table(EXPERT_SLOTS)
    # A reschedule that crashed before releasing its old cell, and a booking that crashed
    # after claiming its cells but before writing its record.
    stray = iso(day + timedelta(hours=3))
    slots.create_entity({"PartitionKey": expert.expert_id, "RowKey": stray, "BookingCode": code})
    ghost = iso(day + timedelta(hours=3, minutes=30))
    slots.create_entity({"PartitionKey": expert.expert_id, "RowKey": ghost, "BookingCode": "GHOST123"})

    fresh = sweep_slots(store, clock.now())  # the default grace spares the just-written ghost
    assert fresh.details["holds"] == 1 and fresh.details["orphanedCells"] == 1
    assert repo.get_hold(expired.hold_id) is None and repo.get_hold(live.hold_id) is not None
    assert ghost in owners(repo, expert) and stray not in owners(repo, expert)

    swept = sweep_slots(store, clock.now(), grace=timedelta(0))
    assert swept.details == {"orphanedCells": 1}
    left = owners(repo, expert)
    assert set(left) == booked_cells | {k for k, v in left.items() if v == f"hold:{live.hold_id}"}
    assert {v for v in left.values()} == {code, f"hold:{live.hold_id}"}
    assert sweep_slots(store, clock.now(), grace=timedelta(0)).changed == 0


def owners(repo: TableRepository, expert: Expert) -> dict[str, str]:
    return {r["RowKey"]: r["BookingCode"] for r in rows(repo, EXPERT_SLOTS, expert.expert_id)}
