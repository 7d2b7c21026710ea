"""Use cases for customers and experts, on the ports. No HTTP, no Durable, no Azure here."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from appointments import booking as rules
from appointments.availability import works_at
from appointments.catalogue import TOPICS, Channel
from appointments.codes import booking_code_for_key, new_booking_code, normalize_booking_code
from appointments.directory import ExpertDirectory
from appointments.errors import (
    Conflict,
    DomainError,
    FieldError,
    Gone,
    IllegalTransition,
    NotFound,
    Problems,
    ValidationFailed,
)
from appointments.lifecycle import Capabilities, EventType, Policy, Reason, capabilities, predicted_phase
from appointments.model import Appointment, Expert, Phase
from appointments.ports import (
    AppointmentRepository,
    AuditEntry,
    Clock,
    CodeTaken,
    IdempotencyMismatch,
    LifecycleOutbox,
    OutboxEntry,
    SlotTaken,
    StaleRecord,
)
from appointments.settings import Settings
from appointments.timerules import appointment_cells, iso
from appointments.validation import MAX_KEY, is_key


class CommitsEvents(Protocol):
    """A use case's result: its appointment and the lifecycle events it committed to the outbox."""

    @property
    def appointment(self) -> Appointment: ...

    @property
    def events(self) -> tuple[OutboxEntry, ...]: ...


@dataclass(frozen=True)
class Committed:
    """A use case's appointment and the lifecycle events it committed (the trigger raises them)."""

    appointment: Appointment
    events: tuple[OutboxEntry, ...] = ()


@dataclass(frozen=True)
class Booked:
    appointment: Appointment
    created: bool  # False when an Idempotency-Key replay returned an earlier booking


class AppointmentService:
    def __init__(
        self,
        repo: AppointmentRepository,
        clock: Clock,
        settings: Settings,
        outbox: LifecycleOutbox | None = None,
        directory: ExpertDirectory | None = None,
    ) -> None:
        """``directory``: the in-process expert directory (at most a minute stale) that booking
        may trust for who the experts are; without it every booking reads its expert fresh."""
        self.repo = repo
        self.directory = directory
        self.clock = clock
        self.settings = settings
        if outbox is None:  # the Table repository serves both ports
            assert isinstance(repo, LifecycleOutbox), "pass the LifecycleOutbox"
            outbox = repo
        self.outbox: LifecycleOutbox = outbox

    # --- helpers -----------------------------------------------------------------------------

    def cells(self, start: datetime, duration_minutes: int) -> list[datetime]:
        return appointment_cells(self.settings, start, duration_minutes)

    def _audit(self, code: str, actor: str, action: str, detail: str = "") -> None:
        self.repo.audit(AuditEntry(code, self.clock.now(), actor, action, detail))

    def join_window_opens_at(self, a: Appointment) -> datetime:
        return a.start - self.settings.join_window

    def capabilities(self, a: Appointment) -> Capabilities:
        """What may be done with ``a`` now (``lifecycle.capabilities``); the API shows it as is."""
        return capabilities(
            a.channel,
            a.phase,
            a.start,
            a.end,
            self.clock.now(),
            policy=Policy(self.settings.join_window_minutes, self.settings.end_grace_minutes),
            change_notice=timedelta(hours=self.settings.change_notice_hours),
        )

    def _commit_event(
        self, a: Appointment, event: EventType, payload: dict[str, Any], actor: str, action: str
    ) -> OutboxEntry:
        """The event and its audit entry in one commit (they share the booking's partition)."""
        now = self.clock.now()
        entry = OutboxEntry.new(a.booking_code, event, payload, now)
        self.outbox.add(entry, AuditEntry(a.booking_code, now, actor, action))
        return entry

    def advance_phase(self, a: Appointment, event: EventType) -> None:
        """After raising ``event``: write the phase it leads to, so the caller reads its own change.

        The orchestration records the same phase a moment later; the write is conditional, so a
        late one never overwrites a phase recorded since.
        """
        phase = predicted_phase(a.channel, a.phase, event)
        if phase is not None:
            self.repo.advance_phase(a, phase, self.clock.now())

    # --- catalogue ---------------------------------------------------------------------------

    def experts(
        self, topic: str | None = None, language: str | None = None, channel: Channel | None = None
    ) -> list[Expert]:
        if topic is not None and topic not in TOPICS:
            p = Problems()
            p.add("topic", "topic_unknown")
            p.raise_if_any()
        return [
            x
            for x in self.repo.list_experts()
            if x.active
            and (topic is None or topic in x.topics)
            and (language is None or language in x.languages)
            and (channel is None or channel in x.channels)
        ]

    # --- customer ----------------------------------------------------------------------------

    def book(
        self, customer_id: str, payload: Any, idempotency_key: str | None, customer_name: str | None = None
    ) -> Booked:
        """Book; with an ``Idempotency-Key`` a retry answers what the first attempt did.

        The key costs no round trip of its own: its booking code is derived from it
        (``booking_code_for_key``), and ``repo.create`` finds an earlier booking under that code
        when it writes the code index. Only a request that is no longer valid (say, its start
        has passed since the first attempt) looks the earlier booking up first.
        """
        if idempotency_key is not None and not is_key(idempotency_key):
            raise ValidationFailed(
                [FieldError("Idempotency-Key", "key_invalid", {"max": MAX_KEY})], malformed=True
            )
        fp = rules.fingerprint(payload) if isinstance(payload, dict) else ""
        keyed_code = (
            booking_code_for_key(self.settings.code_pepper.value, customer_id, idempotency_key)
            if idempotency_key is not None
            else None
        )
        now = self.clock.now()
        try:
            req = rules.parse_booking(payload, now, self.settings)
            if req.hold_id is not None:
                req = self._with_own_hold(customer_id, req)
            candidates = self._candidates(req)
        except DomainError:
            earlier = self._earlier_booking(customer_id, keyed_code, fp)
            if earlier is not None:
                return earlier
            raise
        last_taken: SlotTaken | None = None
        for expert in candidates:
            code = keyed_code or new_booking_code()
            for _ in range(3):  # a code that is another booking's: mint another
                appointment = Appointment(
                    booking_code=code,
                    customer_id=customer_id,
                    expert_id=expert.expert_id,
                    channel=req.channel,
                    topic_id=req.topic_id,
                    start=req.start,
                    duration_minutes=req.duration_minutes,
                    language=req.language,
                    phone=req.phone,
                    email=req.email,
                    extra_info=req.extra_info,
                    customer_name=customer_name,
                    phase=Phase.BOOKED,
                    phase_since=now,
                    created_at=now,
                )
                try:
                    stored = self.repo.create(
                        appointment,
                        phone_hmac=rules.phone_hmac(req.phone, self.settings.phone_hmac_key.value),
                        cells=self.cells(req.start, req.duration_minutes),
                        idempotency_key=idempotency_key if code == keyed_code else None,
                        fingerprint=fp,
                        now=now,
                        hold_id=req.hold_id,
                    )
                except CodeTaken:
                    code = new_booking_code()
                    continue
                except SlotTaken as exc:
                    last_taken = exc
                    break
                except IdempotencyMismatch:
                    raise IdempotencyConflict() from None
                return Booked(stored.appointment, created=stored.created)
            else:
                raise Conflict("busy", reason="busy")
        raise Conflict("slot_taken", reason="slot_taken") from last_taken

    def _earlier_booking(self, customer_id: str, code: str | None, fingerprint: str) -> Booked | None:
        found = self.repo.idempotency_fingerprint(customer_id, code) if code is not None else None
        if found is None:
            return None
        if found != fingerprint:
            raise IdempotencyConflict()
        existing = self.repo.get(customer_id, code) if code is not None else None
        return None if existing is None else Booked(existing, created=False)

    def _with_own_hold(self, customer_id: str, req: rules.BookingRequest) -> rules.BookingRequest:
        """Check the hold is the caller's and for this very slot; its expert is the one booked.

        An expired hold is still accepted here: its cells are free for anyone, its owner included,
        and the repository refuses them if someone else has taken them meanwhile.
        """
        hold = self.repo.get_hold(req.hold_id) if req.hold_id else None
        problems = Problems()
        if hold is None or hold.customer_id != customer_id:
            problems.add("holdId", "hold_unknown")
        else:
            if (hold.start, hold.duration_minutes) != (req.start, req.duration_minutes):
                problems.add("holdId", "hold_mismatch")
            if req.expert_id not in (rules.ANY_EXPERT, hold.expert_id):
                problems.add("expertId", "hold_other_expert")
        problems.raise_if_any()
        assert hold is not None
        return replace(req, expert_id=hold.expert_id)

    def _candidates(self, req: rules.BookingRequest) -> list[Expert]:
        if req.expert_id == rules.ANY_EXPERT:
            experts = self.experts(req.topic_id, req.language, req.channel)
            if not experts:
                raise ValidationFailed([FieldError("topic", "no_expert_for_topic")])
            working = [x for x in experts if works_at(x, req.start, req.duration_minutes)]
            if not working:
                raise ValidationFailed([FieldError("start", "no_expert_at_time")])
            return working
        # The directory may be a minute stale: an expert removed or re-rostered within the minute
        # can still be booked, as if the booking had come a minute earlier. No double booking
        # depends on it: the slot claim alone guards the expert's time.
        expert = (self.directory.get if self.directory else self.repo.get_expert)(req.expert_id)
        if expert is None or not expert.active:
            raise ValidationFailed([FieldError("expertId", "expert_unknown")])
        problems = Problems()
        if req.topic_id not in expert.topics:
            problems.add("topic", "expert_not_serving_topic")
        if req.language not in expert.languages:
            problems.add("language", "expert_not_serving_language")
        if req.channel not in expert.channels:
            problems.add("channel", "expert_not_serving_channel")
        if not works_at(expert, req.start, req.duration_minutes):
            problems.add("start", "outside_working_hours")
        problems.raise_if_any()
        return [expert]

    def upcoming(self, customer_id: str) -> list[Appointment]:
        now = self.clock.now()
        return [
            a
            for a in self.repo.list_for_customer(customer_id)
            if not a.phase.is_terminal and a.end + self.settings.end_grace > now
        ]

    def get(self, customer_id: str, code: str) -> Appointment:
        normalized = normalize_booking_code(code)
        found = self.repo.get(customer_id, normalized) if normalized else None
        if found is None:
            raise NotFound("appointment_not_found")
        return found

    def lookup(self, payload: Any) -> Appointment:
        """Booking code + phone number, no login. Wrong phone and unknown code look the same."""
        req = rules.parse_lookup(payload, self.settings.phone_default_region)
        stored = self.repo.phone_hmac(req.booking_code)
        given = rules.phone_hmac(req.phone, self.settings.phone_hmac_key.value)
        if stored is None or not hmac.compare_digest(stored, given):
            raise NotFound("lookup_not_found")
        found = self.repo.get_by_code(req.booking_code)
        if found is None:
            raise NotFound("lookup_not_found")
        return found

    def _check_change_allowed(self, a: Appointment, capability: str) -> None:
        reason = self.capabilities(a).reasons.get(capability)
        if reason is Reason.IN_MEETING:
            raise Conflict("meeting_in_progress", phase=a.phase.value, reason=reason.value)
        if reason is Reason.TERMINAL_PHASE:
            raise Gone("appointment_closed", phase=a.phase.value)
        if reason is Reason.NOTICE_PERIOD:
            raise Conflict("notice_period", reason="notice_period", hours=self.settings.change_notice_hours)
        if reason is not None:
            event = EventType.RESCHEDULED if capability == "canChange" else EventType.CANCELLED
            raise IllegalTransition(a.phase.value, event.value)

    def change(self, customer_id: str, code: str, payload: Any) -> tuple[Appointment, Appointment]:
        """Reschedule and/or change the topic or expert. Returns (before, after)."""
        current = self.get(customer_id, code)
        if current.phase.is_terminal:
            raise Gone("appointment_closed", phase=current.phase.value)
        req = rules.parse_change(payload, self.clock.now(), self.settings)
        new = current.with_changes(
            start=req.start or current.start,
            duration_minutes=req.duration_minutes or current.duration_minutes,
            topic_id=req.topic_id or current.topic_id,
            expert_id=req.expert_id or current.expert_id,
        )
        if (new.start, new.duration_minutes, new.topic_id, new.expert_id) == (
            current.start,
            current.duration_minutes,
            current.topic_id,
            current.expert_id,
        ):
            return current, current  # a retried PATCH: already done
        self._check_change_allowed(current, "canChange")
        expert = self.repo.get_expert(new.expert_id)
        problems = Problems()
        if expert is None or not expert.active:
            problems.add("expertId", "expert_unknown")
        elif not expert.serves(new.topic_id, current.language, current.channel):
            problems.add("topic", "expert_not_serving")
        times_changed = (new.start, new.duration_minutes) != (current.start, current.duration_minutes)
        if (
            expert is not None
            and (times_changed or new.expert_id != current.expert_id)
            and not works_at(expert, new.start, new.duration_minutes)
        ):
            problems.add("start", "outside_working_hours")
        problems.raise_if_any()
        if times_changed:
            new = new.with_changes(revision=current.revision + 1)
        try:
            stored = self.repo.move(
                current,
                new,
                self.cells(current.start, current.duration_minutes),
                self.cells(new.start, new.duration_minutes),
            )
        except SlotTaken:
            raise Conflict("slot_taken", reason="slot_taken") from None
        except StaleRecord:
            raise Conflict("concurrent_change", reason="concurrent_change") from None
        self._audit(
            stored.booking_code,
            "customer",
            "rescheduled" if times_changed else "changed",
            f"{iso(current.start)} -> {iso(stored.start)}" if times_changed else f"topic {stored.topic_id}",
        )
        return current, stored

    def cancel(self, customer_id: str, code: str) -> tuple[Appointment, bool]:
        """Cancel; returns (appointment, changed). Cancelling a cancelled one changes nothing."""
        current = self.get(customer_id, code)
        if current.phase is Phase.CANCELLED:
            return current, False
        self._check_change_allowed(current, "canCancel")
        now = self.clock.now()
        try:
            stored = self.repo.update(current.with_changes(phase=Phase.CANCELLED, phase_since=now))
        except StaleRecord:
            raise Conflict("concurrent_change", reason="concurrent_change") from None
        self.repo.release_cells(
            current.expert_id, current.booking_code, self.cells(current.start, current.duration_minutes)
        )
        self._audit(current.booking_code, "customer", "cancelled")
        return stored, True

    def join(self, customer_id: str, code: str) -> Committed:
        """Check that the customer may join now; the first join commits CustomerJoined."""
        a = self.get(customer_id, code)
        now = self.clock.now()
        if a.channel is not Channel.ONLINE:
            raise Conflict("not_online", reason="not_online")
        if a.phase.is_terminal or now >= a.end + self.settings.end_grace:
            raise Gone("meeting_ended", phase=a.phase.value)
        opens = self.join_window_opens_at(a)
        if now < opens:
            raise Conflict(
                "too_early",
                reason="too_early",
                minutes=self.settings.join_window_minutes,
                joinWindowOpensAt=iso(opens),
            )
        if a.attention == "meeting_creation_failed" and not a.join_url:
            raise MeetingUnavailable()
        if a.phase is Phase.BOOKED or not a.join_url:
            raise MeetingNotReady()
        if predicted_phase(a.channel, a.phase, EventType.CUSTOMER_JOINED) is None:
            return Committed(a)  # joined before: the lobby, or further
        entry = self._commit_event(a, EventType.CUSTOMER_JOINED, {}, "customer", "joined")
        return Committed(a, (entry,))

    # --- expert ------------------------------------------------------------------------------

    def expert_day(self, expert_id: str, day_start: datetime, day_end: datetime) -> list[Appointment]:
        return self.repo.list_for_expert(expert_id, day_start, day_end)

    def expert_appointment(self, expert_id: str, code: str) -> Appointment:
        normalized = normalize_booking_code(code)
        found = self.repo.get_by_code(normalized) if normalized else None
        if found is None or found.expert_id != expert_id:
            raise NotFound("appointment_not_found")
        return found

    def end_meeting(self, expert_id: str, code: str) -> Committed:
        """The expert ends the meeting: commits MeetingEnded. Ending an ended one again is no error."""
        a = self.expert_appointment(expert_id, code)
        if a.phase is Phase.ENDED:
            return Committed(a)  # a retried request: it answers what the first one did
        reason = self.capabilities(a).reasons.get("canEnd")
        if reason is not None:
            raise IllegalTransition(a.phase.value, EventType.MEETING_ENDED.value)
        entry = self._commit_event(
            a, EventType.MEETING_ENDED, {"source": "expert"}, f"expert:{expert_id}", "ended"
        )
        return Committed(a, (entry,))


class IdempotencyConflict(Conflict):
    status = 422
    type_slug = "idempotency-key-reused"

    def __init__(self) -> None:
        super().__init__("idempotency_key_reused")


class MeetingNotReady(Conflict):
    type_slug = "meeting-not-ready"

    def __init__(self) -> None:
        super().__init__("meeting_not_ready", retryAfter=5)


class MeetingUnavailable(DomainError):
    status = 503
    type_slug = "meeting-unavailable"

    def __init__(self) -> None:
        super().__init__("meeting_unavailable")
