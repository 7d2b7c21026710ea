"""The lookup throttle's Table store on Azurite: the conflict rules the exact counting relies on."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from adapters.lookup_throttle import TableThrottleStore
from appointments.errors import TooManyRequests
from appointments.lookup_throttle import Backoff, LookupThrottle, code_key
from appointments.ports import StaleRecord
from tests.fakes import FakeClock


@pytest.fixture
def store(storage_connection_string: str) -> TableThrottleStore:
    return TableThrottleStore(TableServiceClient.from_connection_string(storage_connection_string))


def key() -> str:
    return f"code:{uuid.uuid4().hex[:8].upper()}"


def test_a_counter_round_trips_with_its_times(store: TableThrottleStore) -> None:
    """What is saved is read back, times to the microsecond, with an ETag."""
    k, when = key(), datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=UTC)
    store.save(Backoff(k, 4, when + timedelta(seconds=2), when))
    read = store.get(k)
    assert (read.attempts, read.blocked_until, read.last_attempt) == (4, when + timedelta(seconds=2), when)
    assert read.etag


def test_two_first_attempts_cannot_both_create_the_counter(store: TableThrottleStore) -> None:
    """Create fails when the row exists: StaleRecord, so the loser reads again."""
    k = key()
    store.save(Backoff(k, 1))
    with pytest.raises(StaleRecord):
        store.save(Backoff(k, 1))


def test_a_write_with_a_stale_etag_is_refused(store: TableThrottleStore) -> None:
    """If-Match: the second writer from the same read loses."""
    k = key()
    store.save(Backoff(k, 1))
    read = store.get(k)
    store.save(Backoff(k, 2, etag=read.etag))
    with pytest.raises(StaleRecord):
        store.save(Backoff(k, 2, etag=read.etag))


def test_reset_forgets_and_is_idempotent(store: TableThrottleStore) -> None:
    """A success deletes the counter; deleting a missing one is fine."""
    k = key()
    store.save(Backoff(k, 3))
    store.reset(k)
    store.reset(k)
    assert store.get(k) == Backoff(k)


def test_fifty_parallel_attempts_on_azurite_count_exactly_three(store: TableThrottleStore) -> None:
    """The domain's claim loop on the real store: 3 admitted, 47 told to wait, counter at 3."""
    throttle = LookupThrottle(store, FakeClock())
    code = uuid.uuid4().hex[:8].upper()

    def attempt(_: int) -> bool:
        try:
            throttle.admit(code, None)
        except TooManyRequests:
            return False
        return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(attempt, range(50)))
    assert results.count(True) == 3
    assert store.get(code_key(code)).attempts == 3
