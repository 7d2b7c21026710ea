"""What the app asks of Table Storage, counted at the Table client's transport, against Azurite.

The counts are behaviour (each request does the least work), not speed: a change that adds a
round trip to a portal read fails here, whatever the machine.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.tables import TableRepository
from adapters.tables.mappers import APPOINTMENTS
from adapters.tables.transport import client_threads, table_transport
from appointments.directory import ExpertDirectory
from appointments.model import Expert
from appointments.service import AppointmentService
from appointments.settings import Settings
from bench.round_trips import RoundTrips, kind
from tests.fakes import FakeClock

START = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)  # a Tuesday, 12.00 in Helsinki


@pytest.fixture
def counted(storage_connection_string: str) -> tuple[TableRepository, RoundTrips]:
    counter = table_transport(transport=RoundTrips)
    assert isinstance(counter, RoundTrips)
    return TableRepository.from_connection_string(storage_connection_string, transport=counter), counter


def test_portal_reads_are_one_round_trip_each_with_the_directory_warm(
    counted: tuple[TableRepository, RoundTrips], storage_connection_string: str
) -> None:
    """The list is one partition query and the get one point read; names come from the cache."""
    repo, counter = counted
    expert = Expert(
        str(uuid.uuid4()), "Maija Suomalainen", "maija@pankki.example", ("loans.home-loan",), ("fi",)
    )
    repo.put_expert(expert)
    settings = Settings.from_env({"DEV_MODE": "true", "AzureWebJobsStorage": storage_connection_string})
    svc = AppointmentService(repo, FakeClock(), settings)
    who = f"c-{uuid.uuid4().hex[:8]}"
    body = {
        "expertId": expert.expert_id,
        "topic": "loans.home-loan",
        "channel": "online",
        "start": START.isoformat(),
        "durationMinutes": 45,
        "language": "fi",
        "phone": "+358401234567",
    }
    code = svc.book(who, body, None).appointment.booking_code
    directory = ExpertDirectory(repo)
    directory.all()
    counter.reset()
    with kind("list"):
        names = {directory.get(a.expert_id).display_name for a in svc.upcoming(who)}  # type: ignore[union-attr]
    with kind("get"):
        one = svc.get(who, code)
        assert directory.get(one.expert_id) is not None
    assert names == {"Maija Suomalainen"}
    assert counter.snapshot() == {
        "list": Counter({f"query {APPOINTMENTS}": 1}),
        "get": Counter({f"point read {APPOINTMENTS}": 1}),
    }


def test_the_connection_pool_has_room_for_every_thread(
    storage_connection_string: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As many threads as may share the client never make urllib3 discard a connection."""
    repo = TableRepository.from_connection_string(storage_connection_string)
    repo.table(APPOINTMENTS)
    threads = client_threads()

    def reads(i: int) -> None:
        for _ in range(5):
            repo.get("nobody", str(i))

    with (
        caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"),
        ThreadPoolExecutor(threads) as pool,
    ):
        list(pool.map(reads, range(threads * 4)))
    assert not [r for r in caplog.records if "Connection pool is full" in r.getMessage()]


def test_the_pool_is_sized_to_the_workers_thread_setting() -> None:
    """PYTHON_THREADPOOL_THREAD_COUNT plus asyncio's default executor (min(32, cpu + 4))."""
    default = min(32, (os.cpu_count() or 1) + 4)
    assert client_threads({}) == 2 * default
    assert client_threads({"PYTHON_THREADPOOL_THREAD_COUNT": "50"}) == 50 + default


def test_a_netrc_entry_for_the_storage_host_does_not_replace_the_signature(
    storage_connection_string: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests would swap the SharedKey header for the .netrc login; the app's transport never looks."""
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1\nlogin someone\npassword secret\n", encoding="ascii")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    repo = TableRepository.from_connection_string(storage_connection_string)
    table = f"Netrc{uuid.uuid4().hex[:8]}"
    repo.table(table)
    assert repo.read(table, "nobody", "") is None


def test_a_notification_reads_its_key_and_the_record_and_writes_as_little_as_it_can(
    counted: tuple[TableRepository, RoundTrips],
) -> None:
    """An expert mail: the key's row, the record (code index + row), ``sending``, ``sent``; the expert
    comes from the warm directory. A customer without mail: one transaction for SMS and push, and
    ``sent`` (no ``sending``: there is no mail to resume). A repeat reads the key and stops."""
    import asyncio

    from adapters.notifier import Notifier
    from adapters.tables.mappers import BOOKING_CODES, CUSTOMER_OUTBOX, NOTIFICATIONS
    from tests.fakes import RecordingMailer
    from tests.integration.test_notifier import setup

    repo, counter = counted
    a = setup(repo, "fi", email=None)
    directory = ExpertDirectory(repo)
    mailer = RecordingMailer()
    settings = Settings.from_env({"DEV_MODE": "true"})
    notifier = Notifier(repo, mailer, settings, FakeClock(), directory=directory)
    directory.all()
    repo.table(NOTIFICATIONS), repo.table(CUSTOMER_OUTBOX)  # created on first use: not counted

    def send(kind_: str, recipient: str, key: str) -> bool:
        return asyncio.run(
            notifier.send(booking_code=a.booking_code, kind=kind_, recipient=recipient, key=key)
        )

    counter.reset()
    with kind("expert"):
        assert send("customer_in_lobby", "expert", "k-expert")
    with kind("customer"):
        assert send("identity_verified", "customer", "k-customer")
    with kind("again"):
        assert not send("identity_verified", "customer", "k-customer")
    reads = Counter(
        {f"point read {NOTIFICATIONS}": 1, f"point read {BOOKING_CODES}": 1, f"point read {APPOINTMENTS}": 1}
    )
    assert counter.snapshot() == {
        "expert": reads + Counter({f"replace/upsert {NOTIFICATIONS}": 2}),
        "customer": reads + Counter({"transaction": 1, f"replace/upsert {NOTIFICATIONS}": 1}),
        "again": Counter({f"point read {NOTIFICATIONS}": 1}),
    }
    assert len(mailer.sent) == 1
    rows = repo.table(CUSTOMER_OUTBOX).query_entities("PartitionKey eq @pk", parameters={"pk": a.customer_id})
    assert sorted(r["Channel"] for r in rows) == ["push", "sms"]
