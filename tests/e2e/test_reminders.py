"""Reminders a day and an hour before, through the outbox (SMS, push) and mail; stopped by changes."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from tests.e2e.conftest import Stack


def new_customer() -> str:
    return f"cust-{uuid.uuid4().hex[:10]}"


def outbox(stack: Stack, customer: str, kind: str = "reminder") -> list[dict[str, object]]:
    rows = stack.repo.table("Outbox").query_entities("PartitionKey eq @pk", parameters={"pk": customer})
    return [dict(r) for r in rows if r["Kind"] == kind]


def mails_to(stack: Stack, address: str) -> list[dict[str, object]]:
    return [
        m
        for m in stack.graph.state.mail
        if any(t["emailAddress"]["address"] == address for t in m["message"].get("toRecipients", []))
    ]


def advance_to(stack: Stack, when: datetime) -> None:
    stack.host.advance(max(0.0, (when - stack.now()).total_seconds()))
    stack.host.wait_idle()


def start_of(booked: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(booked["start"]).replace("Z", "+00:00"))


def test_reminders_go_out_once_a_day_and_an_hour_before(stack: Stack) -> None:
    """SMS + push per reminder, in the customer's language, and by mail where an address is given."""
    who = new_customer()
    booked = stack.book(who, channel="phone", email="asiakas@example.fi")
    start = start_of(booked)
    advance_to(stack, start - timedelta(hours=24, minutes=1))
    assert outbox(stack, who) == []
    advance_to(stack, start - timedelta(hours=23))
    day_before = outbox(stack, who)
    assert sorted(r["Channel"] for r in day_before) == ["push", "sms"]
    assert all(booked["bookingCode"] in str(r["Text"]) for r in day_before)
    assert len(mails_to(stack, "asiakas@example.fi")) == 2  # the confirmation, then the reminder
    advance_to(stack, start - timedelta(minutes=30))
    assert len(outbox(stack, who)) == 4  # and the hour-before pair
    assert len(mails_to(stack, "asiakas@example.fi")) == 3
    assert stack.graph.state.duplicate_mail() == {}


def test_a_cancel_stops_the_reminders(stack: Stack) -> None:
    """Cancelled before the reminder time: no reminder ever goes out."""
    who = new_customer()
    booked = stack.book(who)
    assert stack.as_customer(who, "DELETE", f"/api/appointments/{booked['bookingCode']}").status_code == 200
    advance_to(stack, start_of(booked) + timedelta(minutes=1))
    assert outbox(stack, who) == []
    assert len(outbox(stack, who, "cancelled")) == 2


def test_a_reschedule_moves_the_reminders(stack: Stack) -> None:
    """Moved two days later: nothing at the old reminder time, reminders at the new one."""
    who = new_customer()
    booked = stack.book(who, channel="branch")
    code = booked["bookingCode"]
    old = start_of(booked)
    new = stack.slot(days=(old - stack.now()).total_seconds() / 86400 + 2, hour=11)
    r = stack.as_customer(who, "PATCH", f"/api/appointments/{code}", json={"start": new.isoformat()})
    assert r.status_code == 200, r.text
    advance_to(stack, old - timedelta(minutes=30))
    assert outbox(stack, who) == []
    advance_to(stack, new - timedelta(hours=23))
    assert len(outbox(stack, who)) == 2
