"""Why an appointment needs an operator: the record's own flag plus what Durable says (docs/RUNBOOK.md)."""

from __future__ import annotations

from datetime import datetime, timedelta

from appointments.model import Appointment

# The lifecycle closes an unended meeting END_GRACE_MINUTES after its end; give its timer and
# activities this much more before calling the appointment overdue.
OVERDUE_SLACK = timedelta(hours=1)
RUNNING = frozenset({"Pending", "Running", "ContinuedAsNew"})


def attention_reasons(
    a: Appointment,
    runtime_status: str | None,
    durable_phase: str | None,
    now: datetime,
    end_grace: timedelta,
) -> list[str]:
    """Reasons, most specific first; empty when all is well. Each is a runbook heading."""
    reasons: list[str] = [a.attention] if a.attention else []
    terminal = a.phase.is_terminal
    if runtime_status is None:
        if not terminal:
            reasons.append("no_orchestration")
    elif runtime_status == "Failed":
        reasons.append("orchestration_failed")
    elif runtime_status == "Suspended":
        reasons.append("orchestration_suspended")
    elif runtime_status in ("Completed", "Terminated") and not terminal:
        reasons.append("orchestration_finished_early")
    if durable_phase is not None and runtime_status in RUNNING and durable_phase != a.phase.value:
        reasons.append("phase_mismatch")
    if not terminal and now > a.end + end_grace + OVERDUE_SLACK:
        reasons.append("overdue")
    return reasons
