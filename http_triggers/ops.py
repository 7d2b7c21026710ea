"""Operators' read-only view (function key). Durable's own API serves the Durable Functions Monitor."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

import bootstrap
from appointments.errors import Problems
from appointments.model import Phase
from appointments.timerules import iso
from http_triggers.common import call
from http_triggers.problem import json_response, problems_as_responses

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)


@bp.route(route="ops/appointments", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problems_as_responses
async def ops_appointments(req: func.HttpRequest) -> func.HttpResponse:
    raw = req.params.get("phase")
    phase = None
    if raw:
        try:
            phase = Phase(raw)
        except ValueError:
            p = Problems()
            p.add("phase", "phase_invalid")
            p.raise_if_any(malformed=True)
    rows = await call(bootstrap.services().repo.list_by_phase, phase)
    # Operators see identifiers, phases and times: no phone numbers, e-mails or names.
    return json_response(
        {
            "appointments": [
                {
                    "bookingCode": a.booking_code,
                    "phase": a.phase.value,
                    "channel": a.channel.value,
                    "expertId": a.expert_id,
                    "start": iso(a.start),
                    "durationMinutes": a.duration_minutes,
                    "attention": a.attention,
                    "instanceId": f"appt-{a.booking_code}",
                }
                for a in rows
            ]
        }
    )
