"""Domain errors. The HTTP layer maps each to one problem+json status.

DomainError
├── ValidationFailed      400/422: the request is malformed or breaks a rule; ``errors`` lists fields
├── NotFound              404: no such appointment *for this caller* (never says whether it exists)
├── Conflict              409: the request clashes with the current state (slot taken, wrong phase)
│   └── IllegalTransition the lifecycle does not accept this event in this phase
├── Gone                  410: too late (the meeting has ended, the code has expired)
├── Locked                423: too many failed attempts
└── TooManyRequests       429: slow down; ``retry_after`` seconds
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class DomainError(Exception):
    status = 400
    title = "Bad request"
    type_slug = "bad-request"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ValidationFailed(DomainError):
    """The request is well-formed JSON but breaks a rule (422), or is malformed (400)."""

    status = 422
    title = "Invalid request"
    type_slug = "validation-failed"

    def __init__(self, errors: list[FieldError], *, malformed: bool = False) -> None:
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        super().__init__(detail, errors=[{"field": e.field, "message": e.message} for e in errors])
        self.errors = errors
        if malformed:
            self.status = 400
            self.title = "Malformed request"
            self.type_slug = "malformed-request"


class Unauthenticated(DomainError):
    status = 401
    title = "Authentication required"
    type_slug = "unauthenticated"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"
    type_slug = "forbidden"


class NotFound(DomainError):
    status = 404
    title = "Not found"
    type_slug = "not-found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"
    type_slug = "conflict"


class IllegalTransition(Conflict):
    title = "Not allowed in the current phase"
    type_slug = "illegal-transition"

    def __init__(self, phase: str, event: str) -> None:
        super().__init__(f"{event} is not allowed while the appointment is {phase}", phase=phase, event=event)
        self.phase = phase
        self.event = event


class Gone(DomainError):
    status = 410
    title = "Gone"
    type_slug = "gone"


class Locked(DomainError):
    status = 423
    title = "Locked"
    type_slug = "locked"


class TooManyRequests(DomainError):
    status = 429
    title = "Too many requests"
    type_slug = "too-many-requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, retryAfter=retry_after)
        self.retry_after = retry_after


@dataclass
class Problems:
    """Collects field errors so a request reports all of them at once."""

    errors: list[FieldError] = field(default_factory=list)

    def add(self, field_name: str, message: str) -> None:
        self.errors.append(FieldError(field_name, message))

    def raise_if_any(self, *, malformed: bool = False) -> None:
        if self.errors:
            raise ValidationFailed(self.errors, malformed=malformed)
