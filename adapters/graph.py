"""Microsoft Graph behind the ``MeetingGateway`` and ``MailSender`` ports (msgraph-sdk).

Cold start is a product metric, so this module imports neither msgraph nor azure.identity
at import time: ``_sdk()`` loads them on first use, and ``warm_up()`` does that plus the
first model (de)serialisation (the expensive part: ~1,250 model modules) off the request
path. Importing the SDK also raises DeprecationWarnings from its generated request
builders; ``_sdk()`` imports them once with those warnings silenced, so later calls emit
none (the test suite runs with ``filterwarnings = error``).

Call events: ``communications/onlineMeetings(joinWebUrl='…')/meetingCallEvents`` (beta),
one subscription per appointment, rather than v1.0 ``communications/callRecords``:

* callRecords is tenant-wide. It needs ``CallRecords.Read.All``, which lets this app read
  every call in the bank's tenant; the notification names only a callRecord id, so each
  call anywhere in the bank costs us a GET to find out it is not ours.
* callRecords arrive after the call record is assembled (typically minutes, up to ~15,
  sometimes later), which is too late to close an identification step promptly.
* meetingCallEvents is per meeting, so the per-appointment notificationUrl
  (``?appointment=<code>``) and clientState (``client_state_for``) bind each notification
  to one appointment, and callEnded arrives while the expert is still there.
* Its costs: beta (no SLA; shapes may change) and at most 3 days per subscription. We
  subscribe when the join window opens (start − 15 min) and need it until end + grace, so
  one subscription normally lives its whole useful life without renewal. The orchestration
  does not depend on it: the expert's *end* action and the end + grace timer still end
  the appointment when a notification never comes.
* Microsoft documents that *basic* notifications for this resource carry no event details
  and recommends rich (encrypted) ones. Given ``encryption_certificate`` (base64 DER, public
  key only) and ``encryption_certificate_id``, the subscription asks for rich notifications
  (``includeResourceData``); ``adapters.notification_crypto`` decrypts them. Without a
  certificate the subscription is basic and, against real Graph, cannot tell call-ended
  apart (``bootstrap`` warns once). ``delete_subscription`` removes it on cancel.

Status codes: createOrGet answers 201 when it created the meeting and 200 when the
externalId already existed. The SDK's ``post`` returns only the model, so that call asks
kiota for the native ``httpx.Response`` (``ResponseHandlerOption(NativeResponseHandler())``),
reads ``status_code`` and deserialises the body with the SDK's own JSON parse node.

createOrGet takes only subject, times, externalId, participants and chatInfo; the lobby,
recording and presenter settings are applied with a PATCH afterwards, and only when the
meeting Graph returned differs from what the appointment needs (a retry after a crash
between the two calls therefore still ends with the right settings).

Errors: the SDK's retry middleware honours Retry-After for 429/503/504; it is bounded here
(``RetryPolicy``): at most ``max_retries`` retries, and a Retry-After above
``max_retry_after`` is not slept on in-process but surfaces as ``TransientGatewayError``
for the Durable retry policy, so an activity never sleeps for minutes. 5xx, 429, 408,
timeouts and connection errors → ``TransientGatewayError``; other 4xx →
``PermanentGatewayError`` carrying the status and Graph's error code, never Graph's
message text (it can echo user names and addresses).
"""

from __future__ import annotations

import contextlib
import json
import threading
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from adapters.graph_webhook import meeting_call_events_resource
from appointments.ports import (
    BusyInterval,
    CallEventSubscription,
    GatewayError,
    MailMessage,
    Meeting,
    MeetingRequest,
    PermanentGatewayError,
    TransientGatewayError,
)

if TYPE_CHECKING:  # pragma: no cover - names for annotations only
    import httpx
    from msgraph.graph_service_client import GraphServiceClient

    from appointments.settings import Settings

IDEMPOTENCY_HEADER = "X-Idempotency-Key"  # Graph accepts custom message headers starting with x-
# meetingCallEvents subscriptions last at most 3 days; stay a little under so clock skew
# between us and Graph never makes the request invalid.
MAX_SUBSCRIPTION_LIFETIME = timedelta(days=3) - timedelta(minutes=10)
# sendMail refuses requests over 4 MB; base64 grows attachments by a third.
MAX_ATTACHMENT_BYTES = 3 * 1024 * 1024
_BUSY_STATUSES = frozenset({"busy", "oof", "tentative", "unknown"})  # unknown: do not offer the slot
_DEV_TOKEN = "graph-emulator-dev-token"  # noqa: S105 - a placeholder the loopback emulator accepts


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one adapter call tries before it hands the failure to Durable's retry."""

    max_retries: int = 2  # retries after the first attempt, for 429/503/504
    backoff: float = 0.5  # seconds; doubles per retry, plus up to 1 s of jitter (kiota)
    max_retry_after: float = 10.0  # longer Retry-After → TransientGatewayError at once
    timeout: float = 20.0  # seconds per attempt (read); connect gets min(5, timeout)


# --- lazy SDK loading ---------------------------------------------------------------------

# Request builders on the paths this adapter navigates. Importing them issues
# DeprecationWarnings from their class bodies, so they are imported here, once, quietly.
_SDK_MODULES = (
    "msgraph",
    "msgraph.graph_request_adapter",
    "msgraph.generated.users.users_request_builder",
    "msgraph.generated.users.item.user_item_request_builder",
    "msgraph.generated.users.item.online_meetings.online_meetings_request_builder",
    "msgraph.generated.users.item.online_meetings.create_or_get.create_or_get_request_builder",
    "msgraph.generated.users.item.online_meetings.item.online_meeting_item_request_builder",
    "msgraph.generated.users.item.calendar.calendar_request_builder",
    "msgraph.generated.users.item.calendar.get_schedule.get_schedule_request_builder",
    "msgraph.generated.users.item.send_mail.send_mail_request_builder",
    "msgraph.generated.subscriptions.subscriptions_request_builder",
    "msgraph.generated.subscriptions.item.subscription_item_request_builder",
    "kiota_abstractions.base_request_configuration",
    "kiota_abstractions.native_response_handler",
    "kiota_http.middleware.options",
    "kiota_serialization_json.json_parse_node_factory",
)
_sdk_lock = threading.Lock()
_sdk_loaded = False


def _sdk() -> None:
    """Import the SDK modules this adapter uses (first call only)."""
    global _sdk_loaded
    if _sdk_loaded:
        return
    import importlib

    with _sdk_lock:
        if _sdk_loaded:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for name in _SDK_MODULES:
                importlib.import_module(name)
        _sdk_loaded = True


def warm_up() -> None:
    """Pay msgraph's cold costs now: imports plus the first (de)serialisation of every model used.

    Synchronous and network-free; call it off the request path (a worker-start hook, or
    ``asyncio.to_thread(warm_up)`` at the start of the first activity).
    """
    _sdk()
    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
    from kiota_serialization_json.json_serialization_writer_factory import (
        JsonSerializationWriterFactory,
    )
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.online_meeting import OnlineMeeting
    from msgraph.generated.models.subscription import Subscription
    from msgraph.generated.users.item.calendar.get_schedule.get_schedule_post_response import (
        GetSchedulePostResponse,
    )

    samples: list[tuple[Any, dict[str, Any]]] = [
        (
            OnlineMeeting,
            {"id": "x", "joinWebUrl": "https://x", "lobbyBypassSettings": {"scope": "organizer"}},
        ),
        (Subscription, {"id": "x", "expirationDateTime": "2030-01-01T00:00:00Z"}),
        (GetSchedulePostResponse, {"value": [{"scheduleId": "x", "scheduleItems": []}]}),
        (ODataError, {"error": {"code": "x"}}),
    ]
    parse = JsonParseNodeFactory()
    for model, payload in samples:
        node = parse.get_root_parse_node("application/json", json.dumps(payload).encode())
        node.get_object_value(model)
    writer = JsonSerializationWriterFactory().get_serialization_writer("application/json")
    writer.write_object_value(None, _meeting_settings_patch(None, None, None))
    writer.write_object_value(None, _mail_body(MailMessage("a@b.c", "s", "t", "<p>h</p>", "k")))
    writer.get_serialized_content()


# --- client -------------------------------------------------------------------------------


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def build_graph_client(
    settings: Settings,
    *,
    http_client: httpx.AsyncClient | None = None,
    policy: RetryPolicy | None = None,
    credential: Any = None,
) -> GraphServiceClient:
    """A ``GraphServiceClient`` for ``settings.graph_base_url`` with bounded retries.

    Credentials: ``credential`` when given; a static dev token when the base URL is a
    loopback address (the emulator); ``ClientSecretCredential`` when tenant, client id
    and secret are all set; otherwise ``DefaultAzureCredential`` (managed identity in
    Azure, with ``graph_client_id`` as the user-assigned identity's client id if set).
    ``http_client`` lets the caller own the connection pool (tests close it); its
    transport is wrapped with the SDK's middleware.
    """
    _sdk()
    import httpx
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_service_client import GraphServiceClient

    policy = policy or RetryPolicy()
    base_url = settings.graph_base_url.rstrip("/")
    if http_client is None:
        http_client = httpx.AsyncClient(
            timeout=httpx.Timeout(policy.timeout, connect=min(5.0, policy.timeout))
        )
    else:
        http_client.timeout = httpx.Timeout(policy.timeout, connect=min(5.0, policy.timeout))
    adapter = GraphRequestAdapter(
        _auth_provider(settings, base_url, credential), client=_with_middleware(http_client, policy)
    )
    # httpx's base URL handling would otherwise turn "{+baseurl}/users" into "//users".
    adapter.base_url = base_url
    return GraphServiceClient(request_adapter=adapter)


def _auth_provider(settings: Settings, base_url: str, credential: Any) -> Any:
    host = urlsplit(base_url).hostname or ""
    if credential is None and is_loopback(base_url):
        return _static_token_provider(host)
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )

    if credential is None:
        credential = _azure_credential(settings)
    scheme_host = f"https://{host}"
    return AzureIdentityAuthenticationProvider(
        credential, scopes=[f"{scheme_host}/.default"], allowed_hosts=[host]
    )


def _azure_credential(settings: Settings) -> Any:
    secret = settings.graph_client_secret.value
    if settings.graph_tenant_id and settings.graph_client_id and secret:
        from azure.identity.aio import ClientSecretCredential

        return ClientSecretCredential(settings.graph_tenant_id, settings.graph_client_id, secret)
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.graph_client_id or None)


def _static_token_provider(host: str) -> Any:
    from kiota_abstractions.authentication import (
        AccessTokenProvider,
        AllowedHostsValidator,
        BaseBearerTokenAuthenticationProvider,
    )

    class StaticToken(AccessTokenProvider):
        """The emulator accepts any bearer token; Graph itself never sees this one."""

        async def get_authorization_token(
            self, uri: str, additional_authentication_context: dict[str, Any] | None = None
        ) -> str:
            return _DEV_TOKEN if self.get_allowed_hosts_validator().is_url_host_valid(uri) else ""

        def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
            return AllowedHostsValidator([host])

    return BaseBearerTokenAuthenticationProvider(StaticToken())


def _with_middleware(http_client: httpx.AsyncClient, policy: RetryPolicy) -> httpx.AsyncClient:
    from kiota_http.kiota_client_factory import KiotaClientFactory
    from kiota_http.middleware import RetryHandler
    from kiota_http.middleware.options import RetryHandlerOption
    from msgraph_core import GraphClientFactory
    from msgraph_core.middleware import GraphTelemetryHandler

    class BoundedRetryHandler(RetryHandler):
        """kiota's retry, except that a long Retry-After is handed back instead of slept on."""

        def get_delay_time(self, retry_count: int, response: Any = None, delay: float = 0.0) -> float:
            retry_after = self._get_retry_after(response)
            if retry_after is not None and retry_after > policy.max_retry_after:
                return float(RetryHandlerOption.MAX_DELAY)  # kiota skips the retry at this value
            return float(super().get_delay_time(retry_count, response, delay))

    retry = BoundedRetryHandler(RetryHandlerOption(delay=0.0, max_retries=policy.max_retries))
    retry.backoff_factor = policy.backoff
    middleware = [
        retry if isinstance(handler, RetryHandler) else handler
        for handler in KiotaClientFactory.get_default_middleware(None)
    ]
    middleware.append(GraphTelemetryHandler())
    client: Any = GraphClientFactory.create_with_custom_middleware(middleware, client=http_client)
    # msgraph-core's AsyncGraphTransport has no aclose(), so closing the httpx client would
    # leave the real connection pool (and its sockets) open. Hand aclose through.
    for transport in [client._transport, *(t for t in client._mounts.values() if t is not None)]:
        inner = getattr(transport, "transport", None)
        if inner is not None:
            transport.aclose = inner.aclose
    return client  # type: ignore[no-any-return]


# --- error mapping ------------------------------------------------------------------------


def _gateway_error(
    operation: str, status: int | None, code: str | None, retry_after: str | None
) -> GatewayError:
    label = f"Graph {operation} failed: HTTP {status}" + (f" {code}" if code else "")
    if status is None or status in (408, 429) or status >= 500:
        hint = f" (retry after {retry_after} s)" if retry_after else ""
        return TransientGatewayError(label + hint)
    return PermanentGatewayError(label, status=status, code=code)


@asynccontextmanager
async def _graph_call(operation: str, *, missing_ok: bool = False) -> AsyncIterator[SimpleNamespace]:
    """Map httpx and kiota failures of one Graph call to the port's errors.

    With ``missing_ok`` a 404 is swallowed and ``outcome.missing`` set instead.
    """
    import httpx
    from kiota_abstractions.api_error import APIError

    outcome = SimpleNamespace(missing=False)
    try:
        yield outcome
    except GatewayError:
        raise
    except httpx.TransportError as exc:  # timeouts, refused and reset connections
        raise TransientGatewayError(f"Graph {operation} failed: {type(exc).__name__}") from exc
    except APIError as exc:
        status = exc.response_status_code
        if missing_ok and status == 404:
            outcome.missing = True
            return
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None)
        headers = exc.response_headers or {}
        raise _gateway_error(operation, status, code, _header(headers, "retry-after")) from exc


def _header(headers: Any, name: str) -> str | None:
    try:
        value = headers.get(name)
    except AttributeError:
        return None
    if isinstance(value, list | tuple | set):
        value = next(iter(value), None)
    return str(value) if value is not None else None


def _raise_for_native(operation: str, response: httpx.Response) -> None:
    if response.is_success:
        return
    code = None
    with contextlib.suppress(ValueError, AttributeError):  # an HTML gateway page, or no body at all
        code = response.json().get("error", {}).get("code")
    raise _gateway_error(operation, response.status_code, code, response.headers.get("retry-after"))


# --- meetings -----------------------------------------------------------------------------


def _meeting_settings_patch(subject: str | None, start: datetime | None, end: datetime | None) -> Any:
    """The onlineMeeting PATCH body: only the organizer bypasses the lobby, recorded, organizer presents."""
    from msgraph.generated.models.lobby_bypass_scope import LobbyBypassScope
    from msgraph.generated.models.lobby_bypass_settings import LobbyBypassSettings
    from msgraph.generated.models.online_meeting import OnlineMeeting
    from msgraph.generated.models.online_meeting_presenters import OnlineMeetingPresenters

    changes: dict[str, Any] = {"subject": subject, "start_date_time": start, "end_date_time": end}
    # Never pass None: kiota's backing store writes a field set to None as a JSON null under
    # its Python name ("odata_type": null), which Graph refuses.
    return OnlineMeeting(
        # organization would let any colleague (and, with some tenant settings, guests) straight in.
        lobby_bypass_settings=LobbyBypassSettings(
            scope=LobbyBypassScope.Organizer, is_dial_in_bypass_enabled=False
        ),
        record_automatically=True,
        allowed_presenters=OnlineMeetingPresenters.Organizer,
        **{name: value for name, value in changes.items() if value is not None},
    )


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


def _needs_patch(meeting: Any, request: MeetingRequest) -> bool:
    lobby = meeting.lobby_bypass_settings
    return not (
        lobby is not None
        and _enum_value(lobby.scope) == "organizer"
        and not lobby.is_dial_in_bypass_enabled
        and meeting.record_automatically is True
        and _enum_value(meeting.allowed_presenters) == "organizer"
        and meeting.subject == request.subject
        and _same_instant(meeting.start_date_time, request.start)
        and _same_instant(meeting.end_date_time, request.end)
    )


def _same_instant(a: datetime | None, b: datetime) -> bool:
    if a is None:
        return False
    a = a if a.tzinfo else a.replace(tzinfo=UTC)
    return a == b


def _require_aware(*values: datetime) -> None:
    for value in values:
        if value.tzinfo is None:
            raise ValueError("meeting times must be timezone-aware (UTC)")


class GraphMeetingGateway:
    """``MeetingGateway`` on Microsoft Graph; one instance per process is enough."""

    def __init__(self, client: GraphServiceClient, *, beta_base_url: str | None = None) -> None:
        self._client = client
        base = client.request_adapter.base_url.rstrip("/")
        if beta_base_url is None:
            if not base.endswith("/v1.0"):
                raise ValueError("cannot derive the Graph beta URL from " + base)
            beta_base_url = base[: -len("/v1.0")] + "/beta"
        self._beta = beta_base_url.rstrip("/")

    async def create_or_get(self, request: MeetingRequest) -> Meeting:
        _sdk()
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from kiota_abstractions.native_response_handler import NativeResponseHandler
        from kiota_http.middleware.options import ResponseHandlerOption
        from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
        from msgraph.generated.models.online_meeting import OnlineMeeting
        from msgraph.generated.users.item.online_meetings.create_or_get import (
            create_or_get_post_request_body as create_or_get,
        )

        _require_aware(request.start, request.end)
        body = create_or_get.CreateOrGetPostRequestBody(
            external_id=request.booking_code,
            subject=request.subject,
            start_date_time=request.start,
            end_date_time=request.end,
        )
        # The native response is the only place the SDK exposes 201 (created) vs 200 (existed).
        config: RequestConfiguration[Any] = RequestConfiguration(
            options=[ResponseHandlerOption(NativeResponseHandler())]
        )
        meetings = self._client.users.by_user_id(request.organizer_id).online_meetings
        async with _graph_call("createOrGet"):
            response: Any = await meetings.create_or_get.post(body, request_configuration=config)
        _raise_for_native("createOrGet", response)
        node = JsonParseNodeFactory().get_root_parse_node("application/json", response.content)
        meeting = node.get_object_value(OnlineMeeting)
        if not meeting.id or not meeting.join_web_url:
            raise TransientGatewayError("Graph createOrGet answered without a meeting id or join URL")
        if _needs_patch(meeting, request):
            patch = _meeting_settings_patch(request.subject, request.start, request.end)
            async with _graph_call("update meeting settings"):
                await meetings.by_online_meeting_id(meeting.id).patch(patch)
        return Meeting(
            meeting_id=meeting.id, join_url=meeting.join_web_url, created=response.status_code == 201
        )

    async def update_times(self, organizer_id: str, meeting_id: str, start: datetime, end: datetime) -> None:
        _sdk()
        from msgraph.generated.models.online_meeting import OnlineMeeting

        _require_aware(start, end)
        body = OnlineMeeting(start_date_time=start, end_date_time=end)
        item = self._client.users.by_user_id(organizer_id).online_meetings.by_online_meeting_id(meeting_id)
        async with _graph_call("update meeting times"):
            await item.patch(body)

    async def delete(self, organizer_id: str, meeting_id: str) -> None:
        _sdk()
        item = self._client.users.by_user_id(organizer_id).online_meetings.by_online_meeting_id(meeting_id)
        async with _graph_call("delete meeting", missing_ok=True):
            await item.delete()

    async def get_schedule(
        self, organizer_ids: list[str], start: datetime, end: datetime
    ) -> dict[str, list[BusyInterval]]:
        """Busy intervals per organizer (UPN or SMTP address: getSchedule takes addresses).

        An organizer whose calendar Graph could not read is absent from the result:
        unknown is not the same as free, and the caller must not offer their slots.
        """
        _sdk()
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
        from msgraph.generated.users.item.calendar.get_schedule.get_schedule_post_request_body import (
            GetSchedulePostRequestBody,
        )

        if not organizer_ids:
            return {}
        _require_aware(start, end)
        body = GetSchedulePostRequestBody(
            schedules=list(organizer_ids),
            start_time=DateTimeTimeZone(date_time=_graph_local(start), time_zone="UTC"),
            end_time=DateTimeTimeZone(date_time=_graph_local(end), time_zone="UTC"),
            availability_view_interval=15,
        )
        config: RequestConfiguration[Any] = RequestConfiguration()
        # Without it Graph answers in the mailbox's own zone, with no offset in the string.
        config.headers.add("Prefer", 'outlook.timezone="UTC"')
        action = self._client.users.by_user_id(organizer_ids[0]).calendar.get_schedule
        async with _graph_call("getSchedule"):
            result = await action.post(body, request_configuration=config)
        wanted = {organizer.lower(): organizer for organizer in organizer_ids}
        busy: dict[str, list[BusyInterval]] = {}
        for info in (result.value if result else None) or []:
            organizer = wanted.get((info.schedule_id or "").lower())
            if organizer is None or info.error is not None:
                continue
            intervals = busy.setdefault(organizer, [])
            for item in info.schedule_items or []:
                if _enum_value(item.status) not in _BUSY_STATUSES or not item.start or not item.end:
                    continue
                intervals.append(BusyInterval(_from_graph_time(item.start), _from_graph_time(item.end)))
            intervals.sort(key=lambda interval: interval.start)
        return busy

    async def subscribe_call_events(
        self,
        organizer_id: str,
        meeting: Meeting,
        notification_url: str,
        client_state: str,
        *,
        encryption_certificate: str | None = None,
        encryption_certificate_id: str | None = None,
    ) -> CallEventSubscription:
        """Subscribe to the meeting's call events (beta); idempotent for the same meeting.

        With ``encryption_certificate`` (base64 DER X.509, public key only) and its
        ``encryption_certificate_id`` the subscription asks for rich notifications
        (``includeResourceData``): the only kind that says which call event happened.
        Graph allows one subscription per app and meeting, so a retry that finds one
        (409) renews and returns the existing subscription instead of failing.
        """
        _sdk()
        from msgraph.generated.models.subscription import Subscription

        if bool(encryption_certificate) != bool(encryption_certificate_id):
            raise ValueError("encryption_certificate and encryption_certificate_id go together")
        resource = meeting_call_events_resource(meeting.join_url)
        expires = datetime.now(UTC) + MAX_SUBSCRIPTION_LIFETIME
        rich: dict[str, Any] = (
            {
                "include_resource_data": True,
                "encryption_certificate": encryption_certificate,
                "encryption_certificate_id": encryption_certificate_id,
            }
            if encryption_certificate
            else {}  # never None fields: kiota would write them as JSON nulls
        )
        body = Subscription(
            change_type="updated",
            notification_url=notification_url,
            lifecycle_notification_url=notification_url,
            resource=resource,
            expiration_date_time=expires,
            client_state=client_state,
            **rich,
        )
        subscriptions = self._client.subscriptions.with_url(f"{self._beta}/subscriptions")
        try:
            async with _graph_call("subscribe to call events"):
                created = await subscriptions.post(body)
        except PermanentGatewayError as exc:
            if exc.status != 409:
                raise
            existing = await self._find_subscription(resource)
            if existing is None:
                raise
            return await self.renew_subscription(existing, expires)
        return _subscription(created, resource)

    async def renew_subscription(self, subscription_id: str, expires_at: datetime) -> CallEventSubscription:
        """Move the expiry (capped at Graph's 3-day maximum from now)."""
        _sdk()
        from msgraph.generated.models.subscription import Subscription

        _require_aware(expires_at)
        body = Subscription(
            expiration_date_time=min(expires_at, datetime.now(UTC) + MAX_SUBSCRIPTION_LIFETIME)
        )
        item = self._client.subscriptions.by_subscription_id(subscription_id).with_url(
            f"{self._beta}/subscriptions/{subscription_id}"
        )
        async with _graph_call("renew subscription"):
            renewed = await item.patch(body)
        return _subscription(renewed, None)

    async def delete_subscription(self, subscription_id: str) -> None:
        """Delete a call-event subscription; one that is already gone (expired) is not an error."""
        _sdk()
        item = self._client.subscriptions.by_subscription_id(subscription_id).with_url(
            f"{self._beta}/subscriptions/{quote(subscription_id, safe='')}"
        )
        async with _graph_call("delete subscription", missing_ok=True):
            await item.delete()

    async def _find_subscription(self, resource: str) -> str | None:
        builder: Any = self._client.subscriptions.with_url(f"{self._beta}/subscriptions")
        for _page in range(20):  # an app has few live subscriptions; never page forever
            async with _graph_call("list subscriptions"):
                page = await builder.get()
            for sub in (page.value if page else None) or []:
                if (sub.resource or "").lstrip("/") == resource and sub.id:
                    return str(sub.id)
            next_link = page.odata_next_link if page else None
            if not next_link:
                return None
            builder = self._client.subscriptions.with_url(next_link)
        return None


def _subscription(sub: Any, resource: str | None) -> CallEventSubscription:
    if sub is None or not sub.id or sub.expiration_date_time is None:
        raise TransientGatewayError("Graph answered a subscription call without id or expiry")
    expires = sub.expiration_date_time
    return CallEventSubscription(
        subscription_id=sub.id,
        resource=sub.resource or resource or "",
        expires_at=expires if expires.tzinfo else expires.replace(tzinfo=UTC),
    )


def _graph_local(moment: datetime) -> str:
    """Graph's dateTimeTimeZone wants a wall-clock string; the zone travels separately."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _from_graph_time(value: Any) -> datetime:
    """A dateTimeTimeZone ("2026-01-05T09:00:00.0000000", "UTC") as an aware UTC datetime."""
    from zoneinfo import ZoneInfo

    text: str = value.date_time or ""
    head, _, fraction = text.partition(".")
    parsed = datetime.fromisoformat(head)
    if fraction:
        parsed = parsed.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    zone = (value.time_zone or "UTC").strip()
    tz = UTC if zone.upper() in {"UTC", "Z"} else ZoneInfo(zone)
    return parsed.replace(tzinfo=tz).astimezone(UTC)


# --- mail ---------------------------------------------------------------------------------


def _mail_body(message: MailMessage) -> Any:
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.file_attachment import FileAttachment
    from msgraph.generated.models.internet_message_header import InternetMessageHeader
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.message import Message
    from msgraph.generated.models.recipient import Recipient
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

    attachments: list[Any] = [
        FileAttachment(name=name, content_type=content_type, content_bytes=content, is_inline=False)
        for name, content_type, content in message.attachments
    ]
    mail = Message(
        subject=message.subject,
        # Graph's JSON message has one body. HTML it is: the text version would need a MIME send.
        body=ItemBody(content_type=BodyType.Html, content=message.html),
        to_recipients=[Recipient(email_address=EmailAddress(address=message.to))],
        attachments=attachments or None,
        internet_message_headers=[
            InternetMessageHeader(name=IDEMPOTENCY_HEADER, value=message.idempotency_key)
        ],
    )
    return SendMailPostRequestBody(message=mail, save_to_sent_items=False)


class GraphMailSender:
    """``MailSender`` on Graph ``sendMail`` from one service mailbox.

    sendMail is not idempotent; the caller de-duplicates. The idempotency key travels
    as the ``X-Idempotency-Key`` message header so duplicates stay visible downstream.
    """

    def __init__(self, client: GraphServiceClient, sender_mailbox: str) -> None:
        if not sender_mailbox:
            raise ValueError("GRAPH_SENDER_MAILBOX is not set")
        self._client = client
        self._sender = sender_mailbox

    async def send(self, message: MailMessage) -> None:
        _sdk()
        size = sum(len(content) for _, _, content in message.attachments)
        if size > MAX_ATTACHMENT_BYTES:
            raise PermanentGatewayError(
                f"mail attachments are {size} bytes; sendMail takes at most {MAX_ATTACHMENT_BYTES}",
                status=None,
                code="attachmentsTooLarge",
            )
        action = self._client.users.by_user_id(self._sender).send_mail
        async with _graph_call("sendMail"):
            await action.post(_mail_body(message))
