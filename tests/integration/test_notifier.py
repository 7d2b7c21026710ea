"""Notifications rendered and delivered through the real renderer, Azurite and a recording mailer."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from adapters.notifier import Notifier
from adapters.tables import TableRepository
from appointments.catalogue import Channel
from appointments.model import Appointment, Expert
from appointments.ports import MailMessage, TransientGatewayError
from appointments.settings import Settings
from tests.fakes import FakeClock, RecordingMailer

START = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)  # maanantai 7.12.2026 klo 12.30 in Helsinki


@pytest.fixture
def repo(storage_connection_string: str) -> TableRepository:
    return TableRepository.from_connection_string(storage_connection_string)


def setup(
    repo: TableRepository,
    language: str,
    email: str | None = "asiakas@example.fi",
    channel: Channel = Channel.ONLINE,
) -> Appointment:
    expert = Expert(
        str(uuid.uuid4()),
        "Maija Suomalainen",
        "maija@pankki.example",
        ("loans.home-loan",),
        ("fi", "sv", "en"),
    )
    repo.put_expert(expert)
    code = uuid.uuid4().hex[:8].upper()
    a = Appointment(
        code,
        f"c-{code}",
        expert.expert_id,
        channel,
        "loans.home-loan",
        START,
        45,
        language,
        "+358401234567",
        email,
        join_url="https://teams.example/join/1",
    )
    return repo.create(a, phone_hmac="x", cells=[], idempotency_key=None, fingerprint="").appointment


def notifier(repo: TableRepository) -> tuple[Notifier, RecordingMailer]:
    mailer = RecordingMailer()
    settings = Settings.from_env({"DEV_MODE": "true", "PORTAL_BASE_URL": "https://portal.example"})
    return Notifier(repo, mailer, settings, FakeClock()), mailer


def send(n: Notifier, code: str, kind: str, recipient: str, key: str) -> bool:
    return asyncio.run(n.send(booking_code=code, kind=kind, recipient=recipient, key=key))


@pytest.mark.parametrize(
    ("language", "subject_word", "body_words"),
    [
        (
            "fi",
            "Vahvistus",
            ["maanantai 7.12.2026 klo 12.30", "Lainat, Asuntolainaneuvottelu", "tallennetaan"],
        ),
        ("sv", "Bekräftelse", ["måndag 7.12.2026 kl. 12.30", "Lån, Bostadslånemöte"]),
        ("en", "confirm", ["Monday 7 December 2026 at 12:30", "Loans, Home loan consultation", "recorded"]),
    ],
)
def test_the_booking_confirmation_speaks_the_customers_language(
    repo: TableRepository, language: str, subject_word: str, body_words: list[str]
) -> None:
    """Confirmation by mail and outbox, in fi/sv/en, with Helsinki time, topic and the recording notice."""
    a = setup(repo, language)
    n, mailer = notifier(repo)
    assert send(n, a.booking_code, "booking_confirmation", "customer", "k1")
    [mail] = mailer.sent
    assert mail.to == "asiakas@example.fi" and subject_word.lower() in mail.subject.lower()
    for word in body_words:
        assert word in mail.text and word in mail.html
    assert a.booking_code in mail.text and "+358401234567" not in mail.text
    assert "09 123 4567" in mail.text and "09 123 4567" in mail.html  # BANK_SERVICE_PHONE, to call
    outbox = list(
        repo.table("Outbox").query_entities("PartitionKey eq @pk", parameters={"pk": a.customer_id})
    )
    assert sorted(r["Channel"] for r in outbox) == ["push", "sms"]


def test_each_key_is_sent_once(repo: TableRepository) -> None:
    """A retried activity with the same key sends nothing more."""
    a = setup(repo, "fi")
    n, mailer = notifier(repo)
    assert send(n, a.booking_code, "customer_in_lobby", "expert", "once")
    assert not send(n, a.booking_code, "customer_in_lobby", "expert", "once")
    assert len(mailer.sent) == 1 and mailer.sent[0].idempotency_key == "once"


def test_expert_mail_is_finnish_and_carries_the_teams_link(repo: TableRepository) -> None:
    """The expert reads Finnish even when the customer booked in Swedish, and gets the join link."""
    a = setup(repo, "sv")
    n, mailer = notifier(repo)
    assert send(n, a.booking_code, "join_open", "expert", "k")
    [mail] = mailer.sent
    assert mail.to == "maija@pankki.example"
    assert "https://teams.example/join/1" in mail.html and "Asuntolainaneuvottelu" in mail.text
    assert "+358401234567" not in mail.text


def test_customers_without_email_get_only_the_outbox(repo: TableRepository) -> None:
    """No address: SMS and push rows, no mail."""
    a = setup(repo, "fi", email=None, channel=Channel.PHONE)
    n, mailer = notifier(repo)
    assert send(n, a.booking_code, "booking_confirmation", "customer", "k")
    assert mailer.sent == []


def test_the_expert_gets_a_calendar_entry_that_moves_and_cancels(repo: TableRepository) -> None:
    """New booking: REQUEST; reschedule: same UID, higher SEQUENCE; cancel: CANCEL. No customer data."""
    a = setup(repo, "fi")
    n, mailer = notifier(repo)
    assert send(n, a.booking_code, "new_booking", "expert", "new")
    [(name, content_type, ics)] = mailer.sent[0].attachments
    text = ics.decode()
    assert name == f"{a.booking_code}.ics" and content_type.startswith("text/calendar")
    assert "METHOD:REQUEST" in text and f"UID:{a.booking_code}@verkkoneuvottelu" in text
    assert "DTSTART:20261207T103000Z" in text and "SEQUENCE:0" in text and "\r\n" in text
    assert "+358" not in text and "c-" not in text
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    assert asyncio.run(
        n.send(booking_code=a.booking_code, kind="cancelled", recipient="expert", key="cancel")
    )
    cancel = mailer.sent[-1].attachments[0][2].decode()
    assert "METHOD:CANCEL" in cancel and "STATUS:CANCELLED" in cancel and "SEQUENCE:1" in cancel
    assert send(n, a.booking_code, "code_locked", "expert", "locked")
    assert mailer.sent[-1].attachments == ()  # only bookings, moves and cancels touch the calendar


def test_a_failed_mail_among_a_decisions_notifications_is_returned_and_the_rest_are_sent(
    repo: TableRepository,
) -> None:
    """``deliver``: the expert's mail fails, the customer's goes out and is marked sent; the failure
    comes back as the exception (not raised), its key stays at ``sending``, and ``send`` (the
    retry) sends only that mail."""
    from adapters.notifier import SENT, Request
    from adapters.tables.mappers import NOTIFICATIONS

    a = setup(repo, "fi")
    n, mailer = notifier(repo)
    recorded = mailer.send

    async def refuse_the_expert(message: MailMessage) -> None:
        if message.to == "maija@pankki.example":
            raise TransientGatewayError("503 from Graph")
        await recorded(message)

    mailer.send = refuse_the_expert  # type: ignore[method-assign]
    requests = [Request("join_open", "customer", "k-c"), Request("join_open", "expert", "k-e")]
    outcomes = asyncio.run(n.deliver(a.booking_code, requests))
    assert outcomes["k-c"] is SENT and isinstance(outcomes["k-e"], TransientGatewayError)
    assert [m.to for m in mailer.sent] == ["asiakas@example.fi"]
    rows = repo.table(NOTIFICATIONS).query_entities("PartitionKey eq @pk", parameters={"pk": a.booking_code})
    assert sorted(r["State"] for r in rows) == ["sending", "sent"]
    mailer.send = recorded  # type: ignore[method-assign]
    assert send(n, a.booking_code, "join_open", "expert", "k-e")
    assert not send(n, a.booking_code, "join_open", "customer", "k-c")
    assert [m.to for m in mailer.sent] == ["asiakas@example.fi", "maija@pankki.example"]


def test_a_retry_never_queues_an_sms_the_bank_has_sent_again(repo: TableRepository) -> None:
    """No mail address: the SMS and push rows are the notification's only record. The bank's sender
    marks the SMS sent; the activity runs again (a Durable retry) and leaves the row as it is."""
    a = setup(repo, "fi", email=None, channel=Channel.PHONE)
    n, mailer = notifier(repo)
    assert send(n, a.booking_code, "booking_confirmation", "customer", "k")
    outbox = repo.table("Outbox")
    [sms] = [
        r
        for r in outbox.query_entities("PartitionKey eq @pk", parameters={"pk": a.customer_id})
        if r["Channel"] == "sms"
    ]
    outbox.update_entity({"PartitionKey": a.customer_id, "RowKey": sms["RowKey"], "State": "sent"})
    assert not send(n, a.booking_code, "booking_confirmation", "customer", "k")
    rows = outbox.query_entities("PartitionKey eq @pk", parameters={"pk": a.customer_id})
    assert sorted((r["Channel"], r["State"]) for r in rows) == [("push", "pending"), ("sms", "sent")]
    assert mailer.sent == []
