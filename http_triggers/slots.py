"""Free times to book, and holding one while the customer fills in the booking.

``GET /api/slots`` is public like the catalogue. It answers 503 when Graph cannot tell
whether the experts are busy: offering times that may be taken is worse than a retry.
"""

from __future__ import annotations

import logging
from datetime import datetime

import azure.durable_functions as df
import azure.functions as func

import bootstrap
from appointments.availability import (
    HoldService,
    candidate_experts,
    free_slots,
    parse_slot_query,
    search_window,
    slots_view,
)
from appointments.model import Expert
from appointments.ports import GatewayError
from appointments.timerules import iso
from http_triggers.common import call, customer
from http_triggers.problem import Refusal, json_response, problems_as_responses, read_json

log = logging.getLogger(__name__)
bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)
GRAPH_RETRY_AFTER_SECONDS = 30


@bp.route(route="slots", methods=["GET"])
@problems_as_responses
async def list_slots(req: func.HttpRequest) -> func.HttpResponse:
    s = bootstrap.services()
    now = s.clock.now()
    query = parse_slot_query(dict(req.params), now, s.settings)
    experts = candidate_experts(query, await call(s.repo.list_experts))
    window = search_window(query, now, s.settings)
    if window is None or not experts:
        return json_response(slots_view(query, []), headers={"Cache-Control": "no-store"})
    start, end = window

    def taken() -> dict[str, set[datetime]]:
        return {x.expert_id: s.repo.taken_cells(x.expert_id, start, end, now) for x in experts}

    claimed = await call(taken)
    try:
        busy = await bootstrap.meetings().get_schedule([x.email for x in experts], start, end)
    except GatewayError as exc:
        log.warning("getSchedule failed, no slots offered: %s", exc)
        raise Refusal(
            503, "calendars-unavailable", "calendars_unavailable", retryAfter=GRAPH_RETRY_AFTER_SECONDS
        ) from None
    # getSchedule speaks mail addresses; the slot computation speaks expert ids.
    by_email: dict[str, Expert] = {x.email.lower(): x for x in experts}
    busy_by_id = {
        by_email[addr.lower()].expert_id: intervals
        for addr, intervals in busy.items()
        if addr.lower() in by_email
    }
    if unknown := sorted(x.expert_id for x in experts if x.expert_id not in busy_by_id):
        # Unknown is not free: these experts offer nothing until Graph can read their calendars.
        log.warning("calendars unreadable, no slots offered for experts %s", ", ".join(unknown))
    slots = free_slots(query, experts, claimed, busy_by_id, now, s.settings)
    return json_response(slots_view(query, slots), headers={"Cache-Control": "no-store"})


@bp.route(route="slots/hold", methods=["POST"])
@problems_as_responses
async def hold_slot(req: func.HttpRequest) -> func.HttpResponse:
    who = customer(req)
    body = read_json(req)
    s = bootstrap.services()
    hold = await call(HoldService(s.repo, s.clock, s.settings).hold, who.user_id, body)
    return json_response(
        {
            "holdId": hold.hold_id,
            "expiresAt": iso(hold.expires_at),
            "expertId": hold.expert_id,
            "start": iso(hold.start),
            "durationMinutes": hold.duration_minutes,
        },
        status=201,
        headers={"Location": f"/api/slots/hold/{hold.hold_id}"},
    )


@bp.route(route="slots/hold/{holdId}", methods=["DELETE"])
@problems_as_responses
async def release_slot(req: func.HttpRequest) -> func.HttpResponse:
    who = customer(req)
    s = bootstrap.services()
    await call(HoldService(s.repo, s.clock, s.settings).release, who.user_id, req.route_params["holdId"])
    return func.HttpResponse(status_code=204)
