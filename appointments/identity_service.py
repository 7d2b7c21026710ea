"""Issuing and verifying identification codes (DESIGN §7) on the ports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from appointments import identity
from appointments.errors import Conflict, Locked, Problems, TooManyRequests
from appointments.identity import FailureCounter, Outcome, Verification
from appointments.model import Appointment, Phase
from appointments.ports import AppointmentRepository, AuditEntry, Clock, IdentityStore, StaleRecord
from appointments.service import AppointmentService
from appointments.settings import Settings
from appointments.validation import is_code_entry

CODE_PHASES = frozenset({Phase.LOBBY, Phase.CODE_ISSUED})
MAX_RACE_RETRIES = 50  # ETag retries; far above what 50 parallel requests need


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

    def issue(self, expert_id: str, booking_code: str) -> tuple[Appointment, str, datetime]:
        """Make a fresh code for the expert's own appointment; returns it once with its expiry."""
        a = self.appointments.expert_appointment(expert_id, booking_code)
        if a.phase not in CODE_PHASES:
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
        self.store.put_code(record)
        self._audit(
            a.booking_code, f"expert:{expert_id}", "code_issued", f"expires {record.expires_at:%H:%M:%S}Z"
        )
        return a, code, record.expires_at

    # --- customer ----------------------------------------------------------------------------

    def _check_throttle(self, counter: FailureCounter, now: datetime) -> None:
        wait = identity.retry_after(counter, now, self.settings.max_consecutive_failures)
        if wait == -1:
            raise Locked("too_many_failures", reason="too_many_failures")
        if wait is not None:
            raise TooManyRequests("too_many_attempts", retry_after=wait)

    def _count_failure(self, key: str, free_failures: int = 3) -> None:
        for _ in range(MAX_RACE_RETRIES):
            counter = self.store.get_counter(key)
            try:
                self.store.save_counter(identity.after_failure(counter, self.clock.now(), free_failures))
                return
            except StaleRecord:
                continue

    def verify(self, customer_id: str, booking_code: str, payload: Any) -> tuple[Appointment, Verification]:
        a = self.appointments.get(customer_id, booking_code)  # 404 for anyone but the owner
        if not isinstance(payload, dict):
            malformed = Problems()
            malformed.add("body", "body_not_object")
            malformed.raise_if_any(malformed=True)
        entered = payload.get("code") if isinstance(payload, dict) else None
        p = Problems()
        if isinstance(payload, dict) and set(payload) - {"code"}:
            unknown = sorted(set(payload) - {"code"})[0]
            p.add(unknown, "unknown_field", field=unknown)
        if not is_code_entry(entered, self.settings.code_digits):
            p.add("code", "code_invalid", digits=self.settings.code_digits)
        # Digits of other scripts are not a guess at the code: malformed, and never counted.
        p.raise_if_any(malformed=isinstance(entered, str) and not entered.isascii())
        assert isinstance(entered, str)
        now = self.clock.now()
        counter_key = f"verify:{customer_id}"
        self._check_throttle(self.store.get_counter(counter_key), now)
        if a.phase not in CODE_PHASES:
            raise Conflict("no_code", reason="no_code", phase=a.phase.value)
        for _ in range(MAX_RACE_RETRIES):
            result = identity.verify(
                self.store.get_code(a.booking_code),
                entered,
                now,
                self.settings.code_pepper.value,
                self.settings.code_max_attempts,
            )
            if result.record is None:
                break
            try:
                self.store.update_code(result.record)  # If-Match: parallel guesses cannot overshoot
                break
            except StaleRecord:
                continue
        else:  # pragma: no cover - would need 50 lost races in a row
            raise Conflict("busy", reason="busy")
        if result.outcome is Outcome.VERIFIED:
            self.store.reset_counter(counter_key)
            self._audit(a.booking_code, "customer", "identity_verified")
        elif result.record is not None:  # a counted wrong attempt
            self._count_failure(counter_key)
            self._audit(
                a.booking_code,
                "customer",
                "code_attempt_failed",
                f"attempts left {result.attempts_left}" + (", locked" if result.just_locked else ""),
            )
        return a, result
