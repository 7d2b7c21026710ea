"""Operators' read-only view (function key). Durable's own API serves the Durable Functions Monitor.

Operators see identifiers, phases, times and Durable's state: never a phone number, an e-mail,
a name or free text, and no orchestration payloads (docs/RUNBOOK.md says what to do next).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import azure.durable_functions as df
import azure.functions as func

import bootstrap
from appointments.errors import NotFound, Problems
from appointments.localtime import local_day_bounds
from appointments.model import Phase
from appointments.operations import attention_reasons
from appointments.timerules import iso
from http_triggers.common import call
from http_triggers.problem import json_response, problems_as_responses

if TYPE_CHECKING:
    from adapters.ops_view import OpsFilter

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
# adapters.ops_view pulls in azure-data-tables: imported on first use, not at cold start.

BOOKING_CODE = re.compile(r"[0-9A-Z]{8}")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # what the document's format: date allows (fromisoformat takes more)
HISTORY_EVENTS = 20  # the last events shown; the Durable Functions Monitor has them all
# What an operator may see of a history event. Input, Result, Details and Reason can carry
# payloads or exception texts, so they stay out.
HISTORY_FIELDS = ("EventType", "Timestamp", "Name", "FunctionName", "FireAt", "OrchestrationStatus")


def _filter(req: func.HttpRequest) -> tuple[OpsFilter, int, str | None]:
    from datetime import date

    from adapters.ops_view import MAX_PAGE, OpsFilter

    p = Problems()  # malformed (400): not what the document allows
    beyond = Problems()  # well-formed but unusable (422): a date at the calendar's very edge
    phase = start_from = start_to = attention = None
    if raw := req.params.get("phase"):
        try:
            phase = Phase(raw)
        except ValueError:
            p.add("phase", "phase_invalid")
    if raw := req.params.get("date"):
        try:
            day = date.fromisoformat(raw) if DATE.fullmatch(raw) else None
        except ValueError:
            day = None
        if day is None:
            p.add("date", "date_invalid")
        else:
            try:
                start_from, start_to = local_day_bounds(day)
            except OverflowError:  # 0001-01-01 or 9999-12-31: its UTC bounds do not exist
                beyond.add("date", "date_invalid")
    if raw := req.params.get("attention"):
        if raw.lower() not in ("true", "false"):
            p.add("attention", "attention_invalid")
        attention = raw.lower() == "true"
    limit = 50
    if raw := req.params.get("limit"):
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:
            p.add("limit", "limit_invalid")  # the text names MAX_PAGE (100)
        else:
            limit = int(raw)
    p.raise_if_any(malformed=True)
    beyond.raise_if_any()
    return OpsFilter(phase, start_from, start_to, attention), limit, req.params.get("continuation") or None


@bp.route(route="ops/appointments", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problems_as_responses
async def ops_appointments(req: func.HttpRequest) -> func.HttpResponse:
    """``?phase=&date=&attention=&limit=&continuation=``: one page, and the token for the next."""
    from adapters.ops_view import BadToken, page

    ops_filter, limit, token = _filter(req)
    try:
        rows, following = await call(page, bootstrap.services().repo, ops_filter, limit=limit, token=token)
    except BadToken:
        # Any string is a well-formed token (the document cannot say more of an opaque one);
        # one this API did not hand out is unusable: 422.
        p = Problems()
        p.add("continuation", "continuation_invalid")
        p.raise_if_any()
    return json_response({"appointments": rows, "continuation": following})


def _history(events: list[dict[str, object]] | None) -> list[dict[str, object]]:
    shown = (events or [])[-HISTORY_EVENTS:]
    return [{k: e[k] for k in HISTORY_FIELDS if e.get(k) not in (None, "")} for e in shown]


@bp.route(route="ops/appointments/{code}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
@problems_as_responses
async def ops_appointment(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """One appointment: its record's phase, Durable's runtime status, last history events, attention."""
    from adapters.ops_view import row_view
    from orchestrators.appointment_lifecycle import instance_id

    services = bootstrap.services()
    code = req.route_params["code"].strip().upper()
    # Only a code-shaped key reaches the table: others could not name an appointment anyway.
    record = await call(services.repo.get_by_code, code) if BOOKING_CODE.fullmatch(code) else None
    if record is None:
        raise NotFound("appointment_not_found")
    status = await client.get_status(
        instance_id(code), show_history=True, show_history_output=False, show_input=False
    )
    runtime = status.runtime_status.value if status and status.runtime_status else None
    custom = status.custom_status if status else None
    durable_phase = custom.get("phase") if isinstance(custom, dict) else None
    view = row_view(
        {
            "RowKey": record.booking_code,
            "Phase": record.phase.value,
            "PhaseSince": iso(record.phase_since) if record.phase_since else None,
            "Channel": record.channel.value,
            "TopicId": record.topic_id,
            "ExpertId": record.expert_id,
            "Start": iso(record.start),
            "DurationMinutes": record.duration_minutes,
            "Attention": record.attention,
            "Revision": record.revision,
        }
    )
    view["durable"] = {
        "runtimeStatus": runtime,
        "phase": durable_phase,
        "createdTime": status.created_time.isoformat() if status and status.created_time else None,
        "lastUpdatedTime": (
            status.last_updated_time.isoformat() if status and status.last_updated_time else None
        ),
        # The client keeps the status answer's "historyEvents" under that very attribute name.
        "history": _history(getattr(status, "historyEvents", None) or (status.history if status else None)),
    }
    view["attentionReasons"] = attention_reasons(
        record, runtime, durable_phase, services.clock.now(), services.settings.end_grace
    )
    return json_response(view)
