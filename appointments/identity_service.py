"""Issuing and verifying identification codes (docs/ARCHITECTURE.md, "Security") on the ports.

Outcomes other than success are domain errors (``NoCode``, ``WrongCode``, ``CodeExpired``,
``CodeLocked``), which the HTTP layer's one problem+json mapping answers. Each code write that
changes the lifecycle commits its event to the appointment's outbox in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from appointments import identity
from appointments.booking import parse_identity_code
from appointments.errors import CodeExpired, CodeLocked, Conflict, Locked, NoCode, TooManyRequests, WrongCode
from appointments.identity import FailureCounter, Outcome
from appointments.lifecycle import CODE_ISSUE_PHASES, CODE_VERIFY_PHASES, EventType
from appointments.model import Appointment, Phase
from appointments.ports import (
    AppointmentRepository,
    AuditEntry,
    Clock,
    IdentityStore,
    OutboxEntry,
    StaleRecord,
)
from appointments.service import AppointmentService
from appointments.settings import Settings
from appointments.timerules import iso

MAX_RACE_RETRIES = 50  # ETag retries; far above what 50 parallel requests need


@dataclass(frozen=True)
class IssuedCode:
    appointment: Appointment
    code: str  # the plain code: returned once, to the expert who asked
    expires_at: datetime
    events: tuple[OutboxEntry, ...]


@dataclass(frozen=True)
class Verified:
    appointment: Appointment
    events: tuple[OutboxEntry, ...]  # empty for a retried request that had verified already


class IdentityService:
    def __init__(
        self, appointments: AppointmentService, store: IdentityStore, clock: Clock, settings: Settings
    ) -> None:
        self.appointments = appointments
        self.repo: AppointmentRepository = appointments.repo
        self.store = store
        self.clock = clock
        self.settings = settings

    def _audit(self, code: str, actor: str, action: str, detail: str = "") -> None:
        self.repo.audit(AuditEntry(code, self.clock.now(), actor, action, detail))

    # --- expert ------------------------------------------------------------------------------

    def issue(self, expert_id: str, booking_code: str) -> IssuedCode:
        """Make a fresh code for the expert's own appointment; returns it once with its expiry."""
        a = self.appointments.expert_appointment(expert_id, booking_code)
        if a.phase not in CODE_ISSUE_PHASES:
            raise Conflict("wrong_phase", reason="wrong_phase", phase=a.phase.value)
        now = self.clock.now()
        code, record = identity.issue(
            a.booking_code,
            expert_id,
            now,
            self.settings.code_ttl,
            self.settings.code_pepper.value,
            self.settings.code_digits,
        )
        event = OutboxEntry.new(
            a.booking_code, EventType.CODE_ISSUED, {"expiresAt": iso(record.expires_at)}, now
        )
        self.store.put_code(record, event)
        self._audit(
            a.booking_code, f"expert:{expert_id}", "code_issued", f"expires {record.expires_at:%H:%M:%S}Z"
        )
        return IssuedCode(a, code, record.expires_at, (event,))

    # --- customer ----------------------------------------------------------------------------

    def _check_throttle(self, counter: FailureCounter, now: datetime) -> None:
        wait = identity.retry_after(counter, now, self.settings.max_consecutive_failures)
        if wait == -1:
            raise Locked("too_many_failures", reason="too_many_failures")
        if wait is not None:
            raise TooManyRequests("too_many_attempts", retry_after=wait)

    def _count_failure(self, key: str, free_failures: int = 3, counter: FailureCounter | None = None) -> None:
        for _ in range(MAX_RACE_RETRIES):
            counter = counter if counter is not None else self.store.get_counter(key)
            try:
                self.store.save_counter(identity.after_failure(counter, self.clock.now(), free_failures))
                return
            except StaleRecord:
                counter = None

    def verify(self, customer_id: str, booking_code: str, payload: Any) -> Verified:
        """The customer's entry of the expert's code: Verified, or a domain error saying why not."""
        a = self.appointments.get(customer_id, booking_code)  # 404 for anyone but the owner
        entered = parse_identity_code(payload, self.settings.code_digits)
        now = self.clock.now()
        counter_key = f"verify:{customer_id}"
        counter = self.store.get_counter(counter_key)
        self._check_throttle(counter, now)
        if a.phase not in CODE_VERIFY_PHASES | {Phase.VERIFIED}:
            raise NoCode(phase=a.phase.value)
        for _ in range(MAX_RACE_RETRIES):
            result = identity.verify(
                self.store.get_code(a.booking_code),
                entered,
                now,
                self.settings.code_pepper.value,
                self.settings.code_max_attempts,
            )
            event = None
            if result.outcome is Outcome.VERIFIED or result.just_locked:
                name = (
                    EventType.CODE_VERIFIED if result.outcome is Outcome.VERIFIED else EventType.CODE_LOCKED
                )
                event = OutboxEntry.new(a.booking_code, name, {}, now)
            if result.record is None:
                break
            try:
                # If-Match: parallel guesses cannot overshoot; the event commits with the attempt.
                self.store.update_code(result.record, event)
                break
            except StaleRecord:
                continue
        else:  # pragma: no cover - would need 50 lost races in a row
            raise Conflict("busy", reason="busy")
        match result.outcome:
            case Outcome.VERIFIED:
                if counter.etag is not None:
                    self.store.reset_counter(counter_key)
                self._audit(a.booking_code, "customer", "identity_verified")
                return Verified(a, (event,) if event else ())
            case Outcome.REPEATED:
                return Verified(a, ())
            case Outcome.NONE:
                raise NoCode(phase=a.phase.value)
            case Outcome.EXPIRED:
                raise CodeExpired()
        # a counted wrong attempt (or a code locked already)
        if result.record is not None:
            self._count_failure(counter_key, counter=counter)
            self._audit(
                a.booking_code,
                "customer",
                "code_attempt_failed",
                f"attempts left {result.attempts_left}" + (", locked" if result.just_locked else ""),
            )
        if result.outcome is Outcome.LOCKED:
            raise CodeLocked(committed=(event,) if event else ())
        raise WrongCode(result.attempts_left)
