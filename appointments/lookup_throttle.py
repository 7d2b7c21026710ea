"""The no-login lookup's throttle: it slows a guesser down without locking the customer out.

``POST /api/appointments/lookup`` takes a booking code and a phone number. Two counters guard it,
one per booking code (someone guessing the phone of a known code) and one per source address
(someone trying many codes). The rules (issue 16 §2):

- **Growing delays, never a lock.** Each counter allows ``free`` attempts, then each further one
  doubles the wait (1 s, 2 s, 4 s ... up to :attr:`Policy.max_delay`). There is no "stopped for
  good": whatever a stranger does, the no-login path opens again at most ``max_delay`` after
  their last attempt. Counters not touched for :attr:`Policy.forget_after` start afresh.
- **A success resets** that code's and that source's counters: the owner who knows the phone
  wipes out what a stranger ran up.
- **Counted before judged, with ETags.** An attempt first claims its place in both counters by a
  conditional write, and only a claimed attempt is judged. Fifty parallel guesses therefore get
  exactly ``free`` judgements, not however many read the counter before the first write landed.
- The signed-in owner never meets the throttle (the trigger checks ownership first), so a
  logged-in customer always sees their booking.

Pure: the store is a port (:class:`ThrottleStore`); ``adapters.lookup_throttle`` is the Table one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from appointments.booking import parse_lookup
from appointments.errors import TooManyRequests
from appointments.model import Appointment
from appointments.ports import Clock, StaleRecord
from appointments.service import AppointmentService

MAX_RACE_RETRIES = 64  # conditional-write retries; 50 parallel callers need at most 50


@dataclass(frozen=True)
class Backoff:
    """One counter: attempts since the last success, and until when the next one must wait."""

    key: str
    attempts: int = 0
    blocked_until: datetime | None = None
    last_attempt: datetime | None = None
    etag: str | None = None  # None: not stored yet (the write must create it)


class ThrottleStore(Protocol):
    """Counters by key. ``save`` is conditional: it raises StaleRecord if the row changed (or was
    created) since it was read, so two writers never both win."""

    def get(self, key: str) -> Backoff: ...

    def save(self, counter: Backoff) -> None: ...

    def reset(self, key: str) -> None: ...


@dataclass(frozen=True)
class Policy:
    code_free: int = 3  # a customer mistyping their phone twice is not slowed down
    source_free: int = 10  # one household or office behind one address
    max_delay: timedelta = timedelta(minutes=15)  # the longest a stranger can hold the owner off
    forget_after: timedelta = timedelta(hours=24)


def delay_after(attempts: int, free: int, max_delay: timedelta) -> timedelta:
    """The wait after the ``attempts``-th attempt: none while free, then 1 s, 2 s, 4 s ... capped."""
    if attempts < free:
        return timedelta(0)
    exponent = min(attempts - free, 40)  # 2**40 s is far past any cap; keeps the number small
    return min(timedelta(seconds=2**exponent), max_delay)


def claim(counter: Backoff, now: datetime, free: int, policy: Policy) -> Backoff | int:
    """The counter with this attempt counted, or the seconds to wait when it must not be made."""
    if counter.last_attempt is not None and now - counter.last_attempt >= policy.forget_after:
        counter = replace(counter, attempts=0, blocked_until=None)
    if counter.blocked_until is not None and now < counter.blocked_until:
        return max(1, int((counter.blocked_until - now).total_seconds() + 0.999))
    attempts = counter.attempts + 1
    wait = delay_after(attempts, free, policy.max_delay)
    return replace(counter, attempts=attempts, blocked_until=now + wait if wait else None, last_attempt=now)


def source_key(source: str) -> str:
    return f"src:{source}"


def code_key(booking_code: str) -> str:
    return f"code:{booking_code}"


class LookupThrottle:
    def __init__(self, store: ThrottleStore, clock: Clock, policy: Policy | None = None) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy or Policy()

    def _claim(self, key: str, free: int) -> None:
        for _ in range(MAX_RACE_RETRIES):
            result = claim(self.store.get(key), self.clock.now(), free, self.policy)
            if isinstance(result, int):
                raise TooManyRequests("too_many_attempts", retry_after=result)
            try:
                self.store.save(result)
                return
            except StaleRecord:
                continue
        raise TooManyRequests("too_many_attempts", retry_after=1)  # pragma: no cover - 64 lost races

    def admit(self, booking_code: str, source: str | None) -> None:
        """Count one attempt on the source, then on the code; 429 with Retry-After when either waits.

        The source goes first: a guesser stopped by their own address's counter spends nothing of
        the code's, so they cannot use up the owner's free attempts from a throttled address.
        Without a trusted source address only the code counts (``http_triggers.forwarded``).
        """
        if source is not None:
            self._claim(source_key(source), self.policy.source_free)
        self._claim(code_key(booking_code), self.policy.code_free)

    def succeeded(self, booking_code: str, source: str | None) -> None:
        self.store.reset(code_key(booking_code))
        if source is not None:
            self.store.reset(source_key(source))


class GuardedLookup:
    """Booking code + phone number without a login, behind the throttle."""

    def __init__(self, appointments: AppointmentService, throttle: LookupThrottle) -> None:
        self.appointments = appointments
        self.throttle = throttle

    def lookup(self, payload: Any, source: str | None, signed_in: str | None = None) -> Appointment:
        """The booking, for the right phone number. ``signed_in`` is the caller's customer id if they
        are logged in: the owner's own booking is judged without the throttle, so nothing a
        stranger did can keep a logged-in customer from it."""
        # Malformed input (400/422) is refused before counting: it is not a guess.
        req = parse_lookup(payload, self.appointments.settings.phone_default_region)
        if signed_in is not None and self.appointments.repo.get(signed_in, req.booking_code) is not None:
            return self.appointments.lookup(payload)
        self.throttle.admit(req.booking_code, source)
        found = self.appointments.lookup(payload)  # a NotFound stays counted
        self.throttle.succeeded(req.booking_code, source)
        return found
