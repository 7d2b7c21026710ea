"""The log context and trace helpers: what every record carries, and what never becomes an attribute.

No ``from __future__ import annotations`` here: one test checks real annotation objects.
"""

import asyncio
import inspect
import json
import logging
import typing
from typing import Any

import azure.functions as func
import pytest

from adapters import telemetry


@pytest.fixture
def captured() -> typing.Iterator[list[logging.LogRecord]]:
    telemetry.install_record_factory()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def test_records_inside_a_span_name_the_appointment_instance_and_operation(
    captured: list[logging.LogRecord],
) -> None:
    """Bound context lands on every record, from any logger, and is gone afterwards."""
    with telemetry.span("create_meeting", "2KMEVE6X", operation="activity.create_meeting"):
        logging.getLogger("adapters.graph").warning("Graph said 429")
    logging.getLogger("adapters.graph").warning("later")
    inside, done, after = captured
    assert (inside.booking_code, inside.instance_id, inside.operation) == (  # type: ignore[attr-defined]
        "2KMEVE6X", "appt-2KMEVE6X", "activity.create_meeting",
    )  # fmt: skip
    assert done.getMessage().startswith("activity.create_meeting done in ")
    assert after.booking_code is None and after.operation == "graph"  # type: ignore[attr-defined]


def test_an_orchestrator_record_is_tied_to_its_instance_by_the_id_in_its_message(
    captured: list[logging.LogRecord],
) -> None:
    """The orchestrator cannot bind; the instance id it logs names the appointment."""
    logging.getLogger("orchestrators.appointment_lifecycle").info("ignoring X for %s", "appt-2KMEVE6X")
    [record] = captured
    assert (record.booking_code, record.operation) == ("2KMEVE6X", "orchestration")  # type: ignore[attr-defined]


def test_concurrent_invocations_keep_their_own_context(captured: list[logging.LogRecord]) -> None:
    """Two tasks on one loop: each record names its own appointment (contextvars, not globals)."""

    async def one(code: str) -> None:
        with telemetry.bind(code, operation="trigger.x"):
            await asyncio.sleep(0.01)
            logging.getLogger("http_triggers.x").info("work for %s", code)

    async def both() -> None:
        await asyncio.gather(one("AAAAAAAA"), one("BBBBBBBB"))

    asyncio.run(both())
    assert sorted((r.getMessage()[-8:], r.booking_code) for r in captured) == [  # type: ignore[attr-defined]
        ("AAAAAAAA", "AAAAAAAA"), ("BBBBBBBB", "BBBBBBBB"),
    ]  # fmt: skip


def test_only_a_well_formed_booking_code_becomes_an_attribute() -> None:
    """A caller's arbitrary route text (a phone number, a name) is never put on a record."""

    def req(route: dict[str, str], params: dict[str, str] | None = None) -> func.HttpRequest:
        return func.HttpRequest("GET", "http://x/api", params=params or {}, route_params=route, body=b"")

    assert telemetry.booking_code_of(req({"code": "2kmeve6x"})) == "2KMEVE6X"
    assert telemetry.booking_code_of(req({}, {"appointment": "2KMEVE6X"})) == "2KMEVE6X"
    for junk in ("+358401234567", "Matti Meikäläinen", "2KMEVE6X;drop", ""):
        assert telemetry.booking_code_of(req({"code": junk})) is None
    assert telemetry.booking_code_of(None) is None


def test_one_appointment_has_one_trace_id_and_it_reveals_nothing() -> None:
    """The traceparent is W3C-shaped, stable per booking code, different between codes."""
    a, b = telemetry.traceparent_for("2KMEVE6X"), telemetry.traceparent_for("3PQRST7Y")
    version, trace_id, span_id, flags = a.split("-")
    assert (version, len(trace_id), len(span_id), flags) == ("00", 32, 16, "01")
    assert a == telemetry.traceparent_for("2KMEVE6X") and a != b and "2KMEVE6X" not in a


def test_a_traced_activity_keeps_the_signature_the_worker_checks() -> None:
    """functools.wraps: the worker still sees the ``payload`` parameter and its typing annotation."""
    Payload = typing.Dict[str, Any]  # noqa: UP006 - the worker refuses dict[str, Any]

    @telemetry.traced_activity
    def sync_activity(payload: Payload) -> str:
        return str(payload["bookingCode"])

    @telemetry.traced_activity
    async def async_activity(payload: Payload) -> str:
        return str(payload["bookingCode"])

    for fn in (sync_activity, async_activity):
        assert list(inspect.signature(fn).parameters) == ["payload"]
        assert inspect.signature(fn).parameters["payload"].annotation is Payload
    assert inspect.iscoroutinefunction(async_activity)
    assert sync_activity({"bookingCode": "2KMEVE6X"}) == "2KMEVE6X"
    assert asyncio.run(async_activity({"bookingCode": "2KMEVE6X"})) == "2KMEVE6X"


def test_json_lines_carry_the_context_and_the_trace(captured: list[logging.LogRecord]) -> None:
    """One object per record with the appointment's attributes and its trace id."""
    formatter = telemetry.JsonFormatter()
    with telemetry.span("verify", "2KMEVE6X", operation="trigger.verify_identity"):
        logging.getLogger("http_triggers.customer").info("checked")
        line = formatter.format(captured[-1])
    out = json.loads(line)
    assert out["message"] == "checked" and out["booking_code"] == "2KMEVE6X"
    assert out["trace_id"] == telemetry.traceparent_for("2KMEVE6X").split("-")[1]


def test_azure_monitor_stays_off_without_a_connection_string() -> None:
    """No connection string: nothing is exported and nothing heavy is imported."""
    assert telemetry.configure({}) is False


def test_the_authentication_string_becomes_a_managed_identity_credential() -> None:
    """What the Bicep sets (ClientId=...;Authorization=AAD) selects the user-assigned identity."""
    credential = telemetry._credential("ClientId=11111111-2222-3333-4444-555555555555;Authorization=AAD")
    assert type(credential).__name__ == "ManagedIdentityCredential"
    assert telemetry._credential("") is None
