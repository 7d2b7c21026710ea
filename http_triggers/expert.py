"""The expert's API: the day's appointments with their live phase, and ending a meeting.
An expert acts only on appointments assigned to them; any other code answers 404."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

import bootstrap
from appointments.errors import Problems
from appointments.localtime import local_day_bounds, to_local
from appointments.timerules import iso
from appointments.validation import parse_date
from http_triggers.common import appointment_view, call, expert, run_use_case
from http_triggers.problem import json_response, problems_as_responses

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)


def expert_view(a: object) -> dict[str, object]:
    from appointments.model import Appointment

    assert isinstance(a, Appointment)
    view = appointment_view(a)
    view.pop("phone", None)
    if a.channel.value == "phone":
        view["customerPhone"] = a.phone  # the expert calls the customer
    view["customerName"] = a.customer_name
    view["waitingInLobby"] = a.phase.value == "lobby"
    view["joinUrl"] = a.join_url
    return view


@bp.route(route="expert/appointments", methods=["GET"])
@problems_as_responses
async def expert_day(req: func.HttpRequest) -> func.HttpResponse:
    who = expert(req)
    services = bootstrap.services()
    raw = req.params.get("date")
    if raw is not None:  # "date=" is not today: it is malformed
        try:
            day = parse_date(raw).date()
        except ValueError:
            p = Problems()
            p.add("date", "date_invalid")
            p.raise_if_any(malformed=True)
    else:
        day = to_local(services.clock.now()).date()
    start, end = local_day_bounds(day)
    found = await call(services.appointments.expert_day, who.user_id, start, end)
    views = [await call(expert_view, a) for a in found]
    return json_response(
        {
            "date": day.isoformat(),
            "appointments": views,
            "waitingInLobby": [v["bookingCode"] for v in views if v["waitingInLobby"]],
        }
    )


@bp.route(route="expert/appointments/{code}/end", methods=["POST"])
@bp.durable_client_input(client_name="client")
@problems_as_responses
async def end_meeting(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """202: the lifecycle ends the meeting; an ended one answers 202 again (a retried request)."""
    who = expert(req)
    ended = await run_use_case(
        client, bootstrap.services().appointments.end_meeting, who.user_id, req.route_params["code"]
    )
    return json_response({"bookingCode": ended.appointment.booking_code, "phase": "ended"}, status=202)


@bp.route(route="expert/appointments/{code}/identification-code", methods=["POST"])
@bp.durable_client_input(client_name="client")
@problems_as_responses
async def issue_identification_code(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """A fresh one-time code, returned once to the expert; the lifecycle hears only its expiry."""
    who = expert(req)
    issued = await run_use_case(
        client, bootstrap.services().identity.issue, who.user_id, req.route_params["code"]
    )
    settings = bootstrap.services().settings
    return json_response(
        {
            "bookingCode": issued.appointment.booking_code,
            "code": issued.code,
            "expiresAt": iso(issued.expires_at),
            "attemptsAllowed": settings.code_max_attempts,
        },
        status=201,
        headers={"Cache-Control": "no-store"},
    )
