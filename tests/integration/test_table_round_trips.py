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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.tables import TableRepository
from adapters.tables.mappers import (
    APPOINTMENTS,
    BOOKING_CODES,
    EXPERT_SLOTS,
    EXPERTS,
    FAILURES,
    INDEX_ROW,
    MEETING_STATE,
)
from adapters.tables.transport import client_threads, table_transport
from appointments.booking import fingerprint
from appointments.catalogue import Channel
from appointments.codes import booking_code_for_key, new_booking_code
from appointments.directory import ExpertDirectory
from appointments.errors import Conflict
from appointments.identity_service import IdentityService
from appointments.lifecycle import EventType
from appointments.model import Appointment, Expert, Phase
from appointments.service import AppointmentService, IdempotencyConflict
from appointments.settings import Settings
from bench.round_trips import RoundTrips, kind
from tests.fakes import FakeClock

START = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)  # a Tuesday, 12.00 in Helsinki
TOPIC = "loans.home-loan"


def new_expert(repo: TableRepository) -> Expert:
    x = Expert(str(uuid.uuid4()), "Maija Suomalainen", "maija@pankki.example", (TOPIC,), ("fi",))
    repo.put_expert(x)
    return x


def booking_body(expert: Expert, start: datetime = START, minutes: int = 45) -> dict[str, object]:
    return {
        "expertId": expert.expert_id,
        "topic": TOPIC,
        "channel": "online",
        "start": start.isoformat(),
        "durationMinutes": minutes,
        "language": "fi",
        "phone": "+358401234567",
    }


def services(
    repo: TableRepository, conn: str, clock: FakeClock | None = None
) -> tuple[AppointmentService, IdentityService]:
    """As bootstrap wires them: booking trusts the in-process directory, warmed here."""
    settings = Settings.from_env({"DEV_MODE": "true", "AzureWebJobsStorage": conn})
    clock = clock or FakeClock()
    directory = ExpertDirectory(repo)
    directory.all()
    svc = AppointmentService(repo, clock, settings, directory=directory)
    return svc, IdentityService(svc, repo, clock, settings)


def customer() -> str:
    return f"c-{uuid.uuid4().hex[:8]}"


def test_a_keyed_booking_is_three_round_trips(
    counted: tuple[TableRepository, RoundTrips], storage_connection_string: str
) -> None:
    """Cells in one transaction; the code index (the key's record) and the audit entry in one
    transaction of the booking's partition; the record. No expert, key or read-back reads.
    Before: 11 (3 cell reads, key read and insert, expert read, record read back, audit insert)."""
    repo, counter = counted
    expert = new_expert(repo)
    svc, _ = services(repo, storage_connection_string)
    who, key = customer(), f"k-{uuid.uuid4().hex}"
    counter.reset()
    with kind("book"):
        booked = svc.book(who, booking_body(expert), key)
    assert booked.created
    assert counter.snapshot() == {"book": Counter({"transaction": 2, f"insert {APPOINTMENTS}": 1})}
    # The ETag came from the insert's answer, yet it is the stored one: an If-Match update works.
    assert booked.appointment == repo.get(who, booked.appointment.booking_code)
    repo.update(booked.appointment.with_changes(extra_info="muutettu"))
    assert [e.action for e in repo.audit_trail(booked.appointment.booking_code)] == ["booked"]


def test_a_retry_answers_the_first_booking_and_books_nothing_twice(
    counted: tuple[TableRepository, RoundTrips], storage_connection_string: str
) -> None:
    """The same key again: the same code, one record, one audit entry, the cells unchanged."""
    repo, _ = counted
    expert = new_expert(repo)
    svc, _ = services(repo, storage_connection_string)
    who, key = customer(), f"k-{uuid.uuid4().hex}"
    first = svc.book(who, booking_body(expert), key)
    again = svc.book(who, booking_body(expert), key)
    assert (again.created, again.appointment) == (False, first.appointment)
    assert len(repo.list_for_customer(who)) == 1
    assert [e.action for e in repo.audit_trail(first.appointment.booking_code)] == ["booked"]
    with pytest.raises(IdempotencyConflict):  # the key for another request: 422, nothing written
        svc.book(who, booking_body(expert, START + timedelta(hours=2)), key)
    assert repo.taken_cells(expert.expert_id, START, START + timedelta(hours=4), START) == set(
        svc.cells(START, 45)
    )


@pytest.mark.parametrize("crash_after", ["cells", "code index"])
def test_a_booking_that_died_between_writes_is_finished_by_its_retry(
    counted: tuple[TableRepository, RoundTrips], storage_connection_string: str, crash_after: str
) -> None:
    """Until the record exists the booking is invisible; the retry with the key completes it
    under the same code (the key's own), and the customer's slot is not "taken" by itself."""
    repo, _ = counted
    expert = new_expert(repo)
    svc, _ = services(repo, storage_connection_string)
    who, key = customer(), f"k-{uuid.uuid4().hex}"
    code = booking_code_for_key(svc.settings.code_pepper.value, who, key)
    repo.slots.claim(expert.expert_id, code, svc.cells(START, 45), now=START)
    if crash_after == "code index":
        repo.table(BOOKING_CODES).create_entity(
            {
                "PartitionKey": code,
                "RowKey": INDEX_ROW,
                "CustomerId": who,
                "PhoneHmac": "x",
                "ExpertId": expert.expert_id,
                "Fingerprint": fingerprint(booking_body(expert)),
            }
        )
    assert repo.get_by_code(code) is None and svc.upcoming(who) == []  # nothing half-visible
    booked = svc.book(who, booking_body(expert), key)
    assert (booked.created, booked.appointment.booking_code) == (True, code)
    assert repo.get_by_code(code) == booked.appointment
    with pytest.raises(Conflict):  # and the slot is the booking's: nobody else gets it
        svc.book(customer(), booking_body(expert), None)


def test_parallel_bookings_of_one_slot_book_it_once(
    counted: tuple[TableRepository, RoundTrips], storage_connection_string: str
) -> None:
    """Ten customers, one slot, no read before the insert: exactly one booking."""
    repo, _ = counted
    expert = new_expert(repo)
    svc, _ = services(repo, storage_connection_string)

    def attempt(i: int) -> str | None:
        try:
            return svc.book(customer(), booking_body(expert), f"k-{i}").appointment.booking_code
        except Conflict:
            return None

    with ThreadPoolExecutor(10) as pool:
        won = [c for c in pool.map(attempt, range(10)) if c is not None]
    assert len(won) == 1
    assert {repo.get_by_code(won[0]).expert_id} == {expert.expert_id}  # type: ignore[union-attr]


def meeting(repo: TableRepository, expert: Expert, phase: Phase) -> Appointment:
    a = Appointment(
        booking_code=new_booking_code(),
        customer_id=customer(),
        expert_id=expert.expert_id,
        channel=Channel.ONLINE,
        topic_id=TOPIC,
        start=START,
        duration_minutes=45,
        language="fi",
        phone="+358401234567",
        phase=phase,
        join_url="https://teams.example/join/1",
        meeting_id="m-1",
    )
    return repo.create(a, phone_hmac="h", cells=[], idempotency_key=None, fingerprint="").appointment


def test_the_meeting_requests_are_a_read_a_transaction_and_the_phase_write(
    counted: tuple[TableRepository, RoundTrips], storage_connection_string: str
) -> None:
    """Join, issue a code, verify, end: the record, one transaction (the outbox entry, and the
    code, with its audit row), the predicted phase. The expert's paths find the record by its
    code in one point read (the location is remembered). Before: 4, 5, 6 and 5."""
    repo, counter = counted
    expert = new_expert(repo)
    clock = FakeClock(START - timedelta(minutes=5))
    svc, identity = services(repo, storage_connection_string, clock)
    a = meeting(repo, expert, Phase.JOIN_OPEN)
    counter.reset()
    with kind("join"):
        joined = svc.join(a.customer_id, a.booking_code)
        svc.advance_phase(joined.appointment, EventType.CUSTOMER_JOINED)
    with kind("issue"):
        issued = identity.issue(expert.expert_id, a.booking_code)
        svc.advance_phase(issued.appointment, EventType.CODE_ISSUED)
    with kind("verify"):
        verified = identity.verify(a.customer_id, a.booking_code, {"code": issued.code})
        svc.advance_phase(verified.appointment, EventType.CODE_VERIFIED)
    with kind("end"):
        ended = svc.end_meeting(expert.expert_id, a.booking_code)
        svc.advance_phase(ended.appointment, EventType.MEETING_ENDED)
    read, merge = f"point read {APPOINTMENTS}", f"merge {APPOINTMENTS}"
    assert counter.snapshot() == {
        "join": Counter({read: 1, "transaction": 1, merge: 1}),
        "issue": Counter({read: 1, "transaction": 1, merge: 1}),
        # the customer's failure counter (none: nothing to reset) and the code are read too
        "verify": Counter(
            {
                read: 1,
                "point read FailureCounters": 1,
                "point read MeetingState": 1,
                "transaction": 1,
                merge: 1,
            }
        ),
        "end": Counter({read: 1, "transaction": 1, merge: 1}),
    }
    assert [e.action for e in repo.audit_trail(a.booking_code)] == [
        "booked",
        "joined",
        "code_issued",
        "identity_verified",
        "ended",
    ]


def test_a_code_s_location_is_remembered_once_storage_confirmed_it(
    counted: tuple[TableRepository, RoundTrips], storage_connection_string: str
) -> None:
    """Cold: the index, then the record; warm: the record alone. An unknown code is not
    remembered, and a record that moved (retention's erasure) is found again by its index."""
    repo, counter = counted
    expert = new_expert(repo)
    a = meeting(repo, expert, Phase.BOOKED)
    cold = TableRepository(repo.store)  # another process: nothing remembered
    counter.reset()
    with kind("cold"):
        assert cold.get_by_code(a.booking_code) == a
    with kind("warm"):
        assert cold.get_by_code(a.booking_code) == a
    with kind("unknown"):
        assert cold.get_by_code("ZZZZZZZZ") is None
        assert cold.get_by_code("ZZZZZZZZ") is None
    read, index = f"point read {APPOINTMENTS}", f"point read {BOOKING_CODES}"
    assert counter.snapshot() == {
        "cold": Counter({index: 1, read: 1}),
        "warm": Counter({read: 1}),
        "unknown": Counter({index: 2}),
    }
    moved = a.with_changes(customer_id="~moved~", etag=None)
    repo.table(APPOINTMENTS).create_entity(
        {**dict(repo.read(APPOINTMENTS, a.customer_id, a.booking_code)), "PartitionKey": "~moved~"}
    )
    repo.table(BOOKING_CODES).update_entity(
        {"PartitionKey": a.booking_code, "RowKey": INDEX_ROW, "CustomerId": "~moved~"}
    )
    repo.table(APPOINTMENTS).delete_entity(a.customer_id, a.booking_code)
    found = cold.get_by_code(a.booking_code)
    assert found is not None and found.with_changes(etag=None) == moved
    cold.set_meeting(a.booking_code, "m-2", "https://teams.example/join/2")
    assert cold.get_by_code(a.booking_code).meeting_id == "m-2"  # type: ignore[union-attr]


@pytest.fixture
def counted(storage_connection_string: str) -> tuple[TableRepository, RoundTrips]:
    counter = table_transport(transport=RoundTrips)
    assert isinstance(counter, RoundTrips)
    repo = TableRepository.from_connection_string(storage_connection_string, transport=counter)
    for table in (APPOINTMENTS, MEETING_STATE, EXPERT_SLOTS, EXPERTS, FAILURES):
        repo.table(table)  # created once per process, not per request
    return repo, counter


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


def test_a_proxy_in_the_environment_still_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The transport skips requests' per-call look at the environment only when it holds nothing
    for it: with HTTPS_PROXY set, requests still reads it (and NO_PROXY) per URL."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert table_transport().session.trust_env is False  # type: ignore[attr-defined]
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.bank.example:3128")
    session = table_transport().session  # type: ignore[attr-defined]
    assert session.trust_env is True
    url = "https://account.table.core.windows.net/Appointments"
    settings = session.merge_environment_settings(url, {}, None, None, None)
    assert settings["proxies"]["https"] == "http://proxy.bank.example:3128"


def test_a_notification_reads_its_key_and_the_record_and_writes_as_little_as_it_can(
    counted: tuple[TableRepository, RoundTrips],
) -> None:
    """An expert mail: the record (its location cached), the key's row, ``sending``, ``sent``; the
    expert comes from the warm directory. A customer without mail: the record and one transaction
    inserting SMS and push, no state of its own (no mail to resume, and the rows say it was
    delivered). A repeat finds the rows there and writes nothing."""
    import asyncio

    from adapters.notifier import Notifier
    from adapters.tables.mappers import CUSTOMER_OUTBOX, NOTIFICATIONS
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
    # The code index's row is in this process's cache (the booking was made here, as by the
    # same app): a notification reads the record and, if it mails, its key; nothing else.
    record = Counter({f"point read {APPOINTMENTS}": 1})
    assert counter.snapshot() == {
        "expert": record + Counter({f"point read {NOTIFICATIONS}": 1, f"replace/upsert {NOTIFICATIONS}": 2}),
        "customer": record + Counter({"transaction": 1}),
        "again": record + Counter({"transaction": 1}),  # refused whole: the rows exist
    }
    assert len(mailer.sent) == 1
    rows = repo.table(CUSTOMER_OUTBOX).query_entities("PartitionKey eq @pk", parameters={"pk": a.customer_id})
    assert sorted(r["Channel"] for r in rows) == ["push", "sms"]


def test_one_decisions_notifications_share_their_reads_and_writes(
    counted: tuple[TableRepository, RoundTrips],
) -> None:
    """``Notifier.deliver`` with the record already read (as ``apply_phase`` passes it) for the
    customer (no mail address) and the expert: the expert's key, the customer's SMS and push rows
    in one transaction, the expert's ``sending`` and ``sent``. A repeat reads the expert's key and
    finds the customer's rows there."""
    import asyncio

    from adapters.notifier import SENT, SKIPPED, Notifier, Request
    from adapters.tables.mappers import CUSTOMER_OUTBOX, NOTIFICATIONS
    from tests.fakes import RecordingMailer
    from tests.integration.test_notifier import setup

    repo, counter = counted
    a = setup(repo, "fi", email=None)
    directory = ExpertDirectory(repo)
    mailer = RecordingMailer()
    notifier = Notifier(
        repo, mailer, Settings.from_env({"DEV_MODE": "true"}), FakeClock(), directory=directory
    )
    directory.all()
    repo.table(NOTIFICATIONS), repo.table(CUSTOMER_OUTBOX)  # created on first use: not counted
    requests = [Request("join_open", "customer", "k-c"), Request("join_open", "expert", "k-e")]
    a = a.with_changes(join_url="https://teams.example/join")

    counter.reset()
    with kind("first"):
        assert asyncio.run(notifier.deliver(a.booking_code, requests, a)) == {"k-c": SENT, "k-e": SENT}
    with kind("again"):
        assert asyncio.run(notifier.deliver(a.booking_code, requests, a)) == {"k-c": SKIPPED, "k-e": SKIPPED}
    assert counter.snapshot() == {
        "first": Counter(
            {f"point read {NOTIFICATIONS}": 1, "transaction": 1, f"replace/upsert {NOTIFICATIONS}": 2}
        ),
        "again": Counter({f"point read {NOTIFICATIONS}": 1, "transaction": 1}),
    }
    assert [m.to for m in mailer.sent] == ["maija@pankki.example"]  # the customer gave no address
    rows = repo.table(NOTIFICATIONS).query_entities("PartitionKey eq @pk", parameters={"pk": a.booking_code})
    assert [r["State"] for r in rows] == ["sent"]  # the expert's; the customer's rows are its record


def test_a_transaction_starts_no_thread(
    storage_connection_string: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """azure-core would start seven threads for a transaction of three rows (request and answer);
    the app's clients handle the parts in turn. Each part still gets its own x-ms-date (the part
    policy ran), the rows land together, and a conflicting part still fails the whole
    transaction with the SDK's error."""
    import threading

    from azure.core.pipeline import Pipeline
    from azure.data.tables import TableTransactionError

    from adapters.tables.multipart import lean_transactions

    repo = TableRepository.from_connection_string(storage_connection_string)
    table = f"Parts{uuid.uuid4().hex[:8]}"
    client = repo.table(table)
    assert lean_transactions() is True
    assert lean_transactions() is True  # idempotent
    started: list[str] = []
    dated: list[str] = []
    real_start, real_prepare = threading.Thread.start, Pipeline._prepare_multipart_mixed_request

    def start(self: threading.Thread) -> None:
        started.append(self.name)
        real_start(self)

    def prepare(request: object) -> None:
        real_prepare(request)
        info = request.multipart_mixed_info  # type: ignore[attr-defined]
        if not info or not info[0][0].multipart_mixed_info:
            return  # not a transaction's batch (every request passes here)
        changeset = info[0][0]
        dated.extend(part.headers.get("x-ms-date", "") for part in changeset.multipart_mixed_info[0])

    monkeypatch.setattr(threading.Thread, "start", start)
    monkeypatch.setattr(Pipeline, "_prepare_multipart_mixed_request", staticmethod(prepare))
    client.submit_transaction([("create", {"PartitionKey": "p", "RowKey": r, "n": 1}) for r in "abc"])
    assert started == []
    assert len(dated) == 3 and all(dated)
    assert sorted(e["RowKey"] for e in client.query_entities("PartitionKey eq 'p'")) == ["a", "b", "c"]
    with pytest.raises(TableTransactionError):
        client.submit_transaction([("create", {"PartitionKey": "p", "RowKey": r}) for r in "da"])
    assert [e["RowKey"] for e in client.query_entities("RowKey eq 'd'")] == []
    assert started == []


def _batch(boundaries: tuple[str, str], rows: list[tuple[str, str, bytes | None]]) -> Any:
    """A Table transaction's request as ``TablesBaseClient._batch_send`` builds it: a batch of one
    changeset of operations, each part's headers given (no policy, so both writers see the same)."""
    from azure.core.rest import HttpRequest

    parts = [
        HttpRequest(
            method,
            f"http://127.0.0.1:10002/devstoreaccount1/Appointments(PartitionKey='c',RowKey='{row}')",
            headers={"Accept": "application/json;odata=minimalmetadata", "If-Match": "*", "x-ms-date": "now"},
            content=body,
        )
        for method, row, body in rows
    ]
    changeset = HttpRequest("POST", "")
    changeset.set_multipart_mixed(*parts, policies=[], boundary=boundaries[0])
    batch = HttpRequest(
        "POST", "http://127.0.0.1:10002/devstoreaccount1/$batch", headers={"x-ms-version": "2019-02-02"}
    )
    batch.set_multipart_mixed(changeset, policies=[], enforce_https=False, boundary=boundaries[1])
    return batch


def test_a_transactions_body_is_the_bytes_azure_core_would_write() -> None:
    """The direct writer against azure-core's own (``_prepare_multipart_body_helper``, e-mail
    based): the same body, Content-Type and Content-Length, a row with non-ASCII text (escaped,
    as the SDK's ``json.dumps`` writes it: azure-core's writer fails on raw UTF-8 in a part) and
    a bodiless delete included, and the next Content-ID it returns."""
    import json

    from azure.core.utils._pipeline_transport_rest_shared import _prepare_multipart_body_helper

    from adapters.tables.multipart import write_body

    name = json.dumps({"PartitionKey": "c", "ExpertName": "Åsa Mäkelä-Öhman"})
    rows: list[tuple[str, str, bytes | None]] = [
        ("PATCH", "a", name.encode("ascii")),
        ("PUT", "b", json.dumps({"n": 1, "text": "rivi\\nkaksi"}).encode("ascii")),
        ("DELETE", "c", None),
    ]
    for _ in range(3):
        boundaries = (f"changeset_{uuid.uuid4()}", f"batch_{uuid.uuid4()}")
        theirs, ours = _batch(boundaries, rows), _batch(boundaries, rows)
        assert write_body(ours, 5) == _prepare_multipart_body_helper(theirs, 5) == 8
        assert ours.content == theirs.content
        assert dict(ours.headers) == dict(theirs.headers)
