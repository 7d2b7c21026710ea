"""The retention timer triggers on the devhost's virtual clock, against the whole app.

A stack of its own (its own Azurite): the sweeps scan whole tables, and moving this clock 91 days
must not erase or purge what the other e2e modules are still looking at.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from appointments.retention import ERASED_PARTITION
from devhost import azurite
from tests.e2e.conftest import MATLEENA, Stack, expert_headers, running_stack
from tests.e2e.test_lifecycle import join, to_window

EMAIL = f"retention-{uuid.uuid4().hex[:8]}@example.fi"


@pytest.fixture(scope="module")
def own_stack() -> Iterator[Stack]:
    server = azurite.start()
    try:
        with running_stack(server.connection_string) as stack:
            yield stack
    finally:
        server.stop()


def test_an_expired_hold_is_swept_by_the_quarter_hourly_timer(own_stack: Stack) -> None:
    """retention_slots runs every 15 minutes of virtual time and frees holds that expired."""
    stack = own_stack
    start = stack.slot(days=3, hour=13)
    body = {"expertId": MATLEENA.expert_id, "start": start.isoformat(), "durationMinutes": 45}
    hold = stack.as_customer("retention-holder", "POST", "/api/slots/hold", json=body)
    assert hold.status_code == 201, hold.text
    hold_id = hold.json()["holdId"]
    assert stack.repo.get_hold(hold_id) is not None
    stack.host.advance(minutes=16)  # past the 10-minute hold and one 15-minute tick
    assert stack.repo.get_hold(hold_id) is None
    assert "retention sweep slots" in stack.host.output()


def test_a_finished_appointment_is_erased_and_purged_by_the_nightly_timers(own_stack: Stack) -> None:
    """91 days after its end: the record keeps code, times, phase and expert; the history is gone."""
    stack = own_stack
    customer = f"retention-{uuid.uuid4().hex[:8]}"
    booked = stack.book(customer, stack.slot(days=2, hour=9), email=EMAIL, extraInfo="Matti Meikäläinen")
    code = booked["bookingCode"]
    to_window(stack, booked["start"])
    join(stack, customer, code)
    ended = stack.host.post(
        f"/api/expert/appointments/{code}/end", headers=expert_headers(MATLEENA.expert_id)
    )
    assert ended.status_code == 202, ended.text
    assert stack.runtime_status(code) == "Completed"

    stack.host.advance(days=29)  # not yet: the record keeps its data, the history its events
    record = stack.repo.get_by_code(code)
    assert record is not None and record.email == EMAIL and stack.host.status(f"appt-{code}")

    stack.host.advance(days=62)  # 91 days after the end: both nightly sweeps have run
    record = stack.repo.get_by_code(code)
    assert record is not None
    assert (record.customer_id, record.phone, record.email, record.extra_info) == (
        ERASED_PARTITION,
        "",
        None,
        "",
    )
    assert (record.phase.value, record.expert_id, record.booking_code) == ("ended", MATLEENA.expert_id, code)
    assert stack.host.status(f"appt-{code}") == {}
    output = stack.host.output()
    assert "retention sweep personal_data" in output and "retention sweep durable" in output
    assert "retention_durable failed" not in output
