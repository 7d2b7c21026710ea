"""Mail and calendar availability through the real msgraph-sdk against the Graph emulator."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import pytest

from appointments.ports import BusyInterval, MailMessage, PermanentGatewayError
from devhost.graph_emulator import GraphEmulator
from tests.integration.graph_conftest import (  # noqa: F401 - imported fixtures register with pytest
    ORGANIZER,
    SENDER,
    START,
    graph_fixture,
    graph_ports,
    graph_server_fixture,
)

ICS = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"


def mail(
    key: str = "notify-K7Q2MX-join_open", attachments: tuple[tuple[str, str, bytes], ...] = ()
) -> MailMessage:
    return MailMessage(
        to=ORGANIZER,
        subject="Asiakas odottaa aulassa",
        text="Asiakas odottaa.",
        html="<p>Asiakas <b>odottaa</b>.</p>",
        idempotency_key=key,
        attachments=attachments,
    )


def test_mail_is_sent_as_html_with_attachment_and_idempotency_header(graph: GraphEmulator) -> None:
    """sendMail from the service mailbox: HTML body, attachment, X-Idempotency-Key, kept in Sent Items."""

    async def scenario() -> None:
        async with graph_ports(graph.base_url) as ports:
            await ports.mail.send(mail(attachments=(("tapaaminen.ics", "text/calendar", ICS),)))

    asyncio.run(scenario())

    [sent] = graph.state.mail
    assert sent["sender"] == SENDER
    assert sent["saveToSentItems"] is True  # the Sent Items copy is how a retry finds it
    assert sent["idempotencyKey"] == "notify-K7Q2MX-join_open"
    message = sent["message"]
    assert message["subject"] == "Asiakas odottaa aulassa"
    assert message["body"] == {"contentType": "html", "content": "<p>Asiakas <b>odottaa</b>.</p>"}
    assert message["toRecipients"] == [{"emailAddress": {"address": ORGANIZER}}]
    [attachment] = message["attachments"]
    assert attachment["@odata.type"] == "#microsoft.graph.fileAttachment"
    assert attachment["name"] == "tapaaminen.ics"
    assert attachment["contentType"] == "text/calendar"
    assert base64.b64decode(attachment["contentBytes"]) == ICS


def test_a_resent_mail_shows_up_as_a_duplicate(graph: GraphEmulator) -> None:
    """sendMail is not idempotent; the header lets the emulator count what the caller re-sent."""

    async def scenario() -> None:
        async with graph_ports(graph.base_url) as ports:
            await ports.mail.send(mail("k-1"))
            await ports.mail.send(mail("k-1"))
            await ports.mail.send(mail("k-2"))

    asyncio.run(scenario())
    assert graph.state.duplicate_mail() == {"k-1": 2}


def test_oversized_attachments_are_refused_before_sending(graph: GraphEmulator) -> None:
    """Graph refuses sendMail requests over 4 MB; the adapter says so without trying."""
    big = (("big.pdf", "application/pdf", b"x" * (3 * 1024 * 1024 + 1)),)

    async def scenario() -> None:
        async with graph_ports(graph.base_url) as ports:
            await ports.mail.send(mail(attachments=big))

    with pytest.raises(PermanentGatewayError, match="attachments"):
        asyncio.run(scenario())
    assert graph.state.received() == []


def test_schedule_reports_busy_out_of_office_and_tentative_but_not_free(graph: GraphEmulator) -> None:
    """getSchedule items with status busy/oof/tentative become BusyIntervals, in UTC, sorted."""
    graph.state.set_busy(
        ORGANIZER,
        [
            {"start": "2030-03-04T13:00:00Z", "end": "2030-03-04T14:00:00Z", "status": "oof"},
            {"start": "2030-03-04T08:00:00Z", "end": "2030-03-04T09:00:00Z", "status": "busy"},
            {"start": "2030-03-04T10:00:00Z", "end": "2030-03-04T10:30:00Z", "status": "free"},
            {"start": "2030-03-04T11:00:00Z", "end": "2030-03-04T11:30:00Z", "status": "tentative"},
            {"start": "2030-03-04T12:00:00Z", "end": "2030-03-04T12:30:00Z", "status": "workingElsewhere"},
        ],
    )
    day = START.replace(hour=6, minute=0)

    async def scenario() -> dict[str, list[BusyInterval]]:
        async with graph_ports(graph.base_url) as ports:
            return await ports.meetings.get_schedule(
                [ORGANIZER, "pekka@pankki.example"], day, day + timedelta(hours=12)
            )

    busy = asyncio.run(scenario())

    def at(hour: int, minute: int = 0) -> datetime:
        return datetime(2030, 3, 4, hour, minute, tzinfo=UTC)

    assert busy[ORGANIZER] == [
        BusyInterval(at(8), at(9)),
        BusyInterval(at(11), at(11, 30)),
        BusyInterval(at(13), at(14)),
    ]
    assert busy["pekka@pankki.example"] == []
    [request] = graph.state.received("POST", "getSchedule")
    assert request.headers.get("prefer") == 'outlook.timezone="UTC"'
    assert request.body["StartTime"] == {"dateTime": "2030-03-04T06:00:00", "timeZone": "UTC"}


def test_schedule_for_nobody_makes_no_call(graph: GraphEmulator) -> None:
    """An empty list of experts needs no round trip."""

    async def scenario() -> dict[str, list[BusyInterval]]:
        async with graph_ports(graph.base_url) as ports:
            return await ports.meetings.get_schedule([], START, START + timedelta(hours=1))

    assert asyncio.run(scenario()) == {}
    assert graph.state.received() == []


def test_attachments_just_under_graphs_three_megabytes_encoded_are_sent(graph: GraphEmulator) -> None:
    """The cap is on the base64 size Graph receives: 2,200,000 raw bytes (2.93 MB encoded) go."""
    fits = (("fits.pdf", "application/pdf", b"x" * 2_200_000),)

    async def scenario() -> None:
        async with graph_ports(graph.base_url) as ports:
            await ports.mail.send(mail(attachments=fits))

    asyncio.run(scenario())
    assert len(graph.state.mail) == 1


def test_many_experts_over_a_long_period_are_asked_in_graphs_batches(graph: GraphEmulator) -> None:
    """45 experts over 100 days: calls of at most 20 schedules and under 62 days, every expert answered."""
    experts = [f"asiantuntija{i:02d}@pankki.example" for i in range(45)]
    graph.state.set_busy(experts[44], [{"start": "2030-05-20T08:00:00Z", "end": "2030-05-20T09:00:00Z"}])
    start = datetime(2030, 3, 1, tzinfo=UTC)

    async def scenario() -> dict[str, list[BusyInterval]]:
        async with graph_ports(graph.base_url) as ports:
            return await ports.meetings.get_schedule(experts, start, start + timedelta(days=100))

    busy = asyncio.run(scenario())

    assert sorted(busy) == sorted(experts)
    assert busy[experts[44]] == [
        BusyInterval(datetime(2030, 5, 20, 8, tzinfo=UTC), datetime(2030, 5, 20, 9, tzinfo=UTC))
    ]
    calls = graph.state.received("POST", "getSchedule")
    assert [r.status for r in calls] == [200] * 6  # 3 batches x 2 periods
    for call in calls:
        assert len(call.body["Schedules"]) <= 20
        period = datetime.fromisoformat(call.body["EndTime"]["dateTime"]) - datetime.fromisoformat(
            call.body["StartTime"]["dateTime"]
        )
        assert period < timedelta(days=62)


def test_an_unreadable_calendar_is_unknown_not_free_and_ops_see_it(
    graph: GraphEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Graph's error item leaves that expert out of the answer, with a warning that names no address."""
    graph.state.unreadable.add("pekka@pankki.example")

    async def scenario() -> dict[str, list[BusyInterval]]:
        async with graph_ports(graph.base_url) as ports:
            return await ports.meetings.get_schedule(
                [ORGANIZER, "pekka@pankki.example"], START, START + timedelta(hours=8)
            )

    with caplog.at_level("WARNING", logger="adapters.graph.schedule"):
        busy = asyncio.run(scenario())

    assert list(busy) == [ORGANIZER]
    [record] = [r for r in caplog.records if r.name == "adapters.graph.schedule"]
    assert "could not read 1 of 2 calendars" in record.getMessage()
    assert "ErrorMailRecipientNotFound" in record.getMessage()
    assert "@" not in record.getMessage()


def test_a_slots_page_asked_again_within_the_minute_is_served_from_the_cache(graph: GraphEmulator) -> None:
    """The same experts and period twice: one getSchedule call, the same answer."""
    graph.state.set_busy(ORGANIZER, [{"start": "2030-03-04T11:00:00Z", "end": "2030-03-04T12:00:00Z"}])

    async def scenario() -> list[dict[str, list[BusyInterval]]]:
        async with graph_ports(graph.base_url) as ports:
            window = (START, START + timedelta(hours=8))
            return [await ports.meetings.get_schedule([ORGANIZER], *window) for _ in range(3)]

    first, *again = asyncio.run(scenario())
    assert all(answer == first for answer in again) and first[ORGANIZER]
    assert len(graph.state.received("POST", "getSchedule")) == 1
