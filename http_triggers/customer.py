"""The customer's API (portal web and mobile app). Every route acts only on the caller's own
appointments: someone else's booking code answers 404, exactly like an unknown one."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

import bootstrap
from adapters import telemetry
from appointments import manage_token
from appointments.lifecycle import EventType
from appointments.timerules import iso
from http_triggers.common import (
    appointment_view,
    booking_owner,
    call,
    customer,
    customer_calendar,
    ensure_lifecycle,
    no_store,
    raise_lifecycle_event,
    run_use_case,
    signed_in_customer,
)
from http_triggers.forwarded import source_address
from http_triggers.problem import json_response, problems_as_responses, read_json, refuse_lookup_path

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)


@bp.route(route="appointments", methods=["POST"])
@bp.durable_client_input(client_name="client")
@problems_as_responses
async def book_appointment(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    who = customer(req)
    body = read_json(req)
    booked = await call(
        bootstrap.services().appointments.book,
        who.user_id,
        body,
        req.headers.get("idempotency-key"),
        who.name,
    )
    telemetry.name_appointment(booked.appointment.booking_code)
    await ensure_lifecycle(client, booked.appointment)
    view = await call(appointment_view, booked.appointment)
    return json_response(
        view,
        status=201 if booked.created else 200,
        headers={"Location": f"/api/appointments/{booked.appointment.booking_code}"},
    )


@bp.route(route="appointments", methods=["GET"])
@problems_as_responses
async def list_appointments(req: func.HttpRequest) -> func.HttpResponse:
    who = customer(req)
    services = bootstrap.services()
    upcoming = await call(services.appointments.upcoming, who.user_id)
    experts = await call(services.directory.all)
    views = [appointment_view(a, experts) for a in upcoming]
    return json_response({"appointments": views})


@bp.route(route="appointments/lookup", methods=["POST"])
@problems_as_responses
async def lookup_appointment(req: func.HttpRequest) -> func.HttpResponse:
    body = read_json(req)
    services = bootstrap.services()
    source = source_address(req.headers.get("x-forwarded-for"), services.settings.trusted_forwarded_hops)
    found = await call(bootstrap.lookup().lookup, body, source, signed_in_customer(req))
    view = await call(appointment_view, found)
    # Lets the caller change or cancel this one booking without a login, for a short while.
    token, expires = manage_token.issue(
        found.booking_code, services.settings.code_pepper.value, services.clock.now()
    )
    view.update(manageToken=token, manageTokenExpiresAt=iso(expires))
    return json_response(view, headers={"Cache-Control": "no-store"})


@bp.route(route="appointments/{code}", methods=["GET"])
@problems_as_responses
async def get_appointment(req: func.HttpRequest) -> func.HttpResponse:
    refuse_lookup_path(req)
    owner = await call(booking_owner, req, req.route_params["code"])
    found = await call(bootstrap.services().appointments.get, owner, req.route_params["code"])
    return json_response(await call(appointment_view, found))


@bp.route(route="appointments/{code}/calendar", methods=["GET"])
@problems_as_responses
async def appointment_calendar(req: func.HttpRequest) -> func.HttpResponse:
    """The booking as an .ics file for the customer's own calendar (login or lookup token)."""
    owner = await call(booking_owner, req, req.route_params["code"])
    found = await call(bootstrap.services().appointments.get, owner, req.route_params["code"])
    ics = await call(customer_calendar, found)
    return func.HttpResponse(
        ics,
        status_code=200,
        mimetype="text/calendar",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{found.booking_code}.ics"',
            "Cache-Control": "no-store",
        },
    )


@bp.route(route="appointments/{code}", methods=["PATCH"])
@bp.durable_client_input(client_name="client")
@problems_as_responses
async def change_appointment(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    refuse_lookup_path(req)
    owner = await call(booking_owner, req, req.route_params["code"])
    body = read_json(req)
    before, after = await call(
        bootstrap.services().appointments.change, owner, req.route_params["code"], body
    )
    if (before.start, before.end) != (after.start, after.end) or after.revision != before.revision:
        await raise_lifecycle_event(
            client,
            after.booking_code,
            EventType.RESCHEDULED,
            {"start": iso(after.start), "end": iso(after.end), "revision": after.revision},
        )
    return json_response(await call(appointment_view, after))


@bp.route(route="appointments/{code}", methods=["DELETE"])
@bp.durable_client_input(client_name="client")
@problems_as_responses
async def cancel_appointment(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    refuse_lookup_path(req)
    owner = await call(booking_owner, req, req.route_params["code"])
    cancelled, _changed = await call(
        bootstrap.services().appointments.cancel, owner, req.route_params["code"]
    )
    # Raised again on a retried DELETE too: a lost event must not leave the lifecycle running.
    await raise_lifecycle_event(client, cancelled.booking_code, EventType.CANCELLED)
    return json_response(await call(appointment_view, cancelled))


@bp.route(route="appointments/{code}/join", methods=["POST"])
@bp.durable_client_input(client_name="client")
@problems_as_responses
async def join_meeting(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    who = customer(req)
    joined = await run_use_case(
        client, bootstrap.services().appointments.join, who.user_id, req.route_params["code"]
    )
    a = joined.appointment
    return json_response(
        {
            "bookingCode": a.booking_code,
            "joinUrl": a.join_url,
            "phase": "lobby" if joined.events else a.phase.value,
        }
    )


@bp.route(route="appointments/{code}/identity-verification", methods=["POST"])
@bp.durable_client_input(client_name="client")
@no_store
@problems_as_responses
async def verify_identity(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The customer types the expert's code: 200 verified, 422 wrong, 410 expired, 423 locked, 409 none.

    A retry of a request that verified answers 200 again; the outbox makes sure the lifecycle hears it.
    """
    who = customer(req)
    body = read_json(req)
    verified = await run_use_case(
        client, bootstrap.services().identity.verify, who.user_id, req.route_params["code"], body
    )
    return json_response({"bookingCode": verified.appointment.booking_code, "verified": True})
