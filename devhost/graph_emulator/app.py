"""The emulator's aiohttp application: Graph's routes under /v1.0 and /beta, control under /_emulator."""

from __future__ import annotations

import asyncio
import html
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
from aiohttp import web

from devhost.graph_emulator.crypto import (
    BadCertificate,
    TestSigningKey,
    encrypt_resource_data,
    load_encryption_certificate,
)
from devhost.graph_emulator.state import (
    APP_ID,
    DEV_TOKEN,
    TENANT_DOMAINS,
    TENANT_ID,
    EmulatorState,
    Fault,
    RecordedRequest,
    graph_time,
    parse_time,
)

STATE_KEY = web.AppKey("state", EmulatorState)
SIGNING_KEY = web.AppKey("signing_key", TestSigningKey)
JSON_KEY = web.RequestKey("json", object)
GRAPH_PREFIX = re.compile(r"^/(v1\.0|beta)(/|$)")
CREATE_OR_GET_PARAMETERS = {
    "externalId",
    "subject",
    "startDateTime",
    "endDateTime",
    "participants",
    "chatInfo",
}
MEETING_PATCHABLE = {
    "subject",
    "startDateTime",
    "endDateTime",
    "lobbyBypassSettings",
    "recordAutomatically",
    "allowedPresenters",
    "isEntryExitAnnounced",
    "allowMeetingChat",
    "allowAttendeeToEnableMic",
    "allowAttendeeToEnableCamera",
    "allowTeamworkReactions",
    "participants",
}
MEETING_CALL_EVENTS = re.compile(
    r"^/?communications/onlineMeetings\(joinWebUrl='(?P<url>[^']+)'\)/meetingCallEvents$"
)
MAX_CALL_EVENT_LIFETIME = timedelta(minutes=4320)
# getSchedule (https://learn.microsoft.com/en-us/graph/api/calendar-getschedule): at most 20
# schedules, a period under 62 days, availabilityViewInterval 5..1440 minutes. The codes are
# the ones Exchange answers with: ErrorMailboxDataArrayTooBig and
# ErrorInvalidMergedFreeBusyInterval as reported from Graph (microsoftgraph/microsoft-graph-docs
# issues 7047 and 6450; Graph itself only enforced 100 schedules then, the docs say 20, and the
# emulator holds the app to the docs); ErrorTimeIntervalTooBig is EWS's code for the 62 days.
MAX_SCHEDULES = 20
MAX_SCHEDULE_PERIOD = timedelta(days=62)
# sendMail: the whole request at most 4 MB (https://learn.microsoft.com/en-us/graph/api/user-sendmail;
# https://learn.microsoft.com/en-us/graph/outlook-large-attachments), refused with 413
# ErrorMessageSizeExceeded (as reported in microsoftgraph/microsoft-graph-docs issue 9834 and
# InnoGE/laravel-msgraph-mail issue 41). An unknown sender is 404 ErrorInvalidUser.
MAX_SENDMAIL_BYTES = 4 * 1024 * 1024
# Outlook: 4 concurrent requests per app and mailbox
# (https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits).
MAX_CONCURRENT_PER_MAILBOX = 4
MAILBOX_PATH = re.compile(
    r"^/(?:v1\.0|beta)/users/(?P<user>[^/]+)/(?:sendMail|calendar|mailFolders|messages)"
)
ADDRESS = re.compile(r"^[^@\s<>(),;:\\\"\[\]]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
FREE_BUSY_DIGITS = {
    "free": "0",
    "tentative": "1",
    "busy": "2",
    "oof": "3",
    "workingElsewhere": "4",
    "unknown": "5",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """Graph's error envelope, request ids included."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": str(uuid.uuid4()),
                "client-request-id": str(uuid.uuid4()),
            },
        }
    }
    return web.json_response(body, status=status, headers=headers)


def odata(context: str, payload: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response({"@odata.context": context, **payload}, status=status)


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _context(request: web.Request, fragment: str) -> str:
    version = request.path.split("/")[1]
    return f"https://graph.microsoft.com/{version}/$metadata#{fragment}"


async def _json_body(request: web.Request) -> Any:
    """The request's JSON (None when absent or invalid), parsed once per request."""
    if JSON_KEY not in request:
        raw = await request.read() if request.body_exists else b""
        try:
            request[JSON_KEY] = json.loads(raw) if raw else None
        except ValueError:
            request[JSON_KEY] = None
    return request[JSON_KEY]


def _action_parameters(body: Any) -> Any:
    """Graph's metadata spells some action parameters in PascalCase (and msgraph-sdk sends
    them so: ``Schedules``, ``Message``); Graph matches them case-insensitively."""
    if not isinstance(body, dict):
        return body
    return {str(k)[:1].lower() + str(k)[1:]: v for k, v in body.items()}


@web.middleware
async def graph_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record, inject faults and check the bearer token, in that order, like a proxy in front of Graph."""
    state = request.app[STATE_KEY]
    is_graph = GRAPH_PREFIX.match(request.path) is not None
    body = await _json_body(request) if is_graph else None
    recorded = RecordedRequest(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers={k.lower(): v for k, v in request.headers.items() if k.lower() != "authorization"},
        body=body,
    )
    if is_graph:
        state.record(recorded)
    response = await _dispatch(request, handler, state, is_graph)
    recorded.status = response.status
    return response


async def _dispatch(
    request: web.Request, handler: Handler, state: EmulatorState, is_graph: bool
) -> web.StreamResponse:
    if not is_graph:
        return await handler(request)
    # Read only for a fault that looks at it (aiohttp keeps the body, so the handler reads it again).
    wants_body = request.body_exists and any(f.body is not None for f in state.faults)
    text = (await request.text()) if wants_body else ""
    fault = state.take_fault(request.method, request.path, text)
    if fault is not None and not fault.after:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is not None:
            return _fault_response(fault)
    auth = request.headers.get("Authorization", "")
    token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
    if not token:
        return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
    if token != DEV_TOKEN:
        return graph_error(
            401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
        )
    mailbox = MAILBOX_PATH.match(request.path)
    key = unquote(mailbox["user"]).lower() if mailbox else None
    if key is not None:
        with state.lock:
            if state.in_flight.get(key, 0) >= MAX_CONCURRENT_PER_MAILBOX:
                return graph_error(
                    429,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                    {"Retry-After": "1"},
                )
            state.in_flight[key] = state.in_flight.get(key, 0) + 1
    try:
        response = await handler(request)
        if (
            fault is not None and fault.after
        ):  # the work is done (the mail recorded); the answer is slow or lost
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return _fault_response(fault)
        return response
    finally:
        if key is not None:
            with state.lock:
                state.in_flight[key] -= 1


def _fault_response(fault: Fault) -> web.Response:
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
    code = fault.code or {429: "TooManyRequests", 503: "ServiceUnavailable"}.get(
        fault.status or 0, "Injected"
    )
    return graph_error(fault.status or 500, code, "Injected by the Graph emulator.", headers)


def known_user(user: str) -> bool:
    """A user of the emulated tenant: an object id, or an address in the tenant's domains."""
    user = unquote(user)
    return bool(GUID.match(user)) or user.rpartition("@")[2].lower() in TENANT_DOMAINS


def _invalid_user(user: str) -> web.Response:
    return graph_error(404, "ErrorInvalidUser", f"The requested user '{unquote(user)}' is invalid.")


# --- online meetings ------------------------------------------------------------------------------


async def create_or_get(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await _json_body(request)
    if not isinstance(body, dict):
        return graph_error(400, "BadRequest", "Request body is required.")
    unknown = set(body) - CREATE_OR_GET_PARAMETERS
    if unknown:
        # Graph's action parameters are strict: extra properties are refused, not ignored.
        name = sorted(unknown)[0]
        return graph_error(400, "BadRequest", f"The parameter '{name}' in the request payload is not valid.")
    if not body.get("externalId"):
        return graph_error(400, "BadRequest", "externalId is required.")
    if problem := _times_problem(body, together=False):
        return graph_error(400, "BadRequest", problem)
    organizer = request.match_info["user"]
    if not known_user(organizer):
        return graph_error(404, "NotFound", "The requested user was not found.")
    meeting, created = state.create_or_get(_origin(request), organizer, body)
    context = _context(request, f"users('{organizer}')/onlineMeetings/$entity")
    return odata(context, meeting, status=201 if created else 200)


def _times_problem(body: dict[str, Any], *, together: bool) -> str | None:
    """Graph's rules for meeting times: an end needs a start (createOrGet defaults the end to
    start + 1 h), a PATCH sends both or neither, and the end is after the start."""
    start, end = body.get("startDateTime"), body.get("endDateTime")
    if end is not None and start is None:
        return "startDateTime is required when endDateTime is set."
    if together and start is not None and end is None:
        return "startDateTime and endDateTime must be updated together."
    try:
        parsed = (
            parse_time(str(start)) if start is not None else None,
            parse_time(str(end)) if end else None,
        )
    except ValueError:
        return "startDateTime or endDateTime is not a valid date."
    if parsed[0] is not None and parsed[1] is not None and parsed[1] <= parsed[0]:
        return "endDateTime must be after startDateTime."
    return None


async def get_meeting(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    organizer, meeting_id = request.match_info["user"], request.match_info["meeting"]
    meeting = state.meeting_of(organizer, meeting_id)
    if meeting is None:
        return graph_error(404, "NotFound", "The requested onlineMeeting was not found.")
    return odata(_context(request, f"users('{organizer}')/onlineMeetings/$entity"), meeting)


async def patch_meeting(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    organizer, meeting_id = request.match_info["user"], request.match_info["meeting"]
    body = await _json_body(request)
    if not isinstance(body, dict):
        return graph_error(400, "BadRequest", "Request body is required.")
    body = {k: v for k, v in body.items() if k != "@odata.type"}
    if unknown := set(body) - MEETING_PATCHABLE:
        return graph_error(400, "BadRequest", f"Property '{sorted(unknown)[0]}' cannot be updated.")
    if problem := _times_problem(body, together=True):
        return graph_error(400, "BadRequest", problem)
    with state.lock:
        meeting = state.meeting_of(organizer, meeting_id)
        if meeting is None:
            return graph_error(404, "NotFound", "The requested onlineMeeting was not found.")
        for key in ("startDateTime", "endDateTime"):
            if key in body:
                body[key] = graph_time(parse_time(body[key]))
        meeting.update(body)
    return odata(_context(request, f"users('{organizer}')/onlineMeetings/$entity"), meeting)


async def delete_meeting(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    organizer, meeting_id = request.match_info["user"], request.match_info["meeting"]
    if state.meeting_of(organizer, meeting_id) is None:
        return graph_error(404, "NotFound", "The requested onlineMeeting was not found.")
    state.delete_meeting(meeting_id)
    return web.Response(status=204)


# --- calendar -------------------------------------------------------------------------------------


async def get_schedule(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = _action_parameters(await _json_body(request))
    if not isinstance(body, dict) or not body.get("schedules"):
        return graph_error(400, "ErrorInvalidParameter", "schedules is required.")
    try:
        start = _zoned(body["startTime"])
        end = _zoned(body["endTime"])
    except (KeyError, TypeError, ValueError):
        return graph_error(400, "ErrorInvalidParameter", "startTime and endTime are required.")
    schedules = body["schedules"]
    if not isinstance(schedules, list) or len(schedules) > MAX_SCHEDULES:
        count = len(schedules) if isinstance(schedules, list) else 0
        return graph_error(
            400,
            "ErrorMailboxDataArrayTooBig",
            "There are too many target users in the EmailAddress array. "
            f"The allowed size = {MAX_SCHEDULES}; the actual size = {count}.",
        )
    if end <= start or end - start >= MAX_SCHEDULE_PERIOD:
        return graph_error(
            400, "ErrorTimeIntervalTooBig", "The time interval must be positive and less than 62 days."
        )
    try:
        interval = int(body.get("availabilityViewInterval") or 30)
    except (TypeError, ValueError):
        interval = 0
    if not 5 <= interval <= 1440 or timedelta(minutes=interval) > end - start:
        return graph_error(
            400,
            "ErrorInvalidMergedFreeBusyInterval",
            "The specified merged free/busy interval is not valid. Specify an interval that is less "
            "than the free/busy time window and between 5 and 1440 minutes.",
        )
    values: list[dict[str, Any]] = []
    for schedule in schedules:
        address = str(schedule)
        with state.lock:
            unreadable = address.lower() in state.unreadable
        if unreadable or not ADDRESS.match(address) or not known_user(address):
            # A mailbox Graph cannot read is an error item, never free time.
            values.append(
                {
                    "scheduleId": address,
                    "availabilityView": "",
                    "error": {
                        "message": "The requested user was not found or its free/busy cannot be read.",
                        "responseCode": "ErrorMailRecipientNotFound",
                    },
                    "scheduleItems": [],
                }
            )
            continue
        with state.lock:
            items = list(state.busy.get(address.lower(), []))
        chosen = []
        for item in items:
            item_start, item_end = parse_time(item["start"]), parse_time(item["end"])
            if item_start < end and item_end > start:
                chosen.append((item_start, item_end, item.get("status", "busy"), item.get("subject", "")))
        values.append(
            {
                "scheduleId": schedule,
                "availabilityView": _availability_view(start, end, interval, chosen),
                "scheduleItems": [
                    {
                        # scheduleItem's v1.0 properties only (isMeeting & co. are not in the schema)
                        "isPrivate": False,
                        "status": status,
                        "subject": subject,
                        "location": "",
                        "start": {"dateTime": _wall_clock(s), "timeZone": "UTC"},
                        "end": {"dateTime": _wall_clock(e), "timeZone": "UTC"},
                    }
                    for s, e, status, subject in chosen
                ],
                "workingHours": {
                    "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                    "startTime": "08:00:00.0000000",
                    "endTime": "17:00:00.0000000",
                    "timeZone": {"name": "UTC"},
                },
            }
        )
    return odata(_context(request, "Collection(microsoft.graph.scheduleInformation)"), {"value": values})


def _zoned(value: dict[str, str]) -> datetime:
    if value.get("timeZone", "UTC").upper() != "UTC":
        raise ValueError("the emulator only speaks UTC")
    return parse_time(value["dateTime"])


def _wall_clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"


def _availability_view(
    start: datetime, end: datetime, minutes: int, items: list[tuple[datetime, datetime, str, str]]
) -> str:
    view = []
    slot = start
    step = timedelta(minutes=max(5, minutes))
    while slot < end:
        digit = "0"
        for s, e, status, _ in items:
            if s < slot + step and e > slot:
                digit = max(digit, FREE_BUSY_DIGITS.get(status, "2"))
        view.append(digit)
        slot += step
    return "".join(view)


# --- mail -----------------------------------------------------------------------------------------


async def send_mail(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    sender = request.match_info["user"]
    if not known_user(sender):
        return _invalid_user(sender)
    if len(await request.read()) > MAX_SENDMAIL_BYTES:
        return graph_error(
            413, "ErrorMessageSizeExceeded", "The message exceeds the maximum supported size.", None
        )
    body = _action_parameters(await _json_body(request))
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, dict) or not message.get("toRecipients"):
        return graph_error(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
    for recipient in message.get("toRecipients") or []:
        address = (
            ((recipient or {}).get("emailAddress") or {}).get("address")
            if isinstance(recipient, dict)
            else None
        )
        if not isinstance(address, str) or not ADDRESS.match(address):
            return graph_error(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
    for header in message.get("internetMessageHeaders") or []:
        if not str(header.get("name", "")).lower().startswith("x-"):
            return graph_error(
                400,
                "InvalidInternetMessageHeader",
                "The internet message header name should start with 'x-'.",
            )
    state.add_mail(unquote(sender), body)
    return web.Response(status=202)


async def list_sent_items(request: web.Request) -> web.Response:
    """GET …/mailFolders/sentitems/messages, with ``$filter=internetMessageId eq '…'``."""
    state = request.app[STATE_KEY]
    user = request.match_info["user"]
    if not known_user(user):
        return _invalid_user(user)
    if request.match_info["folder"].lower() != "sentitems":
        return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    with state.lock:
        messages = list(state.sent_items.get(unquote(user).lower(), []))
    wanted = request.query.get("$filter", "")
    match = re.fullmatch(r"internetMessageId eq '((?:[^']|'')*)'", wanted.strip())
    if wanted and match is None:
        return graph_error(
            400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes."
        )
    if match is not None:
        value = match.group(1).replace("''", "'")
        messages = [m for m in messages if m["internetMessageId"] == value]
    top = int(request.query.get("$top", "10") or 10)
    context = _context(request, f"users('{unquote(user)}')/mailFolders('sentitems')/messages")
    return odata(
        context,
        {"value": [{"id": m["id"], "internetMessageId": m["internetMessageId"]} for m in messages[:top]]},
    )


# --- subscriptions --------------------------------------------------------------------------------


async def create_subscription(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await _json_body(request)
    if not isinstance(body, dict):
        return graph_error(400, "InvalidRequest", "Request body is required.")
    for required in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
        if not body.get(required):
            return graph_error(400, "InvalidRequest", f"'{required}' is required.")
    resource = str(body["resource"])
    match = MEETING_CALL_EVENTS.match(resource)
    if match is None:
        return graph_error(
            400, "InvalidRequest", "The emulator supports meetingCallEvents subscriptions only."
        )
    if request.path.startswith("/v1.0/"):
        return graph_error(
            400, "InvalidRequest", "meetingCallEvents subscriptions are available on beta only."
        )
    if state.meeting_by_join_url(unquote(match["url"])) is None:
        return graph_error(404, "NotFound", "The online meeting was not found.")
    expires = parse_time(body["expirationDateTime"])
    now = datetime.now(UTC)
    if expires <= now or expires > now + MAX_CALL_EVENT_LIFETIME:
        return graph_error(
            400, "InvalidRequest", "Subscription expiration can only be 4320 minutes in the future."
        )
    if len(str(body.get("clientState") or "")) > 128:
        return graph_error(400, "InvalidRequest", "clientState may be at most 128 characters.")
    if problem := _encryption_problem(body):
        return graph_error(400, "InvalidRequest", problem)
    with state.lock:
        if any(s["resource"] == resource for s in state.subscriptions.values()):
            return graph_error(409, "Conflict", "A subscription for this resource already exists.")
    # Graph validates both endpoints, so the same URL twice gets two requests.
    urls = [body["notificationUrl"]]
    if body.get("lifecycleNotificationUrl"):
        urls.append(body["lifecycleNotificationUrl"])
    for url in urls:
        if problem := await _validate_endpoint(url, state.validation_timeout):
            return graph_error(400, "ValidationError", f"Subscription validation request failed. {problem}")
    subscription = {
        "id": str(uuid.uuid4()),
        "resource": resource,
        "applicationId": APP_ID,
        "changeType": body["changeType"],
        "clientState": body.get("clientState"),
        "notificationUrl": body["notificationUrl"],
        "notificationQueryOptions": None,
        "lifecycleNotificationUrl": body.get("lifecycleNotificationUrl"),
        "expirationDateTime": graph_time(expires),
        "creatorId": APP_ID,
        "includeResourceData": bool(body.get("includeResourceData")),
        "latestSupportedTlsVersion": "v1_2",
        "encryptionCertificate": body.get("encryptionCertificate") or None,
        "encryptionCertificateId": body.get("encryptionCertificateId") or None,
        "notificationUrlAppId": None,
    }
    with state.lock:
        if any(s["resource"] == resource for s in state.subscriptions.values()):
            return graph_error(409, "Conflict", "A subscription for this resource already exists.")
        state.subscriptions[subscription["id"]] = subscription
    return odata(_context(request, "subscriptions/$entity"), subscription, status=201)


def _encryption_problem(body: dict[str, Any]) -> str | None:
    """Graph's rule: includeResourceData needs encryptionCertificate and encryptionCertificateId."""
    certificate = body.get("encryptionCertificate")
    certificate_id = body.get("encryptionCertificateId")
    if not body.get("includeResourceData") and certificate is None and certificate_id is None:
        return None
    if body.get("includeResourceData") and (not certificate or not certificate_id):
        return (
            "encryptionCertificate and encryptionCertificateId are required when includeResourceData is true."
        )
    if certificate_id is not None and (not isinstance(certificate_id, str) or len(certificate_id) > 128):
        return "encryptionCertificateId may be at most 128 characters."
    if certificate is not None:
        try:
            load_encryption_certificate(str(certificate))
        except BadCertificate as exc:
            return f"{exc}."
    return None


async def _validate_endpoint(url: str, seconds: float) -> str | None:
    """POST ?validationToken= like Graph; the endpoint must echo it (text/plain, 200) in time."""
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    separator = "&" if "?" in url else "?"
    target = f"{url}{separator}validationToken={quote(token, safe='')}"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
            session.post(target, data=b"", headers={"Content-Type": "text/plain; charset=utf-8"}) as response,
        ):
            text = await response.text()
            if response.status != 200:
                return f"Response status code does not indicate success: {response.status}."
            if text != token:
                return "The endpoint did not echo the validation token."
    except TimeoutError:
        return f"The endpoint did not answer within {seconds:g} seconds."
    except aiohttp.ClientError as exc:
        return f"The endpoint could not be reached ({type(exc).__name__})."
    return None


async def update_subscription(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await _json_body(request)
    with state.lock:
        subscription = state.subscriptions.get(request.match_info["id"])
    if subscription is None:
        return graph_error(404, "ResourceNotFound", "The object was not found.")
    if not isinstance(body, dict) or not body.get("expirationDateTime"):
        return graph_error(400, "InvalidRequest", "expirationDateTime is required.")
    rotating = "encryptionCertificate" in body or "encryptionCertificateId" in body
    if rotating and (
        problem := _encryption_problem({"includeResourceData": subscription["includeResourceData"], **body})
    ):
        return graph_error(400, "InvalidRequest", problem)
    expires = parse_time(body["expirationDateTime"])
    now = datetime.now(UTC)
    if expires <= now or expires > now + MAX_CALL_EVENT_LIFETIME:
        return graph_error(
            400, "InvalidRequest", "Subscription expiration can only be 4320 minutes in the future."
        )
    with state.lock:
        subscription["expirationDateTime"] = graph_time(expires)
        if rotating:  # key rotation: Graph encrypts later notifications for the new certificate
            subscription["encryptionCertificate"] = body.get("encryptionCertificate")
            subscription["encryptionCertificateId"] = body.get("encryptionCertificateId")
    return odata(_context(request, "subscriptions/$entity"), subscription)


async def get_subscription(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    with state.lock:
        subscription = state.subscriptions.get(request.match_info["id"])
    if subscription is None:
        return graph_error(404, "ResourceNotFound", "The object was not found.")
    return odata(_context(request, "subscriptions/$entity"), subscription)


async def reauthorize_subscription(request: web.Request) -> web.Response:
    """POST /subscriptions/{id}/reauthorize: 204 (https://learn.microsoft.com/en-us/graph/api/subscription-reauthorize)."""
    state = request.app[STATE_KEY]
    with state.lock:
        subscription = state.subscriptions.get(request.match_info["id"])
        if subscription is not None:
            subscription.pop("_reauthorize", None)
    if subscription is None:
        return graph_error(404, "ResourceNotFound", "The object was not found.")
    return web.Response(status=204)


# Graph pages collections server-side: a default number of items per page and an
# ``@odata.nextLink`` to the rest ("Paging Microsoft Graph data in your app"; GET /users gives
# 100 a page). The subscriptions page does not state its size; 100 keeps a client honest.
SUBSCRIPTIONS_PAGE = 100


async def list_subscriptions(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    with state.lock:
        values = list(state.subscriptions.values())
    try:
        skip = max(0, int(request.query.get("$skiptoken", "0")))
    except ValueError:
        return graph_error(400, "BadRequest", "Invalid $skiptoken.")
    body: dict[str, Any] = {"value": values[skip : skip + SUBSCRIPTIONS_PAGE]}
    if skip + SUBSCRIPTIONS_PAGE < len(values):
        body["@odata.nextLink"] = str(request.url.with_query({"$skiptoken": str(skip + SUBSCRIPTIONS_PAGE)}))
    return odata(_context(request, "subscriptions"), body)


async def delete_subscription(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    with state.lock:
        removed = state.subscriptions.pop(request.match_info["id"], None)
    if removed is None:
        return graph_error(404, "ResourceNotFound", "The object was not found.")
    return web.Response(status=204)


def call_event_notification(
    subscription: dict[str, Any], event_type: str, at: datetime | None = None
) -> dict[str, Any]:
    """One notification item, as Graph sends it for this subscription.

    Like Graph: a basic subscription's item says only which resource changed (no event
    type, no time), so it cannot tell a call's end from its start; a rich one
    (includeResourceData) carries the callEvent encrypted for the subscriber's certificate.
    """
    item: dict[str, Any] = {
        "subscriptionId": subscription["id"],
        "subscriptionExpirationDateTime": subscription["expirationDateTime"],
        "changeType": "updated",
        "resource": subscription["resource"],
        "clientState": subscription["clientState"],
        "tenantId": TENANT_ID,
        "resourceData": {
            "@odata.type": "#microsoft.graph.callEvent",
            "@odata.id": subscription["resource"],
            "id": str(uuid.uuid4()),
        },
    }
    if subscription.get("includeResourceData"):
        event = {
            "@odata.type": "#microsoft.graph.callEvent",
            "id": item["resourceData"]["id"],
            "callEventType": event_type,  # callEvent's property (msgraph models.call_event)
            "eventDateTime": graph_time(at or datetime.now(UTC)),
        }
        item["encryptedContent"] = encrypt_resource_data(
            event, subscription["encryptionCertificate"], subscription["encryptionCertificateId"]
        )
    return item


async def deliver(state: EmulatorState, url: str, payload: dict[str, Any]) -> int:
    """POST a notification like Graph: 3 s to answer with a 2xx, else retried (a few times here)."""
    status = 0
    for attempt in range(1 + state.notification_retries):
        if attempt:
            await asyncio.sleep(state.notification_retry_delay * attempt)
        try:
            async with (
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=state.notification_timeout)
                ) as session,
                session.post(url, json=payload) as response,
            ):
                status = response.status
        except (TimeoutError, aiohttp.ClientError):
            status = 0
        with state.lock:
            state.deliveries.append({"url": url, "status": status, "attempt": attempt})
        if 200 <= status < 300:
            break
    return status


def _collection(
    state: EmulatorState, signing: TestSigningKey | None, items: list[dict[str, Any]], rich: bool
) -> dict[str, Any]:
    """A changeNotificationCollection; rich ones carry one validationToken per app and tenant."""
    payload: dict[str, Any] = {"value": items}
    if rich and signing is not None:
        payload["validationTokens"] = [signing.token(APP_ID, TENANT_ID)]
    return payload


async def notify_call_event(
    state: EmulatorState,
    meeting_id: str,
    event_type: str,
    signing: TestSigningKey | None = None,
    at: datetime | None = None,
) -> list[int]:
    """Send a meetingCallEvents change notification to every subscription on the meeting."""
    with state.lock:
        meeting = state.meetings.get(meeting_id)
        if meeting is None:
            raise web.HTTPNotFound(text="no such meeting")
        targets = [
            s
            for s in state.subscriptions.values()
            if (m := MEETING_CALL_EVENTS.match(s["resource"])) and unquote(m["url"]) == meeting["joinWebUrl"]
        ]
    statuses = []
    at = at or state.event_now()
    for subscription in targets:
        item = call_event_notification(subscription, event_type, at)
        payload = _collection(state, signing, [item], bool(subscription.get("includeResourceData")))
        with state.lock:
            state.notifications.append(payload)
        statuses.append(await deliver(state, subscription["notificationUrl"], payload))
    return statuses


LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")


async def notify_lifecycle(
    state: EmulatorState, subscription_id: str, event: str, signing: TestSigningKey | None = None
) -> int:
    """A lifecycle notification (https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events);
    ``subscriptionRemoved`` also removes the subscription, as Graph has."""
    if event not in LIFECYCLE_EVENTS:
        raise web.HTTPBadRequest(text=f"event must be one of {', '.join(LIFECYCLE_EVENTS)}")
    with state.lock:
        subscription = state.subscriptions.get(subscription_id)
        if subscription is None:
            raise web.HTTPNotFound(text="no such subscription")
        if event == "subscriptionRemoved":
            del state.subscriptions[subscription_id]
    item = {
        "subscriptionId": subscription["id"],
        "subscriptionExpirationDateTime": subscription["expirationDateTime"],
        "lifecycleEvent": event,
        "resource": subscription["resource"],
        "clientState": subscription["clientState"],
        "tenantId": TENANT_ID,
    }
    url = subscription.get("lifecycleNotificationUrl") or subscription["notificationUrl"]
    payload = _collection(state, signing, [item], bool(subscription.get("includeResourceData")))
    with state.lock:
        state.notifications.append(payload)
    return await deliver(state, url, payload)


# --- control API ----------------------------------------------------------------------------------


async def control_meetings(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    with state.lock:
        meetings = [
            {**m, "organizer": state.organizers.get(m["id"]), "admitted": m["id"] in state.admitted}
            for m in state.meetings.values()
        ]
    return web.json_response({"value": meetings})


async def control_mail(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    with state.lock:
        mail = list(state.mail)
    return web.json_response({"value": mail, "duplicates": state.duplicate_mail()})


async def control_subscriptions(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    with state.lock:
        values = list(state.subscriptions.values())
    return web.json_response({"value": values, "notifications": len(state.notifications)})


async def control_requests(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response(
        {
            "value": [
                {"method": r.method, "path": r.path, "status": r.status, "body": r.body}
                for r in state.received()
            ]
        }
    )


async def control_busy(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await _json_body(request)
    if not isinstance(body, list):
        raise web.HTTPBadRequest(text='expected a list of {"start", "end", "status"}')
    state.set_busy(request.match_info["user"], body)
    return web.json_response({"user": request.match_info["user"], "items": len(body)})


async def control_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await _json_body(request)
    if not isinstance(body, dict) or not body.get("path"):
        raise web.HTTPBadRequest(
            text='expected {"path": regex, "count", "status", "retryAfter", "delayMs", "body": regex}'
        )
    retry_after = body.get("retryAfter")
    state.add_fault(
        Fault(
            path=str(body["path"]),
            count=int(body.get("count", 1)),
            status=body.get("status"),
            retry_after=None if retry_after is None else str(retry_after),
            delay=float(body.get("delayMs", 0)) / 1000,
            method=body.get("method"),
            code=body.get("code"),
            after=bool(body.get("after", False)),
            body=None if body.get("body") is None else str(body["body"]),
        )
    )
    return web.json_response({"faults": len(state.faults)}, status=201)


async def control_reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.Response(status=204)


async def _control_event(request: web.Request, event_type: str) -> web.Response:
    body = await _json_body(request)
    at = parse_time(body["at"]) if isinstance(body, dict) and body.get("at") else None
    statuses = await notify_call_event(
        request.app[STATE_KEY], request.match_info["id"], event_type, request.app[SIGNING_KEY], at
    )
    return web.json_response({"delivered": statuses})


async def control_end(request: web.Request) -> web.Response:
    return await _control_event(request, "callEnded")


async def control_start(request: web.Request) -> web.Response:
    return await _control_event(request, "callStarted")


async def control_lifecycle(request: web.Request) -> web.Response:
    body = await _json_body(request)
    event = str(body.get("event")) if isinstance(body, dict) else ""
    status = await notify_lifecycle(
        request.app[STATE_KEY], request.match_info["id"], event, request.app[SIGNING_KEY]
    )
    return web.json_response({"delivered": status})


async def control_keys(request: web.Request) -> web.Response:
    """The test JWKS that signs validationTokens (point GRAPH_NOTIFICATION_JWKS here)."""
    return web.Response(text=request.app[SIGNING_KEY].jwks_json(), content_type="application/json")


async def control_unreadable(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    with state.lock:
        state.unreadable.add(unquote(request.match_info["user"]).lower())
    return web.json_response({"unreadable": request.match_info["user"]})


def _mark_meeting(request: web.Request, marks: str) -> None:
    """Add the meeting of the path to one of the state's sets (``admitted``, ``waiting``)."""
    state = request.app[STATE_KEY]
    meeting_id = request.match_info["id"]
    with state.lock:
        if meeting_id not in state.meetings:
            raise web.HTTPNotFound(text="no such meeting")
        getattr(state, marks).add(meeting_id)


async def control_admit(request: web.Request) -> web.Response:
    """The organizer admits the participant waiting in the lobby."""
    _mark_meeting(request, "admitted")
    return web.json_response({"admitted": True})


async def lobby_state(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    meeting_id = request.match_info["id"]
    with state.lock:
        meeting = state.meetings.get(meeting_id)
        admitted = meeting_id in state.admitted
        waiting = meeting_id in state.waiting and not admitted
    if meeting is None:
        raise web.HTTPNotFound(text="no such meeting")
    return web.json_response({"admitted": admitted, "waiting": waiting, "subject": meeting.get("subject")})


async def control_enter_lobby(request: web.Request) -> web.Response:
    """A participant's stand-in client enters the lobby (Teams: anyone but the organizer waits)."""
    _mark_meeting(request, "waiting")
    return web.json_response({"waiting": True})


JOIN_PAGE = """<!doctype html>
<html lang="fi"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Teams (emulaattori)</title>
<style>
body{{font-family:system-ui,sans-serif;background:#f5f5f5;margin:0;display:grid;place-items:center;min-height:100vh}}
main{{background:#fff;border-radius:8px;padding:2rem 2.5rem;box-shadow:0 1px 4px #0002;
max-width:28rem;text-align:center}}
h1{{font-size:1.2rem;color:#464775}} .en{{color:#555;font-size:.9rem}} #admitted{{color:#237b4b}}
button{{font:inherit;font-weight:600;background:#464775;color:#fff;border:0;border-radius:6px;
padding:.6rem 1.2rem;min-height:2.75rem;cursor:pointer}} button:disabled{{opacity:.5;cursor:not-allowed}}
</style></head>
<body><main data-meeting="{meeting_id}" data-role="{role}">
<h1>{subject}</h1>
<section id="organizer" {organizer_hidden}>
<p>Olet kokouksen järjestäjä. / You are the organizer.</p>
<p id="nobody" aria-live="polite">Aulassa ei ole ketään.
<span class="en">Nobody is waiting in the lobby.</span></p>
<p id="someone" aria-live="polite" hidden><strong>Aulassa odottaa osallistuja.</strong>
<span class="en">Someone is waiting in the lobby.</span></p>
<button type="button" id="admit" disabled>Päästä sisään / Admit</button>
</section>
<section id="lobby" {lobby_hidden}><p>Olet aulassa. Odota, että järjestäjä päästää sinut sisään…</p>
<p class="en">You are in the lobby… waiting for the organizer to admit you.</p></section>
<section id="admitted" hidden><p><strong>Päästetty sisään.</strong> Tapaaminen on alkanut.</p>
<p class="en"><strong>Admitted.</strong> The meeting has started.</p></section>
<p class="en">Microsoft Teams stand-in (Graph emulator)</p>
</main>
<script>
const base = {base_url};
const organizer = {is_organizer};
const show = (id, on) => {{ document.getElementById(id).hidden = !on; }};
async function poll() {{
  try {{
    const r = await fetch(base + "/lobby-state", {{cache: "no-store"}});
    const s = r.ok ? await r.json() : null;
    if (s && organizer) {{
      show("nobody", !s.waiting && !s.admitted);
      show("someone", s.waiting);
      document.getElementById("admit").disabled = !s.waiting;
      show("admitted", s.admitted);
    }} else if (s && s.admitted) {{
      show("lobby", false);
      show("admitted", true);
      document.title = "Admitted";
      return;
    }}
  }} catch (e) {{}}
  setTimeout(poll, 1000);
}}
document.getElementById("admit").addEventListener("click", async (e) => {{
  e.target.disabled = true;
  await fetch(base + "/admit", {{method: "POST"}});
}});
if (!organizer) fetch(base + "/lobby", {{method: "POST"}});
poll();
</script></body></html>
"""


async def join_page(request: web.Request) -> web.Response:
    """What a Teams client shows on opening the join link. Teams knows who is signed in; the
    stand-in is told with ``signedInAs`` (the expert console adds the expert's object id). Lobby
    bypass is "organizer" (see create_or_get): the organizer is in the meeting at once and admits
    the others from the lobby, everyone else waits there."""
    state = request.app[STATE_KEY]
    meeting_id = request.match_info["id"]
    viewer = (request.query.get("signedInAs") or "").lower()
    with state.lock:
        meeting = state.meetings.get(meeting_id)
        is_organizer = bool(viewer) and state.organizers.get(meeting_id) == viewer
    if meeting is None:
        raise web.HTTPNotFound(text="Kokousta ei löydy / meeting not found")
    page = JOIN_PAGE.format(
        meeting_id=html.escape(meeting_id),
        role="organizer" if is_organizer else "attendee",
        subject=html.escape(meeting.get("subject") or "Teams"),
        organizer_hidden="" if is_organizer else "hidden",
        lobby_hidden="hidden" if is_organizer else "",
        is_organizer="true" if is_organizer else "false",
        # json.dumps alone would let "</script>" through; the escapes keep it inside the string.
        base_url=json.dumps(f"/_emulator/meetings/{meeting_id}").replace("<", "\\u003c"),
    )
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})


def create_app(state: EmulatorState | None = None, signing: TestSigningKey | None = None) -> web.Application:
    """The emulator as an aiohttp application over ``state`` (a fresh one when omitted)."""
    app = web.Application(middlewares=[graph_middleware], client_max_size=8 * 1024 * 1024)
    app[STATE_KEY] = state if state is not None else EmulatorState()
    app[SIGNING_KEY] = signing if signing is not None else TestSigningKey()
    for version in ("v1.0", "beta"):
        users = f"/{version}/users/{{user}}"
        app.router.add_post(f"{users}/onlineMeetings/createOrGet", create_or_get)
        app.router.add_get(f"{users}/onlineMeetings/{{meeting}}", get_meeting)
        app.router.add_patch(f"{users}/onlineMeetings/{{meeting}}", patch_meeting)
        app.router.add_delete(f"{users}/onlineMeetings/{{meeting}}", delete_meeting)
        app.router.add_post(f"{users}/calendar/getSchedule", get_schedule)
        app.router.add_post(f"{users}/sendMail", send_mail)
        app.router.add_get(f"{users}/mailFolders/{{folder}}/messages", list_sent_items)
        app.router.add_post(f"/{version}/subscriptions", create_subscription)
        app.router.add_get(f"/{version}/subscriptions", list_subscriptions)
        app.router.add_get(f"/{version}/subscriptions/{{id}}", get_subscription)
        app.router.add_post(f"/{version}/subscriptions/{{id}}/reauthorize", reauthorize_subscription)
        app.router.add_patch(f"/{version}/subscriptions/{{id}}", update_subscription)
        app.router.add_delete(f"/{version}/subscriptions/{{id}}", delete_subscription)
    app.router.add_get("/_emulator/meetings", control_meetings)
    app.router.add_post("/_emulator/meetings/{id}/end", control_end)
    app.router.add_post("/_emulator/meetings/{id}/start", control_start)
    app.router.add_post("/_emulator/meetings/{id}/admit", control_admit)
    app.router.add_post("/_emulator/subscriptions/{id}/lifecycle", control_lifecycle)
    app.router.add_get("/_emulator/keys", control_keys)
    app.router.add_post("/_emulator/unreadable/{user}", control_unreadable)
    app.router.add_get("/_emulator/meetings/{id}/lobby-state", lobby_state)
    app.router.add_post("/_emulator/meetings/{id}/lobby", control_enter_lobby)
    app.router.add_get("/_emulator/join/{id}", join_page)
    app.router.add_get("/_emulator/mail", control_mail)
    app.router.add_get("/_emulator/subscriptions", control_subscriptions)
    app.router.add_get("/_emulator/requests", control_requests)
    app.router.add_put("/_emulator/busy/{user}", control_busy)
    app.router.add_post("/_emulator/busy/{user}", control_busy)
    app.router.add_post("/_emulator/faults", control_faults)
    app.router.add_post("/_emulator/reset", control_reset)
    return app
