"""When Teams cannot be reached: throttling and outages are retried; a refusal is recorded, never hangs."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import httpx

from appointments.model import Expert
from devhost.seed import WEEKDAYS_8_TO_16
from tests.e2e.conftest import Stack


def own_expert(stack: Stack) -> Expert:
    """An expert of this test's own: faults and mail can be pinned to them alone."""
    expert_id = str(uuid.uuid4())
    expert = Expert(
        expert_id,
        "Testi Asiantuntija",
        f"{expert_id}@pankki.example",
        ("loans.home-loan",),
        ("fi",),
        working_hours=WEEKDAYS_8_TO_16,
    )
    stack.repo.put_expert(expert)
    return expert


def fault(stack: Stack, **spec: object) -> None:
    httpx.post(f"{stack.graph.origin}/_emulator/faults", json=spec, timeout=10).raise_for_status()


def to_window(stack: Stack, booked: dict[str, object]) -> None:
    target = datetime.fromisoformat(str(booked["start"]).replace("Z", "+00:00")) - timedelta(minutes=15)
    stack.host.advance((target - stack.now()).total_seconds())


def test_an_outage_is_retried_until_teams_answers(stack: Stack) -> None:
    """503s beyond the adapter's own retries fail the activity; Durable retries it and it succeeds."""
    who = f"cust-{uuid.uuid4().hex[:8]}"
    expert = own_expert(stack)
    booked = stack.book(who, expert=expert.expert_id)
    code = booked["bookingCode"]
    fault(stack, path=f"{expert.expert_id}/onlineMeetings/createOrGet", status=503, count=3)
    to_window(stack, booked)
    record = stack.repo.get_by_code(code)
    assert record is not None and not record.join_url  # still waiting for the retry
    stack.host.advance(seconds=5)  # the first Durable retry interval
    assert stack.phase(code) == "join_open"
    assert len([m for m in stack.graph.state.meetings.values() if m.get("externalId") == code]) == 1
    assert stack.as_customer(who, "POST", f"/api/appointments/{code}/join").status_code == 200


def test_a_refused_meeting_is_recorded_and_the_expert_told(stack: Stack) -> None:
    """A 403 (no application access policy, say) is permanent: attention for ops, mail to the expert."""
    who = f"cust-{uuid.uuid4().hex[:8]}"
    expert = own_expert(stack)
    booked = stack.book(who, expert=expert.expert_id)
    code = booked["bookingCode"]
    mails_before = len(stack.graph.state.mail)
    fault(stack, path=f"{expert.expert_id}/onlineMeetings/createOrGet", status=403, count=1, code="Forbidden")
    to_window(stack, booked)
    assert stack.phase(code) == "join_open"
    status = stack.host.status(f"appt-{code}")
    assert (
        status["runtimeStatus"] == "Running"
        and status["customStatus"]["attention"] == "meeting_creation_failed"
    )
    ops = stack.host.request("GET", "/api/ops/appointments", key=True, params={"phase": "join_open"}).json()
    assert any(a["bookingCode"] == code and a["attention"] for a in ops["appointments"])
    new_mail = stack.graph.state.mail[mails_before:]
    expert_mail = [
        m
        for m in new_mail
        if any(t["emailAddress"]["address"] == expert.email for t in m["message"]["toRecipients"])
    ]
    assert len(expert_mail) == 1  # "meeting failed", not "join window open" without a link
    r = stack.as_customer(who, "POST", f"/api/appointments/{code}/join")
    assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")
    # It does not hang: with nobody joining, it ends as a no-show.
    stack.host.advance(minutes=61)
    assert stack.phase(code) == "no_show"


def own_booking(stack: Stack) -> tuple[str, Expert, dict[str, object], str]:
    """A new customer's online booking with an expert of the test's own."""
    who = f"cust-{uuid.uuid4().hex[:8]}"
    expert = own_expert(stack)
    booked = stack.book(who, expert=expert.expert_id)
    return who, expert, booked, str(booked["bookingCode"])


def helsinki_day(booked: dict[str, object]) -> str:
    from appointments.localtime import to_local

    return to_local(datetime.fromisoformat(str(booked["start"]).replace("Z", "+00:00"))).date().isoformat()


def test_a_refused_call_event_subscription_leaves_a_working_meeting_with_a_reason(stack: Stack) -> None:
    """403 on the subscription: the customer still joins, expert and ops see why, and End closes it."""
    who, expert, booked, code = own_booking(stack)
    fault(stack, path=r"/subscriptions$", method="POST", status=403, count=1, code="Forbidden", body=code)
    to_window(stack, booked)

    assert stack.phase(code) == "join_open"
    status = stack.host.status(f"appt-{code}")
    assert status["runtimeStatus"] == "Running"
    assert status["customStatus"]["attention"] == "call_events_refused"
    day = stack.as_expert(
        expert.expert_id, "GET", "/api/expert/appointments", params={"date": helsinki_day(booked)}
    )
    [mine] = [a for a in day.json()["appointments"] if a["bookingCode"] == code]
    assert mine["attention"] == "call_events_refused"
    ops = stack.host.request("GET", "/api/ops/appointments", key=True, params={"phase": "join_open"}).json()
    assert any(
        a["bookingCode"] == code and a["attention"] == "call_events_refused" for a in ops["appointments"]
    )
    assert len([m for m in stack.graph.state.meetings.values() if m.get("externalId") == code]) == 1
    assert len(stack.graph.state.received("POST", r"/subscriptions$")) >= 1

    assert stack.as_customer(who, "POST", f"/api/appointments/{code}/join").status_code == 200
    assert stack.phase(code) == "lobby"
    r = stack.as_expert(expert.expert_id, "POST", f"/api/expert/appointments/{code}/end")
    assert r.status_code == 202
    assert stack.phase(code) == "ended"


def subscriptions_of(stack: Stack, code: str) -> list[dict[str, object]]:
    subscriptions = stack.graph.state.subscriptions.values()
    return [s for s in subscriptions if f"appointment={code}" in str(s["notificationUrl"])]


def test_a_throttled_subscription_is_resent_at_once(stack: Stack) -> None:
    """Graph refuses a throttled request before acting on it: the subscription's 429 is resent by
    the transport within the same attempt, so the meeting is made once and subscribed once."""
    _, expert, booked, code = own_booking(stack)
    fault(stack, path=r"/subscriptions$", method="POST", status=429, count=1, retryAfter="1", body=code)
    to_window(stack, booked)
    assert stack.phase(code) == "join_open"
    posts = stack.graph.state.received("POST", r"/subscriptions$")
    assert [r.status for r in posts if code in json.dumps(r.body)] == [429, 201]
    assert len(subscriptions_of(stack, code)) == 1
    assert len(stack.graph.state.received("POST", f"{expert.expert_id}/onlineMeetings/createOrGet")) == 1
    assert not stack.host.status(f"appt-{code}")["customStatus"].get("attention")


def test_a_subscription_that_fails_transiently_is_retried_without_making_the_meeting_again(
    stack: Stack,
) -> None:
    """The meeting is made, then Graph answers the subscription with 503s (which the transport
    never resends: Graph may have acted). The lifecycle subscribes on its own until Graph answers:
    createOrGet ran once, one subscription, no attention, and the expert got no meeting_failed."""
    who, expert, booked, code = own_booking(stack)
    mails_before = len(stack.graph.state.mail)
    fault(stack, path=r"/subscriptions$", method="POST", status=503, count=2, body=code)
    to_window(stack, booked)
    for _ in range(4):  # Durable's retry interval, until the subscription is made
        if subscriptions_of(stack, code):
            break
        stack.host.advance(seconds=5)
    assert len(subscriptions_of(stack, code)) == 1
    assert stack.phase(code) == "join_open"
    assert len(stack.graph.state.received("POST", f"{expert.expert_id}/onlineMeetings/createOrGet")) == 1
    assert not stack.host.status(f"appt-{code}")["customStatus"].get("attention")
    expert_subjects = [
        m["message"]["subject"]
        for m in stack.graph.state.mail[mails_before:]
        if any(t["emailAddress"]["address"] == expert.email for t in m["message"]["toRecipients"])
    ]
    assert expert_subjects and not any("Vaatii toimenpiteitä" in s for s in expert_subjects)
    assert stack.as_customer(who, "POST", f"/api/appointments/{code}/join").status_code == 200


def test_every_refusal_at_once_still_ends_the_appointment_and_sends_no_mail_twice(stack: Stack) -> None:
    """Subscription 403, sendMail 503 after commit, a slow Graph: the appointment reaches a terminal phase."""
    _who, expert, booked, code = own_booking(stack)
    fault(stack, path=r"/subscriptions$", method="POST", status=403, count=1, code="Forbidden", body=code)
    fault(stack, path=r"/sendMail$", status=503, count=2, after=True)
    fault(stack, path=f"{expert.expert_id}/onlineMeetings", delayMs=1500, count=1)
    to_window(stack, booked)
    stack.host.advance(seconds=5)  # Durable's retry of the mails whose answer was lost
    assert stack.phase(code) == "join_open"

    stack.host.advance(minutes=61)  # nobody comes: the no-show timer closes it
    assert stack.phase(code) == "no_show"
    assert stack.graph.state.duplicate_mail() == {}
    keys = [m["idempotencyKey"] for m in stack.graph.state.mail if code in (m["idempotencyKey"] or "")]
    assert keys and len(keys) == len(set(keys))


def test_a_removed_subscription_is_recreated_after_the_webhook_answered(stack: Stack) -> None:
    """subscriptionRemoved: 202 at once, then the upkeep orchestration subscribes the meeting again."""
    _who, _expert, booked, code = own_booking(stack)
    to_window(stack, booked)

    def mine() -> list[dict[str, object]]:
        return [
            s
            for s in stack.graph.state.subscriptions.values()
            if f"appointment={code}" in s["notificationUrl"]
        ]

    [old] = mine()
    assert stack.graph.lifecycle(str(old["id"]), "subscriptionRemoved") == 202
    stack.host.wait_idle()
    [new] = mine()
    assert new["id"] != old["id"]
    assert stack.graph.lifecycle(str(new["id"]), "reauthorizationRequired") == 202
    stack.host.wait_idle()
    assert [
        r.status for r in stack.graph.state.received("POST", rf"/subscriptions/{new['id']}/reauthorize$")
    ] == [204]


def test_a_replayed_early_call_end_does_not_end_the_meeting_the_customer_joined(stack: Stack) -> None:
    """Issue 16's replay: an early callEnded, the customer joins, the same POST again: still in the lobby."""
    who, _expert, booked, code = own_booking(stack)
    to_window(stack, booked)
    meeting = next(m for m in stack.graph.state.meetings.values() if m.get("externalId") == code)
    assert stack.graph.end_meeting(meeting["id"]) == [202]  # the expert's empty call ends
    early = stack.graph.state.notifications[-1]
    stack.host.wait_idle()
    assert stack.phase(code) == "join_open"
    stack.host.advance(minutes=1)
    assert stack.as_customer(who, "POST", f"/api/appointments/{code}/join").status_code == 200
    assert stack.phase(code) == "lobby"

    r = stack.host.post("/api/graph/notifications", params={"appointment": code}, json=early)
    assert r.status_code == 202
    stack.host.wait_idle()
    assert stack.phase(code) == "lobby"
    # A genuine end after the customer joined still counts.
    stack.host.advance(minutes=5)
    assert stack.graph.end_meeting(meeting["id"]) == [202]
    assert stack.phase(code) == "ended"
