"""The Table repository and the booking use cases against a real Azurite."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.tables import EXPERT_SLOTS, TableRepository
from adapters.tables.mappers import BOOKING_CODES, INDEX_ROW
from appointments.codes import booking_code_for_key
from appointments.errors import Conflict, Gone, NotFound, ValidationFailed
from appointments.model import Expert, Phase
from appointments.ports import AuditEntry
from appointments.service import AppointmentService, IdempotencyConflict
from appointments.settings import Settings
from tests.fakes import FakeClock

START = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)  # a Tuesday, 12.00 in Helsinki


@pytest.fixture
def repo(storage_connection_string: str) -> TableRepository:
    return TableRepository.from_connection_string(storage_connection_string)


@pytest.fixture
def expert(repo: TableRepository) -> Expert:
    """A fresh expert per test, so tests never share a calendar."""
    x = Expert(
        expert_id=str(uuid.uuid4()),
        display_name="Maija Suomalainen",
        email="maija@pankki.example",
        topics=("loans.home-loan", "savings.funds"),
        languages=("fi", "sv"),
    )
    repo.put_expert(x)
    return x


@pytest.fixture
def service(repo: TableRepository, storage_connection_string: str) -> AppointmentService:
    settings = Settings.from_env({"DEV_MODE": "true", "AzureWebJobsStorage": storage_connection_string})
    return AppointmentService(repo, FakeClock(), settings)


def body(expert: Expert, start: datetime = START, **kw: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "expertId": expert.expert_id,
        "topic": "loans.home-loan",
        "channel": "online",
        "start": start.isoformat(),
        "durationMinutes": 45,
        "language": "fi",
        "phone": "+358401234567",
    }
    b.update(kw)
    return b


def customer() -> str:
    return f"customer-{uuid.uuid4().hex[:8]}"


def test_twenty_concurrent_bookings_of_one_slot_have_exactly_one_winner(
    service: AppointmentService, expert: Expert
) -> None:
    """The Table service itself refuses the double booking: 1 wins, 19 get 409."""

    def attempt(_: int) -> str:
        try:
            return service.book(customer(), body(expert), None).appointment.booking_code
        except Conflict as exc:
            assert exc.status == 409
            return "409"

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(attempt, range(20)))
    winners = [r for r in results if r != "409"]
    assert len(winners) == 1 and results.count("409") == 19
    day = service.expert_day(expert.expert_id, START - timedelta(hours=3), START + timedelta(hours=3))
    assert [a.booking_code for a in day] == winners


def test_overlapping_bookings_of_different_lengths_are_refused(
    service: AppointmentService, expert: Expert
) -> None:
    """A 45-minute meeting at 12.00 blocks a 30-minute one at 12.30 (cells, not just starts)."""
    service.book(customer(), body(expert), None)
    with pytest.raises(Conflict):
        service.book(customer(), body(expert, START + timedelta(minutes=30), durationMinutes=30), None)
    later = service.book(customer(), body(expert, START + timedelta(minutes=60), durationMinutes=30), None)
    assert later.created


def test_idempotency_key_replay_returns_the_same_booking(service: AppointmentService, expert: Expert) -> None:
    """Same key and body twice: one booking, the second answer says it was not created anew."""
    who = customer()
    first = service.book(who, body(expert), "key-1")
    again = service.book(who, body(expert), "key-1")
    assert first.created and not again.created
    assert again.appointment.booking_code == first.appointment.booking_code
    assert len(service.upcoming(who)) == 1


def test_idempotency_key_reused_for_another_request_is_refused(
    service: AppointmentService, expert: Expert
) -> None:
    """The key belongs to one request; another body under it is a 422 and books nothing."""
    who = customer()
    service.book(who, body(expert), "key-2")
    with pytest.raises(IdempotencyConflict) as err:
        service.book(who, body(expert, START + timedelta(hours=1)), "key-2")
    assert err.value.status == 422
    assert len(service.upcoming(who)) == 1


def test_idempotency_keys_are_per_customer(service: AppointmentService, expert: Expert) -> None:
    """Two customers using the same key do not see each other's bookings."""
    a = service.book(customer(), body(expert), "shared")
    b = service.book(customer(), body(expert, START + timedelta(hours=1)), "shared")
    assert a.appointment.booking_code != b.appointment.booking_code and b.created


def test_a_crashed_booking_resumes_with_the_same_code(
    service: AppointmentService, repo: TableRepository, expert: Expert
) -> None:
    """If the first attempt stopped after claiming its cells, the retry finishes that booking."""
    who = customer()
    first = service.book(who, body(expert), "key-crash")
    code = first.appointment.booking_code
    # Simulate the crash: the record and the code index never got written.
    repo.table("Appointments").delete_entity(who, code)
    repo.table(BOOKING_CODES).delete_entity(code, INDEX_ROW)
    again = service.book(who, body(expert), "key-crash")
    assert again.appointment.booking_code == code


def test_bad_input_stores_nothing(service: AppointmentService, repo: TableRepository, expert: Expert) -> None:
    """Every field is validated before anything is written."""
    who = customer()
    with pytest.raises(ValidationFailed) as err:
        service.book(
            who,
            body(
                expert,
                START + timedelta(minutes=10),
                phone="040 123",
                durationMinutes=50,
                topic="nope",
                language="de",
            ),
            "key-bad",
        )
    fields = {e.field for e in err.value.errors}
    assert {"start", "phone", "durationMinutes", "topic", "language"} <= fields
    assert service.upcoming(who) == []
    keyed = booking_code_for_key(service.settings.code_pepper.value, who, "key-bad")
    assert repo.idempotency_fingerprint(who, keyed) is None
    slots = list(
        repo.table(EXPERT_SLOTS).query_entities("PartitionKey eq @pk", parameters={"pk": expert.expert_id})
    )
    assert slots == []


def test_expert_must_serve_the_topic_and_language(service: AppointmentService, expert: Expert) -> None:
    """An expert outside their topics or languages is a 422."""
    with pytest.raises(ValidationFailed) as err:
        service.book(customer(), body(expert, topic="daily.cards", language="en"), None)
    assert {e.field for e in err.value.errors} == {"topic", "language"}


def test_any_expert_picks_a_free_one(service: AppointmentService, repo: TableRepository) -> None:
    """With "any", a taken slot falls through to the next expert who serves the topic."""
    topic = "savings.pension"
    ids = []
    for name in ("A", "B"):
        x = Expert(str(uuid.uuid4()), f"Expert {name}", "x@pankki.example", (topic,), ("fi",))
        repo.put_expert(x)
        ids.append(x.expert_id)
    when = START + timedelta(days=1)
    got = {
        service.book(
            customer(),
            {
                **body(Expert(ids[0], "", "", (), ())),
                "expertId": "any",
                "topic": topic,
                "start": when.isoformat(),
            },
            None,
        ).appointment.expert_id
        for _ in range(2)
    }
    assert len(got) == 2


def test_reschedule_moves_the_claim(service: AppointmentService, expert: Expert) -> None:
    """After a reschedule the old time is free and the new one taken."""
    who = customer()
    booked = service.book(who, body(expert), None).appointment
    new_start = START + timedelta(days=1)
    before, after = service.change(who, booked.booking_code, {"start": new_start.isoformat()})
    assert before.start == START and after.start == new_start and after.revision == 1
    assert service.book(customer(), body(expert), None).created  # the old slot is free again
    with pytest.raises(Conflict):
        service.book(customer(), body(expert, new_start), None)
    again = service.change(who, booked.booking_code, {"start": new_start.isoformat()})
    assert again[1].revision == 1  # a retried PATCH changes nothing


def test_cancel_frees_the_slot_and_is_idempotent(service: AppointmentService, expert: Expert) -> None:
    """A cancelled appointment leaves the list, frees its slot, and cancelling again is harmless."""
    who = customer()
    booked = service.book(who, body(expert), None).appointment
    cancelled, changed = service.cancel(who, booked.booking_code)
    assert changed and cancelled.phase is Phase.CANCELLED
    assert service.cancel(who, booked.booking_code)[1] is False
    assert service.upcoming(who) == []
    assert service.book(customer(), body(expert), None).created


def test_changes_inside_the_notice_period_are_refused(service: AppointmentService, expert: Expert) -> None:
    """Within 24 h of the start, change and cancel point the customer to the phone."""
    who = customer()
    booked = service.book(who, body(expert), None).appointment
    assert isinstance(service.clock, FakeClock)
    service.clock.current = START - timedelta(hours=23)
    with pytest.raises(Conflict) as err:
        service.cancel(who, booked.booking_code)
    assert err.value.extensions["reason"] == "notice_period"


def test_other_customers_get_404_for_my_booking(service: AppointmentService, expert: Expert) -> None:
    """Someone else's booking code looks exactly like an unknown one."""
    booked = service.book(customer(), body(expert), None).appointment
    for action in (
        lambda c: service.get("intruder", c),
        lambda c: service.cancel("intruder", c),
        lambda c: service.change("intruder", c, {"durationMinutes": 30}),
    ):
        with pytest.raises(NotFound):
            action(booked.booking_code)


def test_lookup_needs_the_right_phone(service: AppointmentService, expert: Expert) -> None:
    """Booking code + phone finds the booking; a wrong phone is indistinguishable from a wrong code."""
    booked = service.book(customer(), body(expert, phone="+358 40 123 4567"), None).appointment
    found = service.lookup({"bookingCode": booked.booking_code.lower(), "phone": "+358401234567"})
    assert found.booking_code == booked.booking_code
    with pytest.raises(NotFound) as wrong_phone:
        service.lookup({"bookingCode": booked.booking_code, "phone": "+358409999999"})
    with pytest.raises(NotFound) as wrong_code:
        service.lookup({"bookingCode": "ZZZZZZZZ", "phone": "+358401234567"})
    assert wrong_phone.value.code == wrong_code.value.code


def test_join_is_refused_before_the_window_and_after_the_end(
    service: AppointmentService, expert: Expert
) -> None:
    """409 with joinWindowOpensAt before start-15min; 410 once it is over."""
    who = customer()
    booked = service.book(who, body(expert), None).appointment
    with pytest.raises(Conflict) as early:
        service.join(who, booked.booking_code)
    assert early.value.extensions["joinWindowOpensAt"] == "2026-12-08T09:45:00Z"
    assert isinstance(service.clock, FakeClock)
    service.clock.current = START + timedelta(hours=3)
    with pytest.raises(Gone):
        service.join(who, booked.booking_code)


def test_phase_writes_never_undo_a_terminal_phase(
    repo: TableRepository, service: AppointmentService, expert: Expert
) -> None:
    """A late "join_open" from the orchestration cannot resurrect a cancelled appointment."""
    who = customer()
    booked = service.book(who, body(expert), None).appointment
    service.cancel(who, booked.booking_code)
    repo.set_phase(booked.booking_code, Phase.JOIN_OPEN, START)
    stored = repo.get(who, booked.booking_code)
    assert stored is not None and stored.phase is Phase.CANCELLED


def test_audit_trail_records_who_did_what(
    repo: TableRepository, service: AppointmentService, expert: Expert
) -> None:
    """Booking and cancelling are audited with the actor's role, never a name or phone."""
    who = customer()
    booked = service.book(who, body(expert), None).appointment
    service.cancel(who, booked.booking_code)
    repo.audit(AuditEntry(booked.booking_code, START, "system", "test"))
    trail = repo.audit_trail(booked.booking_code)
    assert [e.action for e in trail][:2] == ["booked", "cancelled"]
    assert all("+358" not in e.detail for e in trail)


def test_tables_are_created_on_first_use(storage_connection_string: str) -> None:
    """A repository on an empty account creates its tables as it goes."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(storage_connection_string)
    name = f"T{uuid.uuid4().hex[:10]}"
    repo = TableRepository(service)
    repo.table(name).upsert_entity({"PartitionKey": "p", "RowKey": "r"})
    assert name in {t.name for t in service.list_tables()}


def test_a_reschedule_outside_working_hours_is_refused(
    service: AppointmentService, repo: TableRepository
) -> None:
    """Moving a booking to a time the expert does not work is a 422 and changes nothing."""
    from devhost.seed import WEEKDAYS_8_TO_16

    x = Expert(
        str(uuid.uuid4()),
        "Olli",
        "o@pankki.example",
        ("loans.home-loan",),
        ("fi",),
        working_hours=WEEKDAYS_8_TO_16,
    )
    repo.put_expert(x)
    who = customer()
    booked = service.book(who, body(x), None).appointment
    evening = START.replace(hour=16)  # 18.00 in Helsinki
    with pytest.raises(ValidationFailed) as err:
        service.change(who, booked.booking_code, {"start": evening.isoformat()})
    assert {e.field for e in err.value.errors} == {"start"}
    assert service.get(who, booked.booking_code).start == START
