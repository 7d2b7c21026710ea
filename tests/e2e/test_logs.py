"""Every log record of a whole lifecycle, as the devhost prints them with LOG_FORMAT=json.

The customer books with a name, a phone number and an e-mail address; the expert issues an
identification code and the customer types it in. None of that may appear in any record,
while each record about the appointment names its booking code, instance and operation, and
they all share the appointment's trace.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.telemetry import traceparent_for
from devhost import azurite
from tests.e2e.conftest import MATLEENA, Stack, expert_headers, running_stack
from tests.e2e.test_lifecycle import to_window

NAME = "Matti Meikäläinen"
PHONE = "+358409876543"
EMAIL = "matti.meikalainen@example.fi"


@pytest.fixture(scope="module")
def json_stack() -> Iterator[Stack]:
    """An Azurite of its own: the shared one holds other modules' bookings of the same expert slots."""
    server = azurite.start()
    try:
        with running_stack(server.connection_string, LOG_FORMAT="json") as stack:
            yield stack
    finally:
        server.stop()


def named_principal(customer: str) -> dict[str, str]:
    """The principal header as Easy Auth sends it for a bank login: with the customer's name."""
    claims = [
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": customer},
        {"typ": "name", "val": NAME},
        {"typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "val": EMAIL},
    ]
    body = {"auth_typ": "bank", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return {"x-ms-client-principal": base64.b64encode(json.dumps(body).encode()).decode()}


def records(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_a_whole_lifecycle_logs_no_personal_data(json_stack: Stack) -> None:
    """Booking, join, code issued and verified, end: no name, phone, e-mail or code in any record."""
    stack = json_stack
    who = f"logs-{uuid.uuid4().hex[:8]}"
    me = named_principal(who)
    start = stack.slot(days=3)
    body = {
        "expertId": MATLEENA.expert_id,
        "topic": "loans.home-loan",
        "channel": "online",
        "start": start.isoformat(),
        "durationMinutes": 45,
        "language": "fi",
        "phone": PHONE,
        "email": EMAIL,
        "extraInfo": f"{NAME} haluaa puhua asuntolainasta",
    }
    r = stack.host.post("/api/appointments", headers=me, json=body)
    assert r.status_code == 201, r.text
    code = r.json()["bookingCode"]
    stack.host.wait_idle()
    assert stack.host.post("/api/appointments/lookup", json={"bookingCode": code, "phone": PHONE}).is_success
    to_window(stack, r.json()["start"])
    assert stack.host.post(f"/api/appointments/{code}/join", headers=me).status_code == 200
    expert = expert_headers(MATLEENA.expert_id)
    issued = stack.host.post(f"/api/expert/appointments/{code}/identification-code", headers=expert)
    secret = issued.json()["code"]
    wrong = "000000" if secret != "000000" else "111111"
    verify = f"/api/appointments/{code}/identity-verification"
    assert stack.host.post(verify, headers=me, json={"code": wrong}).status_code == 422
    assert stack.host.post(verify, headers=me, json={"code": secret}).status_code == 200
    assert stack.host.post(f"/api/expert/appointments/{code}/end", headers=expert).status_code == 202
    stack.host.wait_idle()
    assert stack.phase(code) == "ended"

    output = stack.host.output()
    for personal in (NAME, "Meikäläinen", "Meik\\u00e4l\\u00e4inen", PHONE, PHONE[1:], EMAIL):
        assert personal not in output, f"{personal!r} is in the log"
    assert not re.search(rf"(?<!\d){secret}(?!\d)", output), "the identification code is in the log"

    mine = [r for r in records(output) if r.get("booking_code") == code]
    operations = {r["operation"] for r in mine}
    assert {"trigger.book_appointment", "activity.create_meeting", "activity.apply_phase"} <= operations
    assert {
        "trigger.verify_identity",
        "trigger.issue_identification_code",
        "trigger.end_meeting",
    } <= operations
    assert all(r["instance_id"] == f"appt-{code}" for r in mine)
    trace_id = traceparent_for(code).split("-")[1]
    traced = [r for r in mine if r["operation"].startswith("activity.")]
    assert traced and {r.get("trace_id") for r in traced} == {trace_id}
