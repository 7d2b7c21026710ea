"""Every path of the lifecycle table, driven through the HTTP API on the devhost (virtual clock).

At every step the instance's Durable custom status must match the Appointments record
(``Stack.phase`` asserts it)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
import pytest

from tests.e2e.conftest import MAIJA, MATLEENA, Stack


def new_customer() -> str:
    return f"cust-{uuid.uuid4().hex[:10]}"


def to_window(stack: Stack, start: str) -> None:
    """Advance the clock to the join window (15 min before the start)."""
    target = datetime.fromisoformat(start.replace("Z", "+00:00")) - timedelta(minutes=15)
    stack.host.advance((target - stack.now()).total_seconds())
    stack.host.wait_idle()


def join(stack: Stack, who: str, code: str) -> dict[str, object]:
    r = stack.as_customer(who, "POST", f"/api/appointments/{code}/join")
    assert r.status_code == 200, r.text
    return dict(r.json())


def in_lobby(stack: Stack) -> tuple[str, str]:
    """A new customer's online booking, with the clock in its window and the customer in the lobby."""
    who = new_customer()
    booked = stack.book(who)
    code = str(booked["bookingCode"])
    to_window(stack, booked["start"])
    join(stack, who, code)
    return who, code


def issue_code(stack: Stack, code: str, expert: str = MATLEENA.expert_id) -> str:
    r = stack.as_expert(expert, "POST", f"/api/expert/appointments/{code}/identification-code")
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    return str(r.json()["code"])


def verify(stack: Stack, who: str, code: str, entered: str) -> int:
    return stack.as_customer(
        who, "POST", f"/api/appointments/{code}/identity-verification", json={"code": entered}
    ).status_code


def wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def test_the_whole_story_from_booking_to_end(stack: Stack) -> None:
    """booked → join_open → lobby → code_issued → verified → ended, status = record at each step."""
    who = new_customer()
    booked = stack.book(who)
    code = booked["bookingCode"]
    assert stack.phase(code) == "booked"
    r = stack.as_customer(who, "POST", f"/api/appointments/{code}/join")
    assert r.status_code == 409 and r.json()["joinWindowOpensAt"] == booked["joinWindowOpensAt"]
    to_window(stack, booked["start"])
    assert stack.phase(code) == "join_open"
    joined = join(stack, who, code)
    assert str(joined["joinUrl"]).startswith(stack.graph.origin)
    assert stack.phase(code) == "lobby"
    day = stack.as_expert(
        MATLEENA.expert_id, "GET", "/api/expert/appointments", params={"date": booked["start"][:10]}
    ).json()
    assert code in day["waitingInLobby"]
    secret = issue_code(stack, code)
    assert stack.phase(code) == "code_issued"
    assert verify(stack, who, code, secret) == 200
    assert stack.phase(code) == "verified"
    assert (
        stack.as_expert(MATLEENA.expert_id, "POST", f"/api/expert/appointments/{code}/end").status_code == 202
    )
    assert stack.phase(code) == "ended"
    assert stack.runtime_status(code) == "Completed"
    # Teams: exactly one meeting, lobby for everyone but the organizer, recorded.
    meetings = [m for m in stack.graph.state.meetings.values() if m.get("externalId") == code]
    assert len(meetings) == 1
    assert meetings[0]["lobbyBypassSettings"]["scope"] == "organizer" and meetings[0]["recordAutomatically"]
    # Each expert notification went out exactly once: new booking, join open (before the
    # lifecycle continued as new), customer in the lobby and identity verified (after it).
    assert stack.graph.state.duplicate_mail() == {}
    with stack.graph.state.lock:
        keys = [m.get("idempotencyKey") or "" for m in stack.graph.state.mail]
    assert len([k for k in keys if k.startswith(f"{code}/")]) == 4
    assert stack.host.status(f"appt-{code}")["input"]["phase"] == "join_open"
    # The code never reached the Durable history.
    history = stack.host.status(f"appt-{code}", show_history=True)
    assert secret not in str(history)


@pytest.mark.parametrize("phase", ["booked", "join_open"])
def test_cancel_before_the_customer_joins(stack: Stack, phase: str) -> None:
    """Cancelling in booked or join_open ends the lifecycle; a created meeting is deleted."""
    who = new_customer()
    booked = stack.book(who)
    code = booked["bookingCode"]
    if phase == "join_open":
        to_window(stack, booked["start"])
        assert any(m.get("externalId") == code for m in stack.graph.state.meetings.values())
    r = stack.as_customer(who, "DELETE", f"/api/appointments/{code}")
    assert r.status_code == 200 and r.json()["phase"] == "cancelled"
    assert stack.phase(code) == "cancelled"
    assert stack.runtime_status(code) == "Completed"
    assert not any(m.get("externalId") == code for m in stack.graph.state.meetings.values())
    again = stack.as_customer(who, "DELETE", f"/api/appointments/{code}")
    assert again.status_code == 200  # idempotent


@pytest.mark.parametrize("phase", ["lobby", "code_issued", "verified", "ended"])
def test_cancel_after_joining_is_refused(stack: Stack, phase: str) -> None:
    """Once the customer is in the meeting, cancel is a 409 (or 410 when over) and changes nothing."""
    who, code = in_lobby(stack)
    if phase in ("code_issued", "verified"):
        secret = issue_code(stack, code)
        if phase == "verified":
            assert verify(stack, who, code, secret) == 200
    if phase == "ended":
        stack.as_expert(MATLEENA.expert_id, "POST", f"/api/expert/appointments/{code}/end")
    assert stack.phase(code) == phase
    r = stack.as_customer(who, "DELETE", f"/api/appointments/{code}")
    assert r.status_code == (410 if phase == "ended" else 409)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert stack.phase(code) == phase


def test_reschedule_twice_restarts_the_lifecycle_with_the_new_times(stack: Stack) -> None:
    """Two reschedules: continue-as-new each time, the old window never opens."""
    who = new_customer()
    booked = stack.book(who)
    code = booked["bookingCode"]
    first = stack.slot(days=4)
    second = stack.slot(days=6, hour=11)
    for when in (first, second):
        r = stack.as_customer(who, "PATCH", f"/api/appointments/{code}", json={"start": when.isoformat()})
        assert r.status_code == 200, r.text
    stack.host.wait_idle()
    status = stack.host.status(f"appt-{code}")
    assert (
        status["input"]["start"] == second.strftime("%Y-%m-%dT%H:%M:%SZ") and status["input"]["revision"] == 2
    )
    to_window(stack, booked["start"])  # the original time
    assert stack.phase(code) == "booked"
    to_window(stack, second.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert stack.phase(code) == "join_open"
    mails = [
        m
        for m in stack.graph.state.mail
        if code in str(m["message"].get("subject", "")) or code in str(m["message"].get("body", ""))
    ]
    assert mails  # the expert heard about it


def test_locked_code_then_a_new_code_verifies(stack: Stack) -> None:
    """Three wrong codes lock it (423, back to lobby); the expert's new code works."""
    who, code = in_lobby(stack)
    secret = issue_code(stack, code)
    assert [verify(stack, who, code, wrong(secret)) for _ in range(3)] == [422, 422, 423]
    assert stack.phase(code) == "lobby"
    assert verify(stack, who, code, secret) == 429  # three failures in a row: the customer must wait
    stack.host.advance(10)
    assert verify(stack, who, code, secret) == 423  # the locked code stays locked, even when right
    fresh = issue_code(stack, code)
    assert stack.phase(code) == "code_issued"
    assert verify(stack, who, code, fresh) == 200
    assert stack.phase(code) == "verified"


def test_code_expiry_returns_to_lobby(stack: Stack) -> None:
    """After 10 minutes the code is gone: 410, and the lifecycle is back in the lobby."""
    who, code = in_lobby(stack)
    secret = issue_code(stack, code)
    stack.host.advance(minutes=10, seconds=1)
    stack.host.wait_idle()
    assert stack.phase(code) == "lobby"
    assert verify(stack, who, code, secret) == 410


def test_no_show_when_nobody_joins(stack: Stack) -> None:
    """A customer who never joins by the end is a no-show."""
    who = new_customer()
    booked = stack.book(who)
    code = booked["bookingCode"]
    to_window(stack, booked["start"])
    stack.host.advance(minutes=61)
    assert stack.phase(code) == "no_show"
    assert stack.as_customer(who, "POST", f"/api/appointments/{code}/join").status_code == 410


def test_end_by_timer_when_nobody_ends_the_meeting(stack: Stack) -> None:
    """Verified but never ended: the end-plus-grace timer closes it."""
    who, code = in_lobby(stack)
    assert verify(stack, who, code, issue_code(stack, code)) == 200
    stack.host.advance(minutes=15 + 45 + 30)
    assert stack.phase(code) == "ended"


def test_end_from_a_graph_call_ended_notification(stack: Stack) -> None:
    """Teams says the call ended: the webhook raises MeetingEnded."""
    _who, code = in_lobby(stack)
    meeting = next(m for m in stack.graph.state.meetings.values() if m.get("externalId") == code)
    assert any(code in s.get("notificationUrl", "") for s in stack.graph.state.subscriptions.values())
    r = httpx.post(f"{stack.graph.origin}/_emulator/meetings/{meeting['id']}/end", timeout=30)
    assert r.status_code == 200, r.text
    assert stack.phase(code) == "ended"


def test_a_booking_thirty_days_ahead_waits_through_long_timers(stack: Stack) -> None:
    """Timers longer than the provider's limit are cut into legs; the window still opens on time."""
    who = new_customer()
    start = stack.slot(days=30)
    booked = stack.book(who, start, expert=MAIJA.expert_id, topic="savings.funds")
    code = booked["bookingCode"]
    for _ in range(9):
        stack.host.advance(days=3)
        assert stack.phase(code) == "booked"

    def timers() -> list[dict[str, object]]:
        history = stack.host.status(f"appt-{code}", show_history=True)["historyEvents"]
        return [
            e
            for e in history
            if e.get("EventType") in ("TimerCreated", 10) or e.get("eventType") == "TimerCreated"
        ]

    # The SDK's LongTimerTask (V3 schema): 3-day legs while more than 6 days remain, then one timer
    # for the rest. How many legs 27 days take depends on the slot's time of day (the day-before
    # reminder, the first deadline, is 24 h before it), so the rule is checked, not a count.
    def span(e: dict[str, object]) -> timedelta:
        fire = datetime.fromisoformat(str(e["FireAt"]).replace("Z", "+00:00"))
        return fire - datetime.fromisoformat(str(e["Timestamp"]).replace("Z", "+00:00"))

    legs = [span(e) for e in timers()]
    assert len(legs) >= 9, legs  # 27 days at most 3 days a leg, then the rest in one
    assert all(leg <= timedelta(days=3, seconds=1) for leg in legs[:-1]), legs
    assert legs[-1] <= timedelta(days=6), legs
    to_window(stack, booked["start"])
    assert stack.phase(code) == "join_open"
    # The window opened: the lifecycle continued as new, and the meeting's history starts short,
    # with the phase in its input.
    status = stack.host.status(f"appt-{code}")
    assert status["input"]["phase"] == "join_open" and status["customStatus"]["phase"] == "join_open"
    assert len(timers()) <= 1  # the outbox poll


def test_phone_appointment_has_no_meeting_and_ends_after_its_time(stack: Stack) -> None:
    """Phone bookings skip Teams entirely and end on their own."""
    who = new_customer()
    booked = stack.book(who, channel="phone")
    code = booked["bookingCode"]
    to_window(stack, booked["start"])
    assert stack.phase(code) == "booked"
    assert stack.as_customer(who, "POST", f"/api/appointments/{code}/join").status_code == 409
    stack.host.advance(minutes=61)
    assert stack.phase(code) == "ended"
    assert not any(m.get("externalId") == code for m in stack.graph.state.meetings.values())


def test_an_illegal_event_is_refused_before_it_reaches_the_orchestration(stack: Stack) -> None:
    """Ending a meeting that has not started is a 409, and the history shows no event."""
    who = new_customer()
    code = stack.book(who)["bookingCode"]
    r = stack.as_expert(MATLEENA.expert_id, "POST", f"/api/expert/appointments/{code}/end")
    assert r.status_code == 409
    history = stack.host.status(f"appt-{code}", show_history=True)["historyEvents"]
    assert "MeetingEnded" not in str(history)
    r = stack.as_expert(MATLEENA.expert_id, "POST", f"/api/expert/appointments/{code}/identification-code")
    assert r.status_code == 409


def test_an_empty_call_ending_before_the_customer_joins_does_not_end_it(stack: Stack) -> None:
    """The expert opened the meeting early and left: still join_open, the customer can come."""
    who = new_customer()
    booked = stack.book(who)
    code = booked["bookingCode"]
    to_window(stack, booked["start"])
    meeting = next(m for m in stack.graph.state.meetings.values() if m.get("externalId") == code)
    httpx.post(f"{stack.graph.origin}/_emulator/meetings/{meeting['id']}/end", timeout=30).raise_for_status()
    assert stack.phase(code) == "join_open"
    join(stack, who, code)
    assert stack.phase(code) == "lobby"


def test_the_webhook_answers_the_handshake_and_ignores_forgeries(stack: Stack) -> None:
    """validationToken is echoed as text/plain; a forged clientState is audited and changes nothing."""
    url = "/api/graph/notifications"
    r = stack.host.post(url, params={"validationToken": "token-123"})
    assert (
        r.status_code == 200 and r.text == "token-123" and r.headers["content-type"].startswith("text/plain")
    )
    _who, code = in_lobby(stack)
    forged = {
        "value": [
            {
                "subscriptionId": "s",
                "clientState": "guess",
                "changeType": "updated",
                "resource": "communications/onlineMeetings(joinWebUrl='x')/meetingCallEvents",
                "resourceData": {"eventType": "callEnded"},
            }
        ]
    }
    r = stack.host.post(url, params={"appointment": code}, json=forged)
    assert r.status_code == 202
    assert stack.phase(code) == "lobby"
    # Forgeries are counted and audited once per window (http_triggers.graph_webhook.ForgedTally).
