"""sendMail at most once per key: the real notifier on Azurite, the real adapter on the emulator.

The two ways a mail used to go twice: a 5xx (or a lost answer) after Graph had accepted it,
and a crash between the send and the record. Both are staged for real here: the emulator
answers 503 *after* recording the mail, and a child process is SIGKILLed right after the
send returned and before the notifier could record it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import httpx
import pytest

from adapters.graph import GraphMailSender, build_graph_client
from adapters.notifier import Notifier, _key_hash
from adapters.tables import TableRepository
from adapters.tables.mappers import NOTIFICATIONS
from appointments.model import Appointment
from appointments.ports import TransientGatewayError
from appointments.settings import Settings
from devhost.graph_emulator import Fault, GraphEmulator
from tests.fakes import FakeClock
from tests.integration.graph_conftest import (  # noqa: F401 - imported fixtures register with pytest
    SENDER,
    graph_fixture,
    graph_server_fixture,
)
from tests.integration.test_notifier import setup

START = datetime(2030, 3, 4, 10, 30, tzinfo=UTC)


@pytest.fixture
def repo(storage_connection_string: str) -> TableRepository:
    return TableRepository.from_connection_string(storage_connection_string)


@pytest.fixture
def booking(repo: TableRepository) -> Appointment:
    """An online booking whose expert gets mail (the notifier tests' own setup)."""
    return setup(repo, "fi", email=None)


def settings_for(graph: GraphEmulator) -> Settings:
    return Settings.from_env(
        {"DEV_MODE": "true", "GRAPH_BASE_URL": graph.base_url, "GRAPH_SENDER_MAILBOX": SENDER}
    )


async def send_once(repo: TableRepository, graph: GraphEmulator, code: str, key: str) -> bool:
    settings = settings_for(graph)
    async with httpx.AsyncClient() as http:
        mailer = GraphMailSender(build_graph_client(settings, http_client=http), SENDER)
        notifier = Notifier(repo, mailer, settings, FakeClock())
        return await notifier.send(booking_code=code, kind="new_booking", recipient="expert", key=key)


def test_a_503_after_graph_accepted_the_mail_does_not_send_it_again(
    repo: TableRepository, graph: GraphEmulator, booking: Appointment
) -> None:
    """The first attempt fails after the mail is recorded; the retry finds it in Sent Items, sends nothing."""
    key = f"{booking.booking_code}/mail-503"
    graph.state.add_fault(Fault(path=r"/sendMail$", status=503, after=True))

    with pytest.raises(TransientGatewayError):
        asyncio.run(send_once(repo, graph, booking.booking_code, key))
    assert len(graph.state.mail) == 1
    assert asyncio.run(send_once(repo, graph, booking.booking_code, key)) is True

    assert len(graph.state.mail) == 1 and graph.state.duplicate_mail() == {}
    assert len(graph.state.received("POST", r"/sendMail$")) == 1
    assert graph.state.received("GET", r"/mailFolders/sentitems/messages$")
    row = repo.read(NOTIFICATIONS, booking.booking_code, _key_hash(key))
    assert row is not None and row["State"] == "sent"


def test_an_attempt_that_never_sent_sends_on_the_retry(
    repo: TableRepository, graph: GraphEmulator, booking: Appointment
) -> None:
    """A 503 before Graph took it: Sent Items has nothing, so the retry sends, once."""
    key = f"{booking.booking_code}/mail-early-503"
    graph.state.add_fault(Fault(path=r"/sendMail$", status=503))

    with pytest.raises(TransientGatewayError):
        asyncio.run(send_once(repo, graph, booking.booking_code, key))
    assert graph.state.mail == []
    assert asyncio.run(send_once(repo, graph, booking.booking_code, key)) is True
    assert len(graph.state.mail) == 1


def test_a_throttled_send_is_resent_at_once_and_a_503_is_not(
    repo: TableRepository, graph: GraphEmulator, booking: Appointment
) -> None:
    """Graph refuses a throttled request before acting on it, so the transport resends sendMail
    after a 429 within the same attempt (one mail). After a 503 it does not: the mail may have
    gone, and only the caller's next attempt, which asks Sent Items first, may send it."""
    key = f"{booking.booking_code}/mail-429"
    graph.state.add_fault(Fault(path=r"/sendMail$", status=429, retry_after="1"))
    assert asyncio.run(send_once(repo, graph, booking.booking_code, key)) is True
    assert [r.status for r in graph.state.received("POST", r"/sendMail$")] == [429, 202]
    assert len(graph.state.mail) == 1

    graph.state.add_fault(Fault(path=r"/sendMail$", status=503))
    with pytest.raises(TransientGatewayError):
        asyncio.run(send_once(repo, graph, booking.booking_code, f"{booking.booking_code}/mail-503-once"))
    assert [r.status for r in graph.state.received("POST", r"/sendMail$")] == [429, 202, 503]


CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    import httpx
    from adapters.graph import GraphMailSender, build_graph_client
    from adapters.notifier import Notifier
    from adapters.tables import TableRepository
    from appointments.settings import Settings
    from tests.fakes import FakeClock

    storage, base_url, sender, code, key = sys.argv[1:]

    async def main():
        settings = Settings.from_env(
            {"DEV_MODE": "true", "GRAPH_BASE_URL": base_url, "GRAPH_SENDER_MAILBOX": sender}
        )
        async with httpx.AsyncClient() as http:
            mailer = GraphMailSender(build_graph_client(settings, http_client=http), sender)
            real_send = mailer.send

            async def send_then_die(message):
                await real_send(message)
                os.kill(os.getpid(), signal.SIGKILL)  # after the send, before the record

            mailer.send = send_then_die
            repo = TableRepository.from_connection_string(storage)
            await Notifier(repo, mailer, settings, FakeClock()).send(
                booking_code=code, kind="new_booking", recipient="expert", key=key
            )

    asyncio.run(main())
    """
)


def test_a_crash_between_the_send_and_the_record_does_not_send_it_again(
    repo: TableRepository, graph: GraphEmulator, booking: Appointment, storage_connection_string: str
) -> None:
    """The worker is killed right after sendMail's 202; the next attempt sees Sent Items and sends nothing."""
    key = f"{booking.booking_code}/mail-kill"
    child = subprocess.run(  # noqa: S603 - our own interpreter running our own script
        [
            sys.executable,
            "-c",
            CHILD,
            storage_connection_string,
            graph.base_url,
            SENDER,
            booking.booking_code,
            key,
        ],
        cwd=os.getcwd(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    assert len(graph.state.mail) == 1
    row = repo.read(NOTIFICATIONS, booking.booking_code, _key_hash(key))
    assert row is not None and row["State"] == "sending"  # the intent, recorded before the send

    assert asyncio.run(send_once(repo, graph, booking.booking_code, key)) is True
    assert len(graph.state.mail) == 1 and graph.state.duplicate_mail() == {}
