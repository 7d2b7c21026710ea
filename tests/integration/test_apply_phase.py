"""The lifecycle's storage activities run against Azurite, as the worker runs them (bootstrap's
services, the real Table adapters, a recording mailer in place of Graph)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest

import bootstrap
from activities.lifecycle import apply_phase
from adapters.tables import TableRepository
from adapters.tables.mappers import NOTIFICATIONS
from appointments.model import Appointment, Phase
from appointments.ports import OutboxEntry
from appointments.settings import Settings
from tests.fakes import FakeClock, RecordingMailer
from tests.integration.test_notifier import START, setup


@pytest.fixture
def wired(storage_connection_string: str) -> Iterator[tuple[TableRepository, RecordingMailer]]:
    repo = TableRepository.from_connection_string(storage_connection_string)
    mailer = RecordingMailer()
    settings = Settings.from_env({"DEV_MODE": "true", "AzureWebJobsStorage": storage_connection_string})
    bootstrap.override(settings=settings, repo=repo, clock=FakeClock(), mailer=mailer)
    yield repo, mailer
    bootstrap.reset()


def run(payload: dict[str, object]) -> dict[str, object]:
    return asyncio.run(apply_phase.build().get_user_function()(payload))  # type: ignore[no-any-return]


def join_open(repo: TableRepository) -> Appointment:
    a = setup(repo, "fi")
    repo.set_phase(a.booking_code, Phase.JOIN_OPEN, START - timedelta(minutes=15))
    return a


def notifications(a: Appointment, *kinds: str) -> list[dict[str, object]]:
    return [
        {"bookingCode": a.booking_code, "kind": kind, "recipient": who, "key": f"{a.booking_code}/{n}"}
        for n, (kind, who) in enumerate(k.split(":") for k in kinds)
    ]


def test_it_records_the_phase_acknowledges_and_notifies_in_one_run(
    wired: tuple[TableRepository, RecordingMailer],
) -> None:
    repo, mailer = wired
    a = join_open(repo)
    repo.add(OutboxEntry(a.booking_code, "0001", "CustomerJoined", {}))
    result = run(
        {
            "bookingCode": a.booking_code,
            "record": {"phase": "lobby", "since": "2026-12-07T10:20:00Z", "revision": 0, "attention": None},
            "ack": ["0001"],
            "notifications": notifications(a, "customer_in_lobby:expert"),
            "look": True,
        }
    )
    assert result["failed"] == []
    assert result["schedule"] == {
        "start": "2026-12-07T10:30:00Z",
        "end": "2026-12-07T11:15:00Z",
        "revision": 0,
        "phase": "lobby",
        "pending": [],  # acknowledged before the look
    }
    stored = repo.get_by_code(a.booking_code)
    assert stored is not None and stored.phase is Phase.LOBBY
    assert [m.to for m in mailer.sent] == ["maija@pankki.example"]


@pytest.mark.parametrize("found", ["cancelled", "pending"])
def test_a_deadline_whose_check_finds_what_came_first_does_nothing(
    wired: tuple[TableRepository, RecordingMailer], found: str
) -> None:
    """The no-show deadline's apply_phase, with the guard: the record says cancelled, or the outbox
    holds the customer's join. Nothing is recorded or sent; the answer carries what was read."""
    repo, mailer = wired
    a = join_open(repo)
    if found == "cancelled":
        repo.set_phase(a.booking_code, Phase.CANCELLED, START - timedelta(minutes=10))
    else:
        repo.add(OutboxEntry(a.booking_code, "0001", "CustomerJoined", {}))
    result = run(
        {
            "bookingCode": a.booking_code,
            "record": {"phase": "no_show", "since": "2026-12-07T11:15:00Z", "revision": 0, "attention": None},
            "notifications": notifications(a, "join_open:expert"),
            "guard": {"phase": "join_open", "revision": 0, "outbox": True},
        }
    )
    assert result["missed"] is True
    schedule = result["schedule"]
    assert isinstance(schedule, dict)
    if found == "cancelled":
        assert schedule["phase"] == "cancelled"
    else:
        assert [e["event"] for e in schedule["pending"]] == ["CustomerJoined"]
    stored = repo.get_by_code(a.booking_code)
    assert stored is not None and stored.phase is not Phase.NO_SHOW
    assert mailer.sent == []
    rows = repo.table(NOTIFICATIONS).query_entities("PartitionKey eq @pk", parameters={"pk": a.booking_code})
    assert list(rows) == []


def test_a_deadline_whose_check_finds_nothing_goes_on(wired: tuple[TableRepository, RecordingMailer]) -> None:
    repo, _mailer = wired
    a = join_open(repo)
    result = run(
        {
            "bookingCode": a.booking_code,
            "record": {"phase": "no_show", "since": "2026-12-07T11:15:00Z", "revision": 0, "attention": None},
            "guard": {"phase": "join_open", "revision": 0, "outbox": True},
        }
    )
    assert result == {"failed": []}
    stored = repo.get_by_code(a.booking_code)
    assert stored is not None and stored.phase is Phase.NO_SHOW
