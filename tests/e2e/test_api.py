"""The customer and expert HTTP API: success and error paths of every endpoint, over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
import pytest

from tests.e2e.conftest import MAIJA, MATLEENA, OLLI, Stack, customer_headers, expert_headers

PROBLEM = "application/problem+json"


def new_customer() -> str:
    return f"cust-{uuid.uuid4().hex[:10]}"


def body(stack: Stack, **kw: object) -> dict[str, object]:
    b: dict[str, object] = {
        "expertId": MATLEENA.expert_id,
        "topic": "loans.home-loan",
        "channel": "online",
        "start": stack.slot(days=3).isoformat(),
        "durationMinutes": 45,
        "language": "fi",
        "phone": "+358401234567",
    }
    b.update(kw)
    return b


def assert_problem(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    doc = dict(r.json())
    assert doc["status"] == status and doc["title"] and doc["type"].startswith("https://")
    return doc


def test_booking_answers_201_with_the_portal_view(stack: Stack) -> None:
    """A booking returns its code, Helsinki time, expert and join window."""
    who = new_customer()
    r = stack.as_customer(
        who, "POST", "/api/appointments", json=body(stack, start=stack.slot(days=3, hour=9).isoformat())
    )
    assert r.status_code == 201
    view = r.json()
    assert (
        len(view["bookingCode"]) == 8 and r.headers["location"] == f"/api/appointments/{view['bookingCode']}"
    )
    assert view["expert"]["displayName"] == "Matleena Malliharju"
    assert view["topic"]["label"] == "Lainat, Asuntolainaneuvottelu"
    assert " klo " in view["startLocal"] and view["durationLabel"] == "45 minuuttia"
    assert view["phase"] == "booked" and view["canJoin"] is False
    assert "+358401234567" not in r.text  # the phone is masked even for its owner


def test_idempotency_key_replays_over_http(stack: Stack) -> None:
    """Same Idempotency-Key: 201 then 200 with the same code; a different body under it: 422."""
    who = new_customer()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    b = body(stack, start=stack.slot(days=3, hour=12).isoformat())
    first = stack.as_customer(who, "POST", "/api/appointments", json=b, headers=key)
    second = stack.as_customer(who, "POST", "/api/appointments", json=b, headers=key)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["bookingCode"] == second.json()["bookingCode"]
    other = stack.as_customer(
        who, "POST", "/api/appointments", json={**b, "durationMinutes": 30}, headers=key
    )
    assert_problem(other, 422)
    listed = stack.as_customer(who, "GET", "/api/appointments").json()["appointments"]
    assert [a["bookingCode"] for a in listed] == [first.json()["bookingCode"]]


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"durationMinutes": 50}, 422, "durationMinutes"),
        ({"topic": "nope"}, 422, "topic"),
        ({"phone": "040 12"}, 422, "phone"),  # domestic forms are fine; this one cannot exist
        ({"language": "de"}, 422, "language"),
        ({"start": "2020-01-01T10:00:00Z"}, 422, "start"),
        ({"start": "2030-01-01T10:07:00Z"}, 422, "start"),
        ({"expertId": "no-such-expert"}, 422, "expertId"),
    ],
)
def test_bad_bookings_get_problem_json_and_store_nothing(
    stack: Stack, change: dict[str, object], status: int, field: str
) -> None:
    """Each bad field: the right status, the field named, nothing stored."""
    who = new_customer()
    r = stack.as_customer(who, "POST", "/api/appointments", json=body(stack, **change))
    doc = assert_problem(r, status)
    assert field in {e["field"] for e in doc["errors"]}  # type: ignore[attr-defined]
    assert stack.as_customer(who, "GET", "/api/appointments").json()["appointments"] == []


def test_malformed_requests_are_400(stack: Stack) -> None:
    """Not JSON, not an object, wrong content type: 400."""
    who = new_customer()
    h = customer_headers(who)
    assert_problem(
        stack.host.request(
            "POST", "/api/appointments", headers={**h, "content-type": "application/json"}, content=b"{nope"
        ),
        400,
    )
    assert_problem(stack.host.request("POST", "/api/appointments", headers=h, json=[1]), 400)
    assert_problem(
        stack.host.request(
            "POST", "/api/appointments", headers={**h, "content-type": "text/plain"}, content=b"{}"
        ),
        400,
    )


def test_a_taken_slot_is_409(stack: Stack) -> None:
    """Two customers, one slot: the second gets 409."""
    b = body(
        stack, start=stack.slot(days=3, hour=13).isoformat(), expertId=OLLI.expert_id, topic="daily.cards"
    )
    assert stack.as_customer(new_customer(), "POST", "/api/appointments", json=b).status_code == 201
    assert_problem(stack.as_customer(new_customer(), "POST", "/api/appointments", json=b), 409)


def test_identity_is_required(stack: Stack) -> None:
    """No principal, or a garbled one: 401 with problem+json."""
    assert_problem(stack.host.request("GET", "/api/appointments"), 401)
    assert_problem(
        stack.host.request("GET", "/api/appointments", headers={"x-ms-client-principal": "%%%"}), 401
    )


def test_customers_only_see_their_own(stack: Stack) -> None:
    """Another customer's code is 404 on every route, exactly like an unknown code."""
    owner = new_customer()
    code = stack.book(owner, stack.slot(days=3, hour=14))["bookingCode"]
    intruder = new_customer()
    for method, path, kw in (
        ("GET", f"/api/appointments/{code}", {}),
        ("PATCH", f"/api/appointments/{code}", {"json": {"durationMinutes": 30}}),
        ("DELETE", f"/api/appointments/{code}", {}),
        ("POST", f"/api/appointments/{code}/join", {}),
        ("POST", f"/api/appointments/{code}/identity-verification", {"json": {"code": "123456"}}),
    ):
        mine = stack.as_customer(intruder, method, path, **kw)
        unknown = stack.as_customer(intruder, method, path.replace(code, "ZZZZZZZZ"), **kw)
        assert_problem(mine, 404)
        assert mine.json()["detail"] == unknown.json()["detail"]
    assert stack.as_customer(owner, "GET", f"/api/appointments/{code}").status_code == 200


def test_experts_only_touch_their_own(stack: Stack) -> None:
    """Another expert's appointment is 404; a customer on expert routes is 403."""
    who = new_customer()
    code = stack.book(who, stack.slot(days=3, hour=15))["bookingCode"]
    r = stack.as_expert(MAIJA.expert_id, "POST", f"/api/expert/appointments/{code}/end")
    assert_problem(r, 404)
    assert_problem(
        stack.as_expert(MAIJA.expert_id, "POST", f"/api/expert/appointments/{code}/identification-code"), 404
    )
    assert_problem(stack.as_customer(who, "GET", "/api/expert/appointments"), 403)
    day = stack.as_expert(
        MAIJA.expert_id,
        "GET",
        "/api/expert/appointments",
        params={"date": stack.slot(days=3).date().isoformat()},
    ).json()
    assert code not in [a["bookingCode"] for a in day["appointments"]]
    assert_problem(
        stack.as_expert(MAIJA.expert_id, "GET", "/api/expert/appointments", params={"date": "31.12.2026"}),
        400,
    )


def test_change_and_cancel_over_http(stack: Stack) -> None:
    """PATCH reschedules or changes the topic; DELETE cancels; bad changes are 422."""
    who = new_customer()
    code = stack.book(who, stack.slot(days=3, hour=9), expert=MAIJA.expert_id, topic="savings.funds")[
        "bookingCode"
    ]
    r = stack.as_customer(who, "PATCH", f"/api/appointments/{code}", json={"topic": "savings.pension"})
    assert r.status_code == 200 and r.json()["topic"]["id"] == "savings.pension"
    assert_problem(stack.as_customer(who, "PATCH", f"/api/appointments/{code}", json={}), 422)
    assert_problem(
        stack.as_customer(who, "PATCH", f"/api/appointments/{code}", json={"topic": "daily.cards"}), 422
    )  # Maija does not serve cards
    new_start = stack.slot(days=3, hour=10)
    r = stack.as_customer(who, "PATCH", f"/api/appointments/{code}", json={"start": new_start.isoformat()})
    assert r.status_code == 200 and r.json()["revision"] == 1
    r = stack.as_customer(who, "DELETE", f"/api/appointments/{code}")
    assert r.status_code == 200 and r.json()["phase"] == "cancelled"
    assert_problem(
        stack.as_customer(
            who,
            "PATCH",
            f"/api/appointments/{code}",
            json={"start": (new_start + timedelta(hours=1)).isoformat()},
        ),
        410,
    )


def test_lookup_with_code_and_phone(stack: Stack) -> None:
    """No login: the right code + phone shows the booking; a wrong phone is 404; probing is slowed."""
    who = new_customer()
    code = stack.book(who, stack.slot(days=3, hour=11), phone="+358501112233")["bookingCode"]
    r = stack.host.post(
        "/api/appointments/lookup", json={"bookingCode": code.lower(), "phone": "+358 50 111 2233"}
    )
    assert r.status_code == 200 and r.json()["bookingCode"] == code
    for _ in range(3):
        assert_problem(
            stack.host.post("/api/appointments/lookup", json={"bookingCode": code, "phone": "+358409999999"}),
            404,
        )
    limited = stack.host.post(
        "/api/appointments/lookup", json={"bookingCode": code, "phone": "+358501112233"}
    )
    assert_problem(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert_problem(stack.host.post("/api/appointments/lookup", json={"bookingCode": "x", "phone": "1"}), 422)


def test_catalogue_and_expert_directory(stack: Stack) -> None:
    """Topics carry fi/sv/en labels; experts can be filtered by topic."""
    topics = stack.host.get("/api/topics").json()
    assert {t["id"] for t in topics["topics"]} >= {"loans.home-loan", "daily.cards"}
    assert topics["topics"][0]["label"]["sv"]
    experts = stack.host.get("/api/experts", params={"topic": "daily.cards"}).json()["experts"]
    assert [x["displayName"] for x in experts] == ["Olli Osuuskuntalainen"]
    names = {x["displayName"] for x in stack.host.get("/api/experts").json()["experts"]}
    assert {"Matleena Malliharju", "Maija Suomalainen", "Olli Osuuskuntalainen"} <= names
    assert_problem(stack.host.get("/api/experts", params={"topic": "nope"}), 422)


def test_ops_view_needs_a_function_key(stack: Stack) -> None:
    """Operators' list is behind the function key and shows no personal data."""
    assert stack.host.get("/api/ops/appointments").status_code == 401
    r = stack.host.request("GET", "/api/ops/appointments", key=True, params={"phase": "booked"})
    assert r.status_code == 200
    assert "+358" not in r.text and all(a["phase"] == "booked" for a in r.json()["appointments"])
    assert_problem(stack.host.request("GET", "/api/ops/appointments", key=True, params={"phase": "x"}), 400)


def test_expert_headers_helper_is_an_expert(stack: Stack) -> None:
    """The expert console's day view works for the assigned expert."""
    r = stack.host.get("/api/expert/appointments", headers=expert_headers(MATLEENA.expert_id))
    assert r.status_code == 200 and "appointments" in r.json()


def test_without_a_login_the_lookup_token_changes_and_cancels_that_one_booking(stack: Stack) -> None:
    """Code + phone → a short-lived token for GET/PATCH/DELETE of that booking only."""
    who = new_customer()
    booked = stack.book(who, expert=OLLI.expert_id, topic="daily.cards")
    code = booked["bookingCode"]
    other = stack.book(who, expert=MAIJA.expert_id, topic="savings.funds")
    found = stack.host.post("/api/appointments/lookup", json={"bookingCode": code, "phone": "+358401234567"})
    assert found.status_code == 200 and found.headers["cache-control"] == "no-store"
    token = {"X-Booking-Token": found.json()["manageToken"]}
    assert stack.host.get(f"/api/appointments/{code}", headers=token).json()["bookingCode"] == code
    assert_problem(stack.host.get(f"/api/appointments/{other['bookingCode']}", headers=token), 404)
    assert_problem(
        stack.host.get(f"/api/appointments/{code}", headers={"X-Booking-Token": "forged.token"}), 401
    )
    assert_problem(stack.host.get("/api/appointments", headers=token), 401)  # listing needs the login
    assert_problem(stack.host.post(f"/api/appointments/{code}/join", headers=token), 401)
    moved = datetime.fromisoformat(booked["start"].replace("Z", "+00:00")) + timedelta(minutes=30)
    r = stack.host.request(
        "PATCH", f"/api/appointments/{code}", headers=token, json={"start": moved.isoformat()}
    )
    assert r.status_code == 200 and r.json()["revision"] == 1, r.text
    assert (
        stack.host.request("DELETE", f"/api/appointments/{code}", headers=token).json()["phase"]
        == "cancelled"
    )
    stack.host.advance(minutes=16)
    assert_problem(stack.host.get(f"/api/appointments/{code}", headers=token), 401)
