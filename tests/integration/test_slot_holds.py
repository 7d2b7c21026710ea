"""Held slots and booking rules against a real Azurite: races, expiry, conversion, working hours."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.tables import EXPERT_SLOTS, TableRepository
from appointments.availability import HoldService
from appointments.errors import Conflict, NotFound, ValidationFailed
from appointments.model import Expert, WorkingHours
from appointments.service import AppointmentService
from appointments.settings import Settings
from tests.fakes import FakeClock

START = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)  # a Tuesday, 12.00 in Helsinki
WEEKDAYS = tuple(WorkingHours(d, "08:00", "16:00") for d in range(5))


@pytest.fixture
def repo(storage_connection_string: str) -> TableRepository:
    return TableRepository.from_connection_string(storage_connection_string)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()  # 2026-12-01 08:00Z


@pytest.fixture
def settings(storage_connection_string: str) -> Settings:
    return Settings.from_env({"DEV_MODE": "true", "AzureWebJobsStorage": storage_connection_string})


@pytest.fixture
def service(repo: TableRepository, clock: FakeClock, settings: Settings) -> AppointmentService:
    return AppointmentService(repo, clock, settings)


@pytest.fixture
def holds(repo: TableRepository, clock: FakeClock, settings: Settings) -> HoldService:
    return HoldService(repo, clock, settings)


def new_expert(repo: TableRepository, name: str = "Maija Suomalainen") -> Expert:
    x = Expert(
        expert_id=str(uuid.uuid4()),
        display_name=name,
        email=f"{uuid.uuid4().hex[:8]}@pankki.example",
        topics=("loans.home-loan",),
        languages=("fi",),
        working_hours=WEEKDAYS,
    )
    repo.put_expert(x)
    return x


@pytest.fixture
def expert(repo: TableRepository) -> Expert:
    return new_expert(repo)


def customer() -> str:
    return f"customer-{uuid.uuid4().hex[:8]}"


def hold_body(expert: Expert, start: datetime = START, duration: int = 45) -> dict[str, Any]:
    return {"expertId": expert.expert_id, "start": start.isoformat(), "durationMinutes": duration}


def booking(expert: Expert | str, start: datetime = START, **kw: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "expertId": expert if isinstance(expert, str) else expert.expert_id,
        "topic": "loans.home-loan",
        "channel": "online",
        "start": start.isoformat(),
        "durationMinutes": 45,
        "language": "fi",
        "phone": "+358401234567",
    }
    b.update(kw)
    return b


def cell_owners(repo: TableRepository, expert: Expert) -> dict[str, str]:
    rows = repo.table(EXPERT_SLOTS).query_entities("PartitionKey eq @pk", parameters={"pk": expert.expert_id})
    return {r["RowKey"]: r["BookingCode"] for r in rows}


def race(fn: Any, n: int) -> list[str]:
    def attempt(_: int) -> str:
        try:
            return str(fn())
        except Conflict as exc:
            assert exc.status == 409
            return "409"

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(attempt, range(n)))


def test_two_customers_racing_for_one_slot_one_hold_wins(holds: HoldService, expert: Expert) -> None:
    """Ten simultaneous holds of one slot: exactly one 201, the rest 409."""
    results = race(lambda: holds.hold(customer(), hold_body(expert)).hold_id, 10)
    assert len([r for r in results if r != "409"]) == 1 and results.count("409") == 9


def test_after_expiry_another_customer_can_hold_and_the_first_cannot_book(
    holds: HoldService, service: AppointmentService, clock: FakeClock, expert: Expert
) -> None:
    """Holds last hold_minutes; then the cells are free for others, and the stale hold cannot book them."""
    first, second = customer(), customer()
    stale = holds.hold(first, hold_body(expert))
    assert stale.expires_at == clock.now() + timedelta(minutes=10)
    with pytest.raises(Conflict):
        holds.hold(second, hold_body(expert))
    clock.advance(minutes=10)
    fresh = holds.hold(second, hold_body(expert))
    assert set(cell_owners(repo_of(holds), expert).values()) == {f"hold:{fresh.hold_id}"}
    with pytest.raises(Conflict):
        service.book(first, booking(expert, holdId=stale.hold_id), None)
    booked = service.book(second, booking(expert, holdId=fresh.hold_id), None)
    assert booked.created


def repo_of(holds: HoldService) -> TableRepository:
    assert isinstance(holds.repo, TableRepository)
    return holds.repo


def test_racing_takeovers_of_an_expired_hold_have_one_winner(
    holds: HoldService, clock: FakeClock, expert: Expert
) -> None:
    """The takeover is ETag-conditional: of eight customers grabbing an expired hold's cells, one wins."""
    holds.hold(customer(), hold_body(expert))
    clock.advance(minutes=11)
    results = race(lambda: holds.hold(customer(), hold_body(expert)).hold_id, 8)
    assert len([r for r in results if r != "409"]) == 1


def test_hold_then_book_converts_the_cells(
    holds: HoldService, service: AppointmentService, repo: TableRepository, expert: Expert
) -> None:
    """Booking with the holdId moves every cell from the hold to the booking code and forgets the hold."""
    who = customer()
    hold = holds.hold(who, hold_body(expert))
    assert set(cell_owners(repo, expert).values()) == {f"hold:{hold.hold_id}"}
    booked = service.book(who, booking(expert, holdId=hold.hold_id), None)
    owners = cell_owners(repo, expert)
    assert len(owners) == 3 and set(owners.values()) == {booked.appointment.booking_code}
    assert repo.get_hold(hold.hold_id) is None
    assert service.expert_day(expert.expert_id, START - timedelta(hours=1), START + timedelta(hours=2))


def test_a_hold_with_any_expert_books_the_held_expert(
    holds: HoldService, service: AppointmentService, expert: Expert
) -> None:
    """expertId "any" plus a holdId books the expert the hold is for."""
    who = customer()
    hold = holds.hold(who, hold_body(expert))
    booked = service.book(who, booking("any", holdId=hold.hold_id), None)
    assert booked.appointment.expert_id == expert.expert_id


def test_a_held_slot_cannot_be_booked_without_its_hold(
    holds: HoldService, service: AppointmentService, expert: Expert
) -> None:
    """Without the holdId, everyone gets 409, the holder too; someone else's holdId is 422."""
    owner = customer()
    hold = holds.hold(owner, hold_body(expert))
    for who in (customer(), owner):
        with pytest.raises(Conflict) as caught:
            service.book(who, booking(expert), None)
        assert caught.value.status == 409
    with pytest.raises(ValidationFailed) as wrong:
        service.book(customer(), booking(expert, holdId=hold.hold_id), None)
    assert {e.field for e in wrong.value.errors} == {"holdId"}
    with pytest.raises(ValidationFailed):
        service.book(owner, booking(expert, START + timedelta(minutes=30), holdId=hold.hold_id), None)


def test_an_overlapping_slot_is_held_too(
    holds: HoldService, service: AppointmentService, expert: Expert
) -> None:
    """A 45-minute hold at 12.00 blocks a 30-minute booking at 12.30 (cells, not starts)."""
    holds.hold(customer(), hold_body(expert))
    with pytest.raises(Conflict):
        service.book(customer(), booking(expert, START + timedelta(minutes=30), durationMinutes=30), None)


def test_an_expired_hold_lets_someone_else_book(
    holds: HoldService, service: AppointmentService, clock: FakeClock, expert: Expert, repo: TableRepository
) -> None:
    """After expiry a plain booking takes the cells over."""
    holds.hold(customer(), hold_body(expert))
    clock.advance(minutes=10, seconds=1)
    booked = service.book(customer(), booking(expert), None)
    assert set(cell_owners(repo, expert).values()) == {booked.appointment.booking_code}


def test_only_the_owner_releases_a_hold(
    holds: HoldService, service: AppointmentService, repo: TableRepository, expert: Expert
) -> None:
    """Someone else's or an unknown hold is 404; the owner's release frees the cells at once."""
    owner = customer()
    hold = holds.hold(owner, hold_body(expert))
    for who, hold_id in ((customer(), hold.hold_id), (owner, "no-such-hold")):
        with pytest.raises(NotFound):
            holds.release(who, hold_id)
    assert repo.taken_cells(expert.expert_id, START, START + timedelta(hours=1), holds.clock.now())
    holds.release(owner, hold.hold_id)
    assert cell_owners(repo, expert) == {}
    assert service.book(customer(), booking(expert), None).created


def test_taken_cells_leave_out_expired_holds(
    holds: HoldService, repo: TableRepository, clock: FakeClock, expert: Expert
) -> None:
    """The slot finder sees a live hold as taken and an expired one as free."""
    holds.hold(customer(), hold_body(expert))
    window = (START, START + timedelta(hours=2))
    assert len(repo.taken_cells(expert.expert_id, *window, clock.now())) == 3
    assert repo.taken_cells(expert.expert_id, *window, clock.now() + timedelta(minutes=10)) == set()


def test_holds_follow_the_booking_rules(holds: HoldService, expert: Expert) -> None:
    """Lead time, advance limit, grid, working hours and expert are checked before anything is claimed."""
    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    for start, field in (
        (now + timedelta(hours=1), "start"),
        (now + timedelta(days=91), "start"),
        (START + timedelta(minutes=10), "start"),
        (START.replace(hour=15), "start"),
    ):
        with pytest.raises(ValidationFailed) as caught:
            holds.hold(customer(), hold_body(expert, start))
        assert field in {e.field for e in caught.value.errors}
    with pytest.raises(ValidationFailed):
        holds.hold(customer(), {"expertId": "nobody", "start": START.isoformat(), "durationMinutes": 45})


def test_booking_outside_working_hours_is_refused(service: AppointmentService, expert: Expert) -> None:
    """Saturday, or 16.00 in Helsinki, is outside 08-16 on weekdays: 422 on start."""
    for start in (
        datetime(2026, 12, 12, 10, 0, tzinfo=UTC),
        START.replace(hour=14),
        START.replace(hour=13, minute=30),
    ):
        with pytest.raises(ValidationFailed) as caught:
            service.book(customer(), booking(expert, start), None)
        assert {e.field for e in caught.value.errors} == {"start"}


def test_any_expert_only_picks_experts_working_then(
    service: AppointmentService, repo: TableRepository
) -> None:
    """With "any", an expert off duty at that time is never chosen."""
    topic = "insurance.personal"  # no seeded demo expert serves it in English
    late = Expert(
        expert_id=str(uuid.uuid4()),
        display_name="Late",
        email="late@pankki.example",
        topics=(topic,),
        languages=("en",),
        working_hours=tuple(WorkingHours(d, "12:00", "20:00") for d in range(5)),
    )
    repo.put_expert(late)
    try:
        evening = START.replace(hour=16)  # 18.00 in Helsinki
        booked = service.book(customer(), booking("any", evening, topic=topic, language="en"), None)
        assert booked.appointment.expert_id == late.expert_id
        with pytest.raises(ValidationFailed):
            service.book(customer(), booking("any", START.replace(hour=7), topic=topic, language="en"), None)
    finally:
        repo.put_expert(
            Expert(
                late.expert_id,
                late.display_name,
                late.email,
                late.topics,
                late.languages,
                working_hours=late.working_hours,
                active=False,
            )
        )


def test_lead_time_advance_and_notice_are_enforced(
    service: AppointmentService, clock: FakeClock, expert: Expert
) -> None:
    """Too soon and too far ahead are 422; cancelling inside the notice period is 409."""
    for start in (clock.now() + timedelta(hours=1), clock.now() + timedelta(days=91)):
        with pytest.raises(ValidationFailed):
            service.book(customer(), booking(expert, start.replace(minute=0)), None)
    who = customer()
    code = service.book(who, booking(expert), None).appointment.booking_code
    clock.advance(days=6, hours=12)  # 2026-12-07 20:00Z: 14 h before the start, notice is 24 h
    with pytest.raises(Conflict) as caught:
        service.cancel(who, code)
    assert caught.value.extensions["reason"] == "notice_period"
