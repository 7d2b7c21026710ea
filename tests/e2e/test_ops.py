"""The operators' view on the running app: filters, paging, one appointment's Durable state."""

from __future__ import annotations

import uuid
from typing import Any

from tests.e2e.conftest import Stack

OPS = "/api/ops/appointments"
PHONE = "+358401234567"
# Unique: other tests count the mails the shared stack sent to their own address.
EMAIL = f"ops-{uuid.uuid4().hex[:8]}@example.fi"


def ops(stack: Stack, path: str = OPS, **params: str) -> Any:
    r = stack.host.get(path, key=True, params=params)
    assert r.status_code == 200, r.text
    assert PHONE not in r.text
    return r.json()


def test_operators_page_through_a_days_appointments(stack: Stack) -> None:
    """Pages of one follow the continuation to the end; every booking of the day shows, once."""
    customer = f"ops-{uuid.uuid4().hex[:8]}"
    first = stack.book(customer, email=EMAIL)
    second = stack.book(customer)
    day = first["start"][:10]
    seen: list[str] = []
    token: str | None = None
    while True:
        params = {"date": day, "phase": "booked", "limit": "1"}
        if token:
            params["continuation"] = token
        body = ops(stack, **params)
        assert len(body["appointments"]) <= 1
        assert EMAIL not in str(body)
        seen += [a["bookingCode"] for a in body["appointments"]]
        token = body["continuation"]
        if token is None:
            break
    assert len(seen) == len(set(seen))
    if second["start"][:10] == day:
        assert {first["bookingCode"], second["bookingCode"]} <= set(seen)
    else:
        assert first["bookingCode"] in seen
    flagged = ops(stack, date=day, attention="true")["appointments"]
    assert first["bookingCode"] not in {a["bookingCode"] for a in flagged}


def test_one_appointment_shows_durable_state_without_payloads(stack: Stack) -> None:
    """Record phase, runtime status and the last history events, none carrying an input or result."""
    booked = stack.book(f"ops-{uuid.uuid4().hex[:8]}", email=EMAIL)
    code = booked["bookingCode"]
    detail = ops(stack, f"{OPS}/{code}")
    assert (detail["bookingCode"], detail["phase"], detail["instanceId"]) == (code, "booked", f"appt-{code}")
    assert detail["durable"]["runtimeStatus"] == "Running" and detail["durable"]["phase"] == "booked"
    events = detail["durable"]["history"]
    assert events and {"EventType", "Timestamp"} <= set(events[0])
    assert not any({"Input", "Result", "Details", "Reason"} & set(e) for e in events)
    assert detail["attentionReasons"] == []
    assert EMAIL not in str(detail)


def test_a_terminated_lifecycle_is_flagged_for_attention(stack: Stack) -> None:
    """An operator terminating a booked appointment's instance leaves it needing a look (RUNBOOK)."""
    code = stack.book(f"ops-{uuid.uuid4().hex[:8]}")["bookingCode"]
    r = stack.host.post(f"/runtime/webhooks/durabletask/instances/appt-{code}/terminate?reason=test")
    assert r.status_code == 202
    stack.host.wait_idle()
    detail = ops(stack, f"{OPS}/{code}")
    assert detail["durable"]["runtimeStatus"] == "Terminated"
    assert detail["attentionReasons"] == ["orchestration_finished_early"]


def test_bad_filters_are_refused_with_a_problem(stack: Stack) -> None:
    """Malformed parameters are 400, well-formed but unusable ones 422, each naming the parameter."""
    for params, status in (
        ({"date": "tomorrow"}, 400),
        ({"date": "20261201"}, 400),  # fromisoformat takes it; the document's format: date does not
        ({"attention": "maybe"}, 400),
        ({"limit": "0"}, 400),
        ({"limit": "101"}, 400),
        ({"limit": "²"}, 400),
        ({"date": "9999-12-31"}, 422),  # a real date whose Helsinki day has no UTC end
        ({"date": "0001-01-01"}, 422),
        ({"continuation": "not-a-token"}, 422),
        ({"continuation": "eyJQYXJ0aXRpb25LZXkiOiBbMV19"}, 422),  # {"PartitionKey": [1]}
    ):
        r = stack.host.get(OPS, key=True, params=params)
        assert r.status_code == status, (params, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert next(iter(params)) in r.text
    assert stack.host.get(f"{OPS}/NOPE2345", key=True).status_code == 404
    assert stack.host.get(f"{OPS}/NOPE2345").status_code == 401
