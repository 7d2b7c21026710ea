"""The no-login lookup's throttle: growing delays, exact counting under races, never a lock."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from appointments.errors import TooManyRequests
from appointments.lookup_throttle import LookupThrottle, Policy, code_key, delay_after, source_key
from tests.fakes import FakeClock, FakeThrottleStore

CODE = "2KMEVE6X"


def throttle() -> tuple[LookupThrottle, FakeThrottleStore, FakeClock]:
    store, clock = FakeThrottleStore(), FakeClock()
    return LookupThrottle(store, clock), store, clock


def admitted(t: LookupThrottle, code: str = CODE, source: str | None = "203.0.113.7") -> bool:
    try:
        t.admit(code, source)
    except TooManyRequests:
        return False
    return True


def test_delays_grow_from_one_second_and_stop_at_the_cap() -> None:
    """Free attempts first, then 1 s, 2 s, 4 s ... never more than the cap, however many failures."""
    cap = timedelta(minutes=15)
    assert [delay_after(n, 3, cap).total_seconds() for n in range(1, 8)] == [0, 0, 1, 2, 4, 8, 16]
    assert delay_after(10_000, 3, cap) == cap


def test_three_attempts_per_code_then_the_caller_must_wait() -> None:
    """The fourth attempt on one code inside the delay is refused with how long to wait."""
    t, _, clock = throttle()
    assert [admitted(t, source=f"198.51.100.{i}") for i in range(3)] == [True, True, True]
    with pytest.raises(TooManyRequests) as refused:
        t.admit(CODE, "198.51.100.99")
    assert refused.value.retry_after == 1
    clock.advance(seconds=1)
    assert admitted(t, source="198.51.100.99")


def test_fifty_parallel_attempts_on_one_code_are_judged_exactly_three_times() -> None:
    """Counting before judging, with conditional writes: a burst cannot slip past the counter."""
    t, store, _ = throttle()
    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(lambda i: admitted(t, source=f"192.0.2.{i}"), range(50)))
    assert results.count(True) == 3
    assert store.rows[code_key(CODE)].attempts == 3


def test_a_stranger_cannot_keep_the_owner_out_longer_than_the_cap() -> None:
    """However long a stranger guessed, the owner gets in at most 15 minutes after the last guess."""
    t, _, clock = throttle()
    for i in range(500):  # each guess is made as soon as the previous delay allows
        while not admitted(t, source=f"10.0.{i // 250}.{i % 250}"):
            clock.advance(seconds=60)
    with pytest.raises(TooManyRequests) as refused:
        t.admit(CODE, "192.0.2.1")
    assert refused.value.retry_after <= 15 * 60
    clock.advance(seconds=refused.value.retry_after)
    assert admitted(t, source="192.0.2.1")


def test_a_success_resets_the_code_and_the_source() -> None:
    """The owner's right answer wipes out what was run up on the code and on their address."""
    t, store, _ = throttle()
    for _ in range(3):
        t.admit(CODE, "203.0.113.7")
    t.succeeded(CODE, "203.0.113.7")
    assert code_key(CODE) not in store.rows and source_key("203.0.113.7") not in store.rows
    assert admitted(t)


def test_one_source_trying_many_codes_is_slowed_down() -> None:
    """Ten free attempts per address, then delays, across different codes."""
    t, _, _ = throttle()
    codes = [f"2KMEVE{a}{b}" for a in "23456789" for b in "AB"]
    results = [admitted(t, code=c) for c in codes[:11]]
    assert results == [True] * 10 + [False]


def test_without_a_trusted_source_only_the_code_counts() -> None:
    """No address to trust (0 hops): one shared bucket would let a stranger slow down everyone."""
    t, store, _ = throttle()
    assert all(admitted(t, code=f"2KMEVE{c}X", source=None) for c in "23456789ABCDE")
    assert not any(key.startswith("src:") for key in store.rows)


def test_a_quiet_day_forgets_old_attempts() -> None:
    """A counter untouched for a day starts again from its free attempts."""
    t, store, clock = throttle()
    for _ in range(6):
        clock.advance(seconds=20)
        t.admit(CODE, None)
    clock.advance(hours=24)
    assert admitted(t, source=None)
    assert store.rows[code_key(CODE)].attempts == 1


def test_a_refused_source_spends_nothing_of_the_code() -> None:
    """An address already waiting does not use up the owner's free attempts on the code."""
    t, store, _ = throttle()
    t.policy = Policy(source_free=1)
    t.admit("2KMEVE7X", "203.0.113.7")
    assert not admitted(t, code=CODE, source="203.0.113.7")
    assert code_key(CODE) not in store.rows
