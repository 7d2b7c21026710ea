"""Identity verification over HTTP: parallel guessing, reuse, cross-booking codes, forged principals."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx

from appointments.principal import encode_principal
from devhost.testing import DevhostProcess
from tests.e2e.conftest import MAIJA, MATLEENA, Stack, customer_headers


def new_customer() -> str:
    return f"cust-{uuid.uuid4().hex[:10]}"


def in_lobby(stack: Stack, who: str, start: datetime | None = None, **book: str) -> str:
    booked = stack.book(who, start, **book)
    code = booked["bookingCode"]
    target = datetime.fromisoformat(booked["start"].replace("Z", "+00:00")) - timedelta(minutes=15)
    stack.host.advance((target - stack.now()).total_seconds())
    stack.host.wait_idle()
    assert stack.as_customer(who, "POST", f"/api/appointments/{code}/join").status_code == 200
    stack.host.wait_idle()
    return str(code)


def issue(stack: Stack, code: str, expert: str = MATLEENA.expert_id) -> str:
    r = stack.as_expert(expert, "POST", f"/api/expert/appointments/{code}/identification-code")
    assert r.status_code == 201, r.text
    stack.host.wait_idle()
    return str(r.json()["code"])


def wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def test_fifty_parallel_wrong_guesses_count_exactly_three(stack: Stack) -> None:
    """ETag-counted attempts: 50 concurrent guesses cannot get past the limit of 3."""
    who = new_customer()
    code = in_lobby(stack, who)
    secret = issue(stack, code)
    url = f"{stack.host.base_url}/api/appointments/{code}/identity-verification"

    def guess(_: int) -> int:
        return httpx.post(
            url, headers=customer_headers(who), json={"code": wrong(secret)}, timeout=60
        ).status_code

    with ThreadPoolExecutor(max_workers=25) as pool:
        statuses = list(pool.map(guess, range(50)))
    record = stack.repo.get_code(code)
    assert record is not None and record.attempts == 3
    assert statuses.count(422) == 2
    assert 423 in statuses and set(statuses) <= {422, 423, 429}
    assert stack.phase(code) == "lobby"  # CodeLocked: back to the lobby, once
    failed = [e for e in stack.repo.audit_trail(code) if e.action == "code_attempt_failed"]
    assert len(failed) == 3
    # The right code no longer helps: the code is locked.
    stack.host.advance(60)
    r = stack.as_customer(
        who, "POST", f"/api/appointments/{code}/identity-verification", json={"code": secret}
    )
    assert r.status_code == 423


def test_a_used_code_verifies_nothing_twice(stack: Stack) -> None:
    """Single use: a retry with the used code answers 200 as the first did, and changes nothing."""
    who = new_customer()
    code = in_lobby(stack, who)
    secret = issue(stack, code)
    path = f"/api/appointments/{code}/identity-verification"
    assert stack.as_customer(who, "POST", path, json={"code": secret}).status_code == 200
    stack.host.wait_idle()
    again = stack.as_customer(who, "POST", path, json={"code": secret})
    assert again.status_code == 200 and again.json() == {"bookingCode": code, "verified": True}
    stack.host.wait_idle()
    assert stack.phase(code) == "verified"
    actions = [e.action for e in stack.repo.audit_trail(code)]
    assert actions.count("identity_verified") == 1
    other = stack.as_customer(who, "POST", path, json={"code": wrong(secret)})
    assert other.status_code == 409 and other.json()["type"].endswith("/no-code")


def test_a_code_only_works_for_the_appointment_it_was_issued_for(stack: Stack) -> None:
    """The hash binds the code to its booking code: another appointment's code is wrong here."""
    who = new_customer()
    first_booking = stack.book(who)
    start = datetime.fromisoformat(first_booking["start"].replace("Z", "+00:00"))
    second = str(stack.book(who, start, expert=MAIJA.expert_id, topic="savings.funds")["bookingCode"])
    target = start - timedelta(minutes=15)
    stack.host.advance((target - stack.now()).total_seconds())
    first = str(first_booking["bookingCode"])
    assert stack.as_customer(who, "POST", f"/api/appointments/{first}/join").status_code == 200
    assert stack.as_customer(who, "POST", f"/api/appointments/{second}/join").status_code == 200
    code_for_first = issue(stack, first)
    code_for_second = issue(stack, second, MAIJA.expert_id)
    if code_for_first == code_for_second:  # one in a million: nothing to prove
        return
    r = stack.as_customer(
        who, "POST", f"/api/appointments/{second}/identity-verification", json={"code": code_for_first}
    )
    assert r.status_code == 422 and r.json()["attemptsLeft"] == 2


def test_codes_do_not_leak_into_history_logs_or_audit(stack: Stack) -> None:
    """The code reaches the expert only: not the Durable history, the logs or the audit trail."""
    who = new_customer()
    code = in_lobby(stack, who)
    secret = issue(stack, code)
    stack.as_customer(who, "POST", f"/api/appointments/{code}/identity-verification", json={"code": secret})
    stack.host.wait_idle()
    history = str(stack.host.status(f"appt-{code}", show_history=True))
    assert secret not in history
    record = stack.repo.get_code(code)
    assert record is not None and record.code_hash not in history
    assert secret not in stack.host.output()
    assert all(secret not in e.detail for e in stack.repo.audit_trail(code))


def test_bad_code_input_is_validated(stack: Stack) -> None:
    """Not six digits, or extra fields: 422 and no attempt counted."""
    who = new_customer()
    code = in_lobby(stack, who)
    issue(stack, code)
    path = f"/api/appointments/{code}/identity-verification"
    for body in ({"code": "12345"}, {"code": "abcdef"}, {"code": 123456}, {"code": "123456", "x": 1}):
        assert stack.as_customer(who, "POST", path, json=body).status_code == 422
    record = stack.repo.get_code(code)
    assert record is not None and record.attempts == 0


def test_a_forged_principal_is_refused_when_platform_auth_is_off(storage_connection_string: str) -> None:
    """Outside dev mode and without App Service Authentication, the header is not believed: 401."""
    env = {
        "DEV_MODE": "false",
        "WEBSITE_AUTH_ENABLED": "false",
        "CODE_PEPPER": "p" * 32,
        "PHONE_HMAC_KEY": "k" * 32,
    }
    with DevhostProcess(storage=storage_connection_string, env=env) as host:
        forged = {"x-ms-client-principal": encode_principal("someone", ("Expert",))}
        for method, path in (
            ("GET", "/api/appointments"),
            ("GET", "/api/expert/appointments"),
            ("POST", "/api/expert/appointments/2KMEVE6X/identification-code"),
        ):
            r = host.request(method, path, headers=forged)
            assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    env_on = {**env, "WEBSITE_AUTH_ENABLED": "true"}
    with DevhostProcess(storage=storage_connection_string, env=env_on) as host:
        r = host.request(
            "GET", "/api/appointments", headers={"x-ms-client-principal": encode_principal("c-1")}
        )
        assert r.status_code == 200
