"""Free slots and held slots over HTTP: Graph busy times, 503 when calendars are unreadable, holds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from appointments.localtime import local_to_utc, to_local
from tests.e2e.conftest import MAIJA, OLLI, Stack

PROBLEM = "application/problem+json"


def new_customer() -> str:
    return f"cust-{uuid.uuid4().hex[:10]}"


def weekday_ahead(stack: Stack, days: int) -> date:
    """The first Monday-Friday at least ``days`` Helsinki days from the host's now."""
    day = to_local(stack.now()).date() + timedelta(days=days)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return local_to_utc(datetime.combine(day, time(hour, minute)))


def z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def slots(stack: Stack, day: date, **params: str) -> httpx.Response:
    q = {
        "topic": "savings.funds",
        "channel": "online",
        "expert": MAIJA.expert_id,
        "from": day.isoformat(),
        "to": day.isoformat(),
        **params,
    }
    return stack.host.get("/api/slots", params=q)


def starts(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [s["start"] for d in r.json()["days"] for s in d["slots"]]


@pytest.fixture
def emulator(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.graph.origin) as client:
        yield client
        client.put(f"/_emulator/busy/{MAIJA.email}", json=[])


def test_slots_follow_working_hours_in_helsinki_time(stack: Stack) -> None:
    """Maija works 09-17 in Helsinki: the day's slots, grouped and labelled in Finnish."""
    day = weekday_ahead(stack, 12)
    r = slots(stack, day, duration="60")
    doc = r.json()
    assert [d["date"] for d in doc["days"]] == [day.isoformat()]
    assert doc["days"][0]["label"].endswith(f"{day.day}.{day.month}.{day.year}")
    assert starts(r)[0] == z(at(day, 9)) and starts(r)[-1] == z(at(day, 16))
    first = doc["days"][0]["slots"][0]
    assert first["experts"] == [{"id": MAIJA.expert_id, "displayName": MAIJA.display_name}]


def test_a_busy_calendar_in_graph_removes_slots(stack: Stack, emulator: httpx.Client) -> None:
    """An event 10.00-11.15 in Maija's calendar takes out the starts it overlaps."""
    day = weekday_ahead(stack, 13)
    before = starts(slots(stack, day))
    assert z(at(day, 10)) in before and z(at(day, 11)) in before
    r = emulator.put(
        f"/_emulator/busy/{MAIJA.email}",
        json=[{"start": z(at(day, 10)), "end": z(at(day, 11, 15)), "status": "busy"}],
    )
    assert r.status_code == 200
    after = starts(slots(stack, day))
    gone = sorted(set(before) - set(after))
    assert gone == [z(at(day, 10)), z(at(day, 10, 30)), z(at(day, 11))]


def test_unreadable_calendars_are_503_not_guesses(stack: Stack, emulator: httpx.Client) -> None:
    """A Graph 5xx on getSchedule: 503 problem+json with Retry-After, no slots."""
    emulator.post("/_emulator/faults", json={"path": "getSchedule", "status": 500, "count": 1})
    r = slots(stack, weekday_ahead(stack, 12))
    assert r.status_code == 503 and r.headers["content-type"].startswith(PROBLEM)
    assert int(r.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"from": "1.12.2026"}, 400),
        ({"topic": "nope"}, 422),
        ({"from": "2026-12-01", "to": "2027-01-15"}, 422),
        ({"expert": "no-such-expert"}, 422),
    ],
)
def test_bad_slot_queries_are_problems(stack: Stack, params: dict[str, str], status: int) -> None:
    """Malformed parameters are 400, rule breakers 422 (a range of at most 31 days)."""
    r = slots(stack, weekday_ahead(stack, 12), **params)
    assert r.status_code == status and r.headers["content-type"].startswith(PROBLEM)


def booking(start: datetime, **kw: Any) -> dict[str, Any]:
    return {
        "expertId": OLLI.expert_id,
        "topic": "daily.cards",
        "channel": "online",
        "start": z(start),
        "durationMinutes": 45,
        "language": "fi",
        "phone": "+358401234567",
        **kw,
    }


def test_hold_then_book_and_nobody_else_gets_the_slot(stack: Stack) -> None:
    """A hold hides the slot, others get 409 holding or booking it; the holder books with the holdId."""
    start = at(weekday_ahead(stack, 14), 13)
    owner, other = new_customer(), new_customer()
    hold_req = {"expertId": OLLI.expert_id, "start": z(start), "durationMinutes": 45}
    r = stack.as_customer(owner, "POST", "/api/slots/hold", json=hold_req)
    assert r.status_code == 201, r.text
    hold = r.json()
    assert set(hold) >= {"holdId", "expiresAt"}
    assert stack.as_customer(other, "POST", "/api/slots/hold", json=hold_req).status_code == 409
    assert stack.as_customer(other, "POST", "/api/appointments", json=booking(start)).status_code == 409
    assert stack.as_customer(other, "DELETE", f"/api/slots/hold/{hold['holdId']}").status_code == 404
    listed = stack.host.get(
        "/api/slots",
        params={
            "topic": "daily.cards",
            "channel": "online",
            "expert": OLLI.expert_id,
            "from": to_local(start).date().isoformat(),
        },
    ).json()
    assert z(start) not in [s["start"] for d in listed["days"] for s in d["slots"]]
    booked = stack.as_customer(owner, "POST", "/api/appointments", json=booking(start, holdId=hold["holdId"]))
    assert booked.status_code == 201, booked.text
    stack.host.wait_idle()


def test_an_expired_hold_is_free_for_someone_else(stack: Stack) -> None:
    """After hold_minutes the slot can be booked by another customer; releasing frees it at once."""
    start = at(weekday_ahead(stack, 15), 10)
    hold_req = {"expertId": OLLI.expert_id, "start": z(start), "durationMinutes": 45}
    first = stack.as_customer(new_customer(), "POST", "/api/slots/hold", json=hold_req)
    assert first.status_code == 201
    stack.host.advance(minutes=11)
    booked = stack.as_customer(new_customer(), "POST", "/api/appointments", json=booking(start))
    assert booked.status_code == 201, booked.text
    stack.host.wait_idle()

    later = at(weekday_ahead(stack, 15), 12)
    owner = new_customer()
    released = stack.as_customer(
        owner, "POST", "/api/slots/hold", json={**hold_req, "start": z(later)}
    ).json()["holdId"]
    assert stack.as_customer(owner, "DELETE", f"/api/slots/hold/{released}").status_code == 204
    assert (
        stack.as_customer(
            new_customer(), "POST", "/api/slots/hold", json={**hold_req, "start": z(later)}
        ).status_code
        == 201
    )


def test_booking_outside_working_hours_is_422(stack: Stack) -> None:
    """Olli works 08-16: a 15.30 start of 45 minutes would end after 16.00."""
    r = stack.as_customer(
        new_customer(), "POST", "/api/appointments", json=booking(at(weekday_ahead(stack, 14), 15, 30))
    )
    assert r.status_code == 422 and "start" in {e["field"] for e in r.json()["errors"]}


def test_holding_needs_a_signed_in_customer(stack: Stack) -> None:
    """No principal: 401."""
    r = stack.host.post(
        "/api/slots/hold",
        json={"expertId": OLLI.expert_id, "start": "2030-01-01T10:00:00Z", "durationMinutes": 45},
    )
    assert r.status_code == 401
