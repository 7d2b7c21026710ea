"""The identification code, as pure rules: generation, hashing, verification, back-off."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from appointments import identity
from appointments.identity import FailureCounter, Outcome

NOW = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
PEPPER = "pepper-for-tests-0123456789"


def fresh() -> tuple[str, identity.CodeRecord]:
    return identity.issue("2KMEVE6X", "expert-1", NOW, timedelta(minutes=10), PEPPER)


def test_codes_are_six_random_digits() -> None:
    """Six digits from secrets; almost never the same twice; fewer digits are refused."""
    codes = {identity.new_code() for _ in range(500)}
    assert all(len(c) == 6 and c.isdigit() for c in codes) and len(codes) > 450
    assert len(identity.new_code(8)) == 8
    with pytest.raises(ValueError):
        identity.new_code(4)


def test_the_record_holds_a_salted_peppered_hash_not_the_code() -> None:
    """The stored record never contains the code; the same code hashes differently per salt and booking."""
    code, record = fresh()
    assert code not in repr(record)
    _, other = fresh()
    assert record.salt != other.salt
    assert identity.hash_code(code, record.salt, PEPPER, "2KMEVE6X") == record.code_hash
    assert identity.hash_code(code, record.salt, PEPPER, "ZZZZZZZZ") != record.code_hash
    assert identity.hash_code(code, record.salt, "another-pepper", "2KMEVE6X") != record.code_hash
    assert record.expires_at == NOW + timedelta(minutes=10)


def test_the_right_code_verifies_once() -> None:
    """Right code: verified and marked used; afterwards it only repeats its answer, and writes nothing."""
    code, record = fresh()
    result = identity.verify(record, f" {code[:3]} {code[3:]} ", NOW, PEPPER, 3)
    assert result.outcome is Outcome.VERIFIED and result.record is not None and result.record.used
    again = identity.verify(result.record, code, NOW + timedelta(minutes=30), PEPPER, 3)
    assert again.outcome is Outcome.REPEATED and again.record is None
    other = "0" * 6 if code != "0" * 6 else "1" * 6
    assert identity.verify(result.record, other, NOW, PEPPER, 3).outcome is Outcome.NONE


def test_wrong_codes_count_down_then_lock() -> None:
    """Each wrong code costs one attempt; the third locks; then even the right code is refused."""
    code, record = fresh()
    wrong = "000000" if code != "000000" else "111111"
    r1 = identity.verify(record, wrong, NOW, PEPPER, 3)
    assert (r1.outcome, r1.attempts_left) == (Outcome.WRONG, 2)
    assert r1.record is not None
    r2 = identity.verify(r1.record, wrong, NOW, PEPPER, 3)
    assert (r2.outcome, r2.attempts_left) == (Outcome.WRONG, 1)
    assert r2.record is not None
    r3 = identity.verify(r2.record, wrong, NOW, PEPPER, 3)
    assert r3.outcome is Outcome.LOCKED and r3.just_locked and r3.record is not None
    r4 = identity.verify(r3.record, code, NOW, PEPPER, 3)
    assert r4.outcome is Outcome.LOCKED and not r4.just_locked and r4.record is None


def test_an_expired_code_is_not_even_compared() -> None:
    """After ten minutes: expired, and no attempt is counted."""
    code, record = fresh()
    result = identity.verify(record, code, NOW + timedelta(minutes=10), PEPPER, 3)
    assert result.outcome is Outcome.EXPIRED and result.record is None


def test_no_code_means_none() -> None:
    """Without a record there is nothing to verify."""
    assert identity.verify(None, "123456", NOW, PEPPER, 3).outcome is Outcome.NONE


def test_failures_slow_down_with_growing_delays_and_stop_at_the_limit() -> None:
    """Three free failures, then 1 s, 2 s, 4 s …; at the limit the customer is stopped for good."""
    counter = FailureCounter("verify:c")
    delays = []
    for _ in range(6):
        counter = identity.after_failure(counter, NOW)
        delays.append(identity.retry_after(counter, NOW, 100))
    assert delays == [None, None, 1, 2, 4, 8]
    assert identity.retry_after(counter, NOW + timedelta(seconds=9), 100) is None
    assert identity.retry_after(replace(counter, failures=100), NOW, 100) == -1
    capped = identity.after_failure(replace(counter, failures=50), NOW)
    assert capped.blocked_until == NOW + timedelta(seconds=900)


def test_manage_tokens_name_one_booking_and_expire() -> None:
    """A lookup token verifies for its booking until it expires; tampering or another key fails."""
    from appointments import manage_token

    token, expires = manage_token.issue("2KMEVE6X", PEPPER, NOW)
    assert expires == NOW + timedelta(minutes=15)
    assert manage_token.verify(token, PEPPER, NOW) == "2KMEVE6X"
    assert manage_token.verify(token, PEPPER, expires) is None
    assert manage_token.verify(token, "another-pepper-0123456789", NOW) is None
    body, sig = token.split(".")
    other, _ = manage_token.issue("ZZZZZZZZ", PEPPER, NOW)
    assert manage_token.verify(f"{other.split('.')[0]}.{sig}", PEPPER, NOW) is None
    for bad in ("", "x", "a.b.c", "%%%.%%%", body + "." + sig[:-1]):
        assert manage_token.verify(bad, PEPPER, NOW) is None
