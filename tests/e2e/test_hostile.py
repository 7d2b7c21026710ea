"""Hostile input, replayed from the probe of issue 16: every case gets the right 4xx as a
localised problem, and the store is unchanged afterwards."""

from __future__ import annotations

import base64
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from appointments.principal import encode_principal
from tests.e2e.conftest import MATLEENA, Stack, customer_headers
from tests.e2e.test_identity import in_lobby, issue, wrong

PHONE = "+358401234567"


def new_customer() -> str:
    return f"hostile-{uuid.uuid4().hex[:10]}"


def booking(stack: Stack, **change: Any) -> dict[str, Any]:
    body = {
        "expertId": MATLEENA.expert_id,
        "topic": "loans.home-loan",
        "channel": "online",
        "start": stack.slot(days=3, hour=11).isoformat(),
        "durationMinutes": 30,
        "language": "fi",
        "phone": PHONE,
    }
    body.update(change)
    return body


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    doc: dict[str, Any] = r.json()
    assert doc["status"] == status and doc["code"] and doc["detail"]
    return doc


def raw_post(stack: Stack, path: str, text: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """POST a JSON text as written (escapes such as \\ud800 reach the server unchanged)."""
    return stack.host.post(
        path, content=text.encode(), headers={"content-type": "application/json", **(headers or {})}
    )


def stored(stack: Stack, who: str) -> list[Any]:
    return stack.repo.list_for_customer(who)


# --- 1. strings that cannot be stored or shown --------------------------------------------------


@pytest.mark.parametrize(
    "escaped", ["\\ud800", "\\udfff x", "a\\u0000b", "\\u001b[31m", "\\u202egnp.exe", "line\\r\\nbreak"]
)
def test_extra_info_with_a_surrogate_or_control_character_is_refused_and_nothing_is_stored(
    stack: Stack, escaped: str
) -> None:
    """Lone surrogates, NUL, ESC, RLO and CR: 400 naming extraInfo, no booking, no orchestration."""
    who = new_customer()
    text = json.dumps(booking(stack))[:-1] + f', "extraInfo": "{escaped}"}}'
    doc = problem(raw_post(stack, "/api/appointments", text, customer_headers(who)), 400)
    assert [e["field"] for e in doc["errors"]] == ["extraInfo"]
    assert stored(stack, who) == []


def test_a_newline_in_extra_info_is_kept(stack: Stack) -> None:
    """Free text may hold newlines: that is how people write."""
    who = new_customer()
    # stack.book takes the first free slot: a fixed start could be taken by another module's test.
    booked = stack.book(who, extraInfo="rivi 1\nrivi 2")
    assert booked["extraInfo"] == "rivi 1\nrivi 2"


# --- 4. inputs that used to answer 500 -----------------------------------------------------------


def deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize(
    ("method", "path", "who"),
    [
        ("POST", "/api/appointments", "customer"),
        ("PATCH", "/api/appointments/2KMEVE6X", "customer"),
        ("POST", "/api/appointments/lookup", None),
        ("POST", "/api/appointments/2KMEVE6X/identity-verification", "customer"),
        ("POST", "/api/slots/hold", "customer"),
    ],
)
def test_json_nested_a_thousand_deep_is_a_400_on_every_json_route(
    stack: Stack, method: str, path: str, who: str | None
) -> None:
    """The parser recursed into a RecursionError (500); now the depth is counted first."""
    headers = {"content-type": "application/json", **(customer_headers(new_customer()) if who else {})}
    r = stack.host.request(method, path, content=deep(1000).encode(), headers=headers)
    assert r.status_code in (400, 404), r.text  # 404: the PATCH's booking is checked first
    assert r.status_code != 404 or method == "PATCH"


def test_a_body_over_the_limit_is_a_413(stack: Stack) -> None:
    """A 1 MB booking is not a booking: 413 from the app, before parsing."""
    who = new_customer()
    r = raw_post(
        stack,
        "/api/appointments",
        json.dumps(booking(stack, extraInfo="x" * 1_000_000)),
        customer_headers(who),
    )
    problem(r, 413)
    assert stored(stack, who) == []


@pytest.mark.parametrize("bad", ["a/b", "a#b", "a?b", "a\\b", "a b", "ä", "x" * 129])
def test_key_fields_outside_the_alphabet_are_refused(stack: Stack, bad: str) -> None:
    """Table key characters in Idempotency-Key, expertId, holdId or the customer id: 4xx, nothing stored."""
    who = new_customer()
    headers = {**customer_headers(who), "Idempotency-Key": bad}
    if bad.isascii():
        problem(stack.host.post("/api/appointments", json=booking(stack), headers=headers), 400)
    for field in ("expertId", "holdId"):
        doc = problem(
            stack.as_customer(who, "POST", "/api/appointments", json=booking(stack, **{field: bad})), 422
        )
        assert field in [e["field"] for e in doc["errors"]]
    assert stored(stack, who) == []
    forged = {"x-ms-client-principal": encode_principal(bad)}
    problem(stack.host.post("/api/appointments", json=booking(stack), headers=forged), 401)
    assert stored(stack, bad) == [] if bad.isascii() else True


@pytest.mark.parametrize("year", ["0001", "9999"])
def test_dates_at_year_one_or_9999_are_refused(stack: Stack, year: str) -> None:
    """start, from and date at the ends of the calendar: 4xx, no OverflowError."""
    who = new_customer()
    problem(
        stack.as_customer(
            who, "POST", "/api/appointments", json=booking(stack, start=f"{year}-01-01T00:00:00Z")
        ),
        422,
    )
    assert stored(stack, who) == []
    r = stack.host.get(
        "/api/slots", params={"topic": "loans.home-loan", "channel": "online", "from": f"{year}-12-31"}
    )
    problem(r, 400)
    problem(
        stack.as_expert(
            MATLEENA.expert_id, "GET", "/api/expert/appointments", params={"date": f"{year}-12-31"}
        ),
        400,
    )


@pytest.mark.parametrize(
    "start",
    [
        "2026-12-08 10:00:00Z",
        "2026-W50-2T10:00:00Z",
        "20261208T100000Z",
        "2026-12-08T10:00:00+00:30",
        "2026-12-08T10:00:00",
        "２０２６-12-08T10:00:00Z",
    ],
)
def test_lenient_timestamps_are_refused(stack: Stack, start: str) -> None:
    """Space separator, week date, basic format, an offset no zone has, naive, fullwidth digits."""
    who = new_customer()
    doc = problem(stack.as_customer(who, "POST", "/api/appointments", json=booking(stack, start=start)), 422)
    assert [e["code"] for e in doc["errors"]] == ["datetime_invalid"]
    assert stored(stack, who) == []


def test_a_manage_token_whose_time_overflows_is_a_401(stack: Stack) -> None:
    """An expiry in year 10^20 used to raise OverflowError (500)."""
    payload = base64.urlsafe_b64encode(b"2KMEVE6X." + b"9" * 30).decode().rstrip("=")
    r = stack.host.get("/api/appointments/2KMEVE6X", headers={"X-Booking-Token": f"{payload}.sig"})
    problem(r, 401)


@pytest.mark.parametrize("forwarded", ["1.2.3.4/5", "9" * 2000, "[::1", "unknown, , ,", "1.2.3.4:99999"])
def test_odd_forwarded_for_values_are_no_500(stack: Stack, forwarded: str) -> None:
    """The lookup reads the trusted hop and ignores what it cannot parse."""
    r = stack.host.post(
        "/api/appointments/lookup",
        json={"bookingCode": "ZZZZZZZZ", "phone": PHONE},
        headers={"X-Forwarded-For": forwarded},
    )
    assert r.status_code in (404, 429), r.text


# --- 5. lenient parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize("entered", ["١٢٣٤٥٦", "１２３４５６", "۱۲۳۴۵۶"])
def test_identification_code_in_other_digits_is_malformed_and_not_counted(stack: Stack, entered: str) -> None:
    """Arabic-Indic, fullwidth and Persian digits: 400, and the code still has all its attempts."""
    who = new_customer()
    code = in_lobby(stack, who)
    secret = issue(stack, code)
    path = f"/api/appointments/{code}/identity-verification"
    problem(stack.as_customer(who, "POST", path, json={"code": entered}), 400)
    record = stack.repo.get_code(code)
    assert record is not None and record.attempts == 0
    assert stack.as_customer(who, "POST", path, json={"code": wrong(secret)}).json()["attemptsLeft"] == 2


@pytest.mark.parametrize("method", ["PATCH", "GET", "DELETE"])
def test_other_methods_on_the_lookup_path_are_405(stack: Stack, method: str) -> None:
    """Not the 404 of a booking called "lookup"."""
    r = stack.as_customer(new_customer(), method, "/api/appointments/lookup", json={"start": "x"})
    problem(r, 405)
    assert r.headers["allow"] == "POST"


# --- 2. nobody can lock a customer out ----------------------------------------------------------


def lookup(stack: Stack, code: str, phone: str, source: str, **headers: str) -> httpx.Response:
    return stack.host.post(
        "/api/appointments/lookup",
        json={"bookingCode": code, "phone": phone},
        headers={"X-Forwarded-For": source, **headers},
    )


def test_fifty_parallel_wrong_lookups_are_judged_exactly_three_times(stack: Stack) -> None:
    """Counted before judged, with ETags: 3 answers 404, the other 47 wait (429 with Retry-After)."""
    code = stack.book(new_customer())["bookingCode"]
    url = f"{stack.host.base_url}/api/appointments/lookup"

    def guess(i: int) -> int:
        return httpx.post(
            url,
            json={"bookingCode": code, "phone": f"+3584099{i:05d}"},
            headers={"X-Forwarded-For": f"198.51.{i // 200}.{i % 200 + 1}"},
            timeout=60,
        ).status_code

    with ThreadPoolExecutor(max_workers=25) as pool:
        statuses = list(pool.map(guess, range(50)))
    assert statuses.count(404) == 3 and statuses.count(429) == 47


def test_a_stranger_locks_the_no_login_lookup_only_for_a_bounded_time(stack: Stack) -> None:
    """A stranger guessing phones from rotating addresses, as fast as allowed, well past the point
    where the delay reaches its cap: the owner's lookup waits at most 15 minutes, the signed-in
    owner sees the booking all along, and the owner's success resets the counter."""
    owner = new_customer()
    code = stack.book(owner)["bookingCode"]
    judged = 0
    while judged < 20:  # the 14th guess already waits the full 15 minutes (2**10 s > 900 s)
        r = lookup(stack, code, f"+3585011{judged:04d}", f"203.0.113.{judged % 250 + 1}")
        if r.status_code == 429:
            stack.host.advance(int(r.headers["retry-after"]))
        else:
            assert r.status_code == 404, r.text
            judged += 1
    refused = lookup(stack, code, PHONE, "192.0.2.10")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) <= 15 * 60
    signed_in = lookup(stack, code, PHONE, "192.0.2.10", **customer_headers(owner))
    assert signed_in.status_code == 200 and signed_in.json()["bookingCode"] == code
    assert stack.as_customer(owner, "GET", f"/api/appointments/{code}").status_code == 200
    stack.host.advance(15 * 60)
    assert lookup(stack, code, PHONE, "192.0.2.10").status_code == 200
    assert lookup(stack, code, "+358500000000", "192.0.2.11").status_code == 404  # counter reset


# --- localisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "title"),
    [(None, "Tarkista tiedot"), ("sv-FI,sv;q=0.9", "Kontrollera uppgifterna"), ("en", "Invalid request")],
)
def test_problems_speak_the_callers_language(stack: Stack, accept: str | None, title: str) -> None:
    """Accept-Language picks fi, sv or en; Finnish by default, as the portal."""
    headers = {"Accept-Language": accept} if accept else {}
    who = new_customer()
    r = stack.as_customer(who, "POST", "/api/appointments", json=booking(stack, phone="12"), headers=headers)
    doc = problem(r, 422)
    assert doc["title"] == title and doc["errors"][0]["code"] == "phone_invalid"
    assert r.headers["content-language"] == (accept or "fi")[:2]


def test_domestic_phone_forms_book_and_look_up_the_same_booking(stack: Stack) -> None:
    """040 123 4567 at booking; +358 40…, 00358 40… and 0401234567 all find it."""
    who = new_customer()
    code = stack.book(who, phone="040 123 4567")["bookingCode"]
    for typed in ("+358 40 123 4567", "00358 40 123 4567", "0401234567"):
        found = lookup(stack, code, typed, f"192.0.2.{uuid.uuid4().int % 200 + 20}")
        assert found.status_code == 200, found.text


def test_a_lone_surrogate_already_stored_cannot_poison_the_views(stack: Stack) -> None:
    """Issue 16 §1 from the other side: a record written before validation existed, holding
    "\\ud800", is served by the list, the booking, the lookup and the expert's day (escaped JSON)."""
    owner = new_customer()
    booked = stack.book(owner, expert=MATLEENA.expert_id)
    code = booked["bookingCode"]
    record = stack.repo.get(owner, code)
    assert record is not None
    stack.repo.update(record.with_changes(extra_info="ennen \ud800 jälkeen"))
    mine = stack.as_customer(owner, "GET", "/api/appointments")
    assert mine.status_code == 200 and "\\ud800" in mine.text
    assert [a["extraInfo"] for a in mine.json()["appointments"]] == ["ennen \ud800 jälkeen"]
    assert stack.as_customer(owner, "GET", f"/api/appointments/{code}").status_code == 200
    assert lookup(stack, code, PHONE, "192.0.2.200").status_code == 200
    day = stack.as_expert(
        MATLEENA.expert_id, "GET", "/api/expert/appointments", params={"date": booked["start"][:10]}
    )
    assert day.status_code == 200 and code in day.text
