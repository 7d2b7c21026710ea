"""The verify path against a real Azurite: what it writes, and how many table operations it takes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.pipeline.transport import HttpRequest, RequestsTransport
from azure.data.tables import TableServiceClient

from adapters.tables import TableRepository
from appointments.catalogue import Channel
from appointments.codes import new_booking_code
from appointments.errors import CodeLocked, NoCode, WrongCode
from appointments.identity_service import IdentityService
from appointments.lifecycle import EventType
from appointments.model import Appointment, Phase
from appointments.service import AppointmentService
from appointments.settings import Settings
from tests.fakes import FakeClock

START = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)


class CountingTransport(RequestsTransport):
    """Counts the HTTP requests the Table client sends: one per table operation (a batch is one)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    def send(self, request: HttpRequest, **kwargs: Any) -> Any:  # type: ignore[override]  # the SDK's overloads
        self.requests.append(f"{request.method} {request.url.split('?')[0]}")
        return super().send(request, **kwargs)


@pytest.fixture
def counted(storage_connection_string: str) -> Iterator[tuple[IdentityService, CountingTransport]]:
    policy = CountingTransport()
    service = TableServiceClient.from_connection_string(storage_connection_string, transport=policy)
    repo = TableRepository(service)
    clock = FakeClock(START - timedelta(minutes=5))
    settings = Settings.from_env({"DEV_MODE": "true", "AzureWebJobsStorage": storage_connection_string})
    appointments = AppointmentService(repo, clock, settings)
    yield IdentityService(appointments, repo, clock, settings), policy


def in_lobby(identity: IdentityService) -> Appointment:
    repo = identity.repo
    a = Appointment(
        booking_code=new_booking_code(),
        customer_id=f"cust-{uuid.uuid4().hex[:8]}",
        expert_id="expert-1",
        channel=Channel.ONLINE,
        topic_id="loans.home-loan",
        start=START,
        duration_minutes=45,
        language="fi",
        phone="+358401234567",
        phase=Phase.LOBBY,
    )
    repo.create(a, phone_hmac="h", cells=[], idempotency_key=None, fingerprint="")
    return a


def test_a_right_code_takes_four_table_operations_and_the_phase_write_one(
    counted: tuple[IdentityService, CountingTransport],
) -> None:
    """Read record, counter and code; one batch with the outbox entry and the audit row.
    Before: 6 + 3 for the phase, then 5 + 1 (the audit row on its own)."""
    identity, policy = counted
    warm = in_lobby(identity)  # creates the tables: not part of the figure
    identity.verify(
        warm.customer_id, warm.booking_code, {"code": identity.issue("expert-1", warm.booking_code).code}
    )
    a = in_lobby(identity)
    issued = identity.issue("expert-1", a.booking_code)
    identity.appointments.advance_phase(issued.appointment, EventType.CODE_ISSUED)  # as the trigger does
    policy.requests.clear()
    verified = identity.verify(a.customer_id, a.booking_code, {"code": issued.code})
    assert len(policy.requests) == 4, policy.requests
    assert [e.event for e in verified.events] == [EventType.CODE_VERIFIED]
    assert [e.action for e in identity.repo.audit_trail(a.booking_code)] == [
        "booked",
        "code_issued",
        "identity_verified",
    ]
    policy.requests.clear()
    identity.appointments.advance_phase(verified.appointment, EventType.CODE_VERIFIED)
    assert len(policy.requests) == 1, policy.requests  # If-Match on the ETag already read
    assert [e.event for e in identity.appointments.outbox.pending(a.booking_code)] == [
        "CodeIssued",
        "CodeVerified",
    ]


def test_the_outcomes_are_domain_errors_and_the_lock_commits_its_event(
    counted: tuple[IdentityService, CountingTransport],
) -> None:
    """Wrong twice (422), then locked (423 carrying CodeLocked, committed); afterwards no code (409)."""
    identity, _ = counted
    a = in_lobby(identity)
    issued = identity.issue("expert-1", a.booking_code)
    wrong = "000000" if issued.code != "000000" else "111111"
    for left in (2, 1):
        with pytest.raises(WrongCode) as err:
            identity.verify(a.customer_id, a.booking_code, {"code": wrong})
        assert err.value.attempts_left == left
    with pytest.raises(CodeLocked) as locked:
        identity.verify(a.customer_id, a.booking_code, {"code": wrong})
    assert [getattr(e, "event", None) for e in locked.value.committed] == ["CodeLocked"]
    pending = identity.appointments.outbox.pending(a.booking_code)
    assert [e.event for e in pending] == ["CodeIssued", "CodeLocked"]
    identity.clock.advance(seconds=2)  # type: ignore[attr-defined]  # the FakeClock: past the 1 s delay
    with pytest.raises(CodeLocked):  # the right code no longer helps
        identity.verify(a.customer_id, a.booking_code, {"code": issued.code})
    identity.appointments.outbox.ack(a.booking_code, [e.entry_id for e in pending])
    assert identity.appointments.outbox.pending(a.booking_code) == []
    b = in_lobby(identity)
    with pytest.raises(NoCode):
        identity.verify(b.customer_id, b.booking_code, {"code": "123456"})
