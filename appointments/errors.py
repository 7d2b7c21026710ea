"""Domain errors. The HTTP layer maps each to one problem+json status.

Every error carries a stable message ``code`` (a key of ``appointments.messages.MESSAGES``) and
its parameters, never prose: ``http_triggers.problem`` renders the text in the caller's language.
The parameters also appear in the problem document as extension members.

DomainError
├── ValidationFailed      400/422: the request is malformed or breaks a rule; ``errors`` lists fields
├── NotFound              404: no such appointment *for this caller* (never says whether it exists)
├── Conflict              409: the request clashes with the current state (slot taken, wrong phase)
│   ├── IllegalTransition the lifecycle does not accept this event in this phase
│   └── NoCode            no identification code is waiting (never issued, or used)
├── WrongCode             422: the identification code is not right; ``attemptsLeft``
├── Gone                  410: too late (the meeting has ended, the code has expired)
│   └── CodeExpired       the identification code has expired
├── Locked                423: too many failed attempts
│   └── CodeLocked        this code had its last wrong attempt
└── TooManyRequests       429: slow down; ``retry_after`` seconds
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


class DomainError(Exception):
    status = 400
    type_slug = "bad-request"
    # Lifecycle events (``ports.OutboxEntry``) committed before the refusal, e.g. CodeLocked with
    # the 423: the trigger raises them all the same.
    committed: tuple[object, ...] = ()

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extensions = params


@dataclass(frozen=True)
class FieldError:
    field: str
    code: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


class ValidationFailed(DomainError):
    """The request is well-formed JSON but breaks a rule (422), or is malformed (400)."""

    status = 422
    type_slug = "validation-failed"

    def __init__(self, errors: list[FieldError], *, malformed: bool = False) -> None:
        super().__init__("fields_invalid")
        self.errors = errors
        if malformed:
            self.status = 400
            self.type_slug = "malformed-request"


class Unauthenticated(DomainError):
    status = 401
    type_slug = "unauthenticated"


class Forbidden(DomainError):
    status = 403
    type_slug = "forbidden"


class NotFound(DomainError):
    status = 404
    type_slug = "not-found"


class Conflict(DomainError):
    status = 409
    type_slug = "conflict"


class IllegalTransition(Conflict):
    type_slug = "illegal-transition"

    def __init__(self, phase: str, event: str) -> None:
        super().__init__("illegal_transition", phase=phase, event=event)
        self.phase = phase
        self.event = event


class Gone(DomainError):
    status = 410
    type_slug = "gone"


class Locked(DomainError):
    status = 423
    type_slug = "locked"


class TooManyRequests(DomainError):
    status = 429
    type_slug = "too-many-requests"

    def __init__(self, code: str, retry_after: int, **params: Any) -> None:
        super().__init__(code, retryAfter=retry_after, **params)
        self.retry_after = retry_after


@dataclass
class Problems:
    """Collects field errors so a request reports all of them at once."""

    errors: list[FieldError] = field(default_factory=list)

    def add(self, field_name: str, code: str, **params: Any) -> None:
        self.errors.append(FieldError(field_name, code, params))

    def raise_if_any(self, *, malformed: bool = False) -> None:
        if self.errors:
            raise ValidationFailed(self.errors, malformed=malformed)


# --- identification codes (IdentityService.verify) --------------------------------------------


class NoCode(Conflict):
    """No code is waiting: never issued, used by another entry, or the phase has none."""

    type_slug = "no-code"

    def __init__(self, **params: Any) -> None:
        super().__init__("no_code", reason="no_code", attemptsLeft=0, **params)


class WrongCode(DomainError):
    status = 422
    type_slug = "wrong-code"

    def __init__(self, attempts_left: int) -> None:
        super().__init__("wrong_code", attemptsLeft=attempts_left)
        self.attempts_left = attempts_left


class CodeExpired(Gone):
    type_slug = "code-expired"

    def __init__(self) -> None:
        super().__init__("code_expired", attemptsLeft=0)


class CodeLocked(Locked):
    type_slug = "code-locked"

    def __init__(self, committed: tuple[object, ...] = ()) -> None:
        super().__init__("code_locked", attemptsLeft=0)
        self.committed = committed
