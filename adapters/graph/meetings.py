"""Teams online meetings and their call-event subscriptions behind the ``MeetingGateway`` port.

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
* Its costs: beta (no SLA; shapes may change) and at most 3 days per subscription. The
  ``renew_graph_subscriptions`` timer renews what a meeting still needs, and lifecycle
  notifications (reauthorize, removed, missed) are acted on
  (``appointments.subscriptions``). The orchestration does not depend on it: the expert's
  End and the end + grace timer still end the appointment when a notification never comes.
* Microsoft documents that *basic* notifications for this resource carry no event details
  and recommends rich (encrypted) ones. Given ``encryption_certificate`` (base64 DER, public
  key only) and ``encryption_certificate_id``, the subscription asks for rich notifications
  (``includeResourceData``); ``adapters.notification_crypto`` decrypts them.

Duplicates: Graph allows one subscription per app and meeting but does not document the
status it refuses a second one with. So the gateway looks for an existing subscription on
the resource (GET /subscriptions lists the app's own) before it creates one, and again
after any refusal of the create; found, it is renewed and returned.

Status codes: createOrGet answers 201 when it created the meeting and 200 when the
externalId already existed. The SDK's ``post`` returns only the model, so that call asks
kiota for the native ``httpx.Response`` (``ResponseHandlerOption(NativeResponseHandler())``)
and reads ``status_code``.

Answers read natively: for createOrGet, the settings PATCH and every subscription call the
request is built and sent by msgraph-sdk as always, but the answer
is taken as the native response and only the few fields used are read from its JSON (``_Answer``).
Deserialising an ``onlineMeeting`` or ``subscription`` into the SDK's model runs msgraph's
generated ``Entity.get_field_deserializers``, which executes over a thousand import statements
for its discriminator on every object: under load that was 7% of the app's CPU, for fields
never read (a PATCH's answer was not read at all). Failures map as the model path does
(``raise_for_native``: the same status, Graph error code and Retry-After).

createOrGet takes only subject, times, externalId, participants and chatInfo; the lobby,
recording and presenter settings are applied with a PATCH afterwards, and only when the
meeting Graph returned differs from what the appointment needs (a retry after a crash
between the two calls therefore still ends with the right settings).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from adapters.graph.client import load_sdk
from adapters.graph.errors import graph_call, raise_for_native
from adapters.graph.schedule import CACHE_SECONDS, ScheduleReader
from adapters.graph_webhook import meeting_call_events_resource
from appointments.ports import (
    BusyInterval,
    CallEventSubscription,
    Meeting,
    MeetingRequest,
    PermanentGatewayError,
    TransientGatewayError,
)

if TYPE_CHECKING:  # pragma: no cover - names for annotations only
    from msgraph.graph_service_client import GraphServiceClient

# meetingCallEvents subscriptions last at most 3 days; stay a little under so clock skew
# between us and Graph never makes the request invalid.
MAX_SUBSCRIPTION_LIFETIME = timedelta(days=3) - timedelta(minutes=10)


def meeting_settings_patch(subject: str | None, start: datetime | None, end: datetime | None) -> Any:
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


class _Answer:
    """The JSON object of a native Graph answer, read by the camelCase names Graph sends."""

    def __init__(self, operation: str, response: Any = None, *, body: Any = None) -> None:
        if response is not None:
            try:
                body = response.json()
            except ValueError:
                body = None
        if not isinstance(body, dict):
            status = response.status_code if response is not None else "an item"
            raise TransientGatewayError(f"Graph {operation} answered {status} without a JSON object")
        self.body: dict[str, Any] = body

    def text(self, *path: str) -> str | None:
        value: Any = self.body
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        return value if isinstance(value, str) else None

    def flag(self, *path: str) -> bool | None:
        value: Any = self.body
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        return value if isinstance(value, bool) else None

    def instant(self, name: str) -> datetime | None:
        """A Graph timestamp (``2030-03-04T10:30:00Z``, or 7 fraction digits, or naive = UTC)."""
        value = self.text(name)
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def native() -> Any:
    """Request options that hand back the native ``httpx.Response`` instead of a model."""
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from kiota_abstractions.native_response_handler import NativeResponseHandler
    from kiota_http.middleware.options import ResponseHandlerOption

    config: RequestConfiguration[Any] = RequestConfiguration(
        options=[ResponseHandlerOption(NativeResponseHandler())]
    )
    return config


def _needs_patch(meeting: _Answer, request: MeetingRequest) -> bool:
    return not (
        meeting.text("lobbyBypassSettings", "scope") == "organizer"
        and meeting.flag("lobbyBypassSettings", "isDialInBypassEnabled") is not True
        and meeting.flag("recordAutomatically") is True
        and meeting.text("allowedPresenters") == "organizer"
        and meeting.text("subject") == request.subject
        and meeting.instant("startDateTime") == request.start
        and meeting.instant("endDateTime") == request.end
    )


def require_aware(*values: datetime) -> None:
    for value in values:
        if value.tzinfo is None:
            raise ValueError("meeting times must be timezone-aware (UTC)")


class GraphMeetingGateway:
    """``MeetingGateway`` on Microsoft Graph; one instance per process is enough."""

    def __init__(
        self,
        client: GraphServiceClient,
        *,
        beta_base_url: str | None = None,
        schedule_cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self._client = client
        base = client.request_adapter.base_url.rstrip("/")
        if beta_base_url is None:
            if not base.endswith("/v1.0"):
                raise ValueError("cannot derive the Graph beta URL from " + base)
            beta_base_url = base[: -len("/v1.0")] + "/beta"
        self._beta = beta_base_url.rstrip("/")
        self._schedule = ScheduleReader(client, cache_seconds=schedule_cache_seconds)

    async def create_or_get(self, request: MeetingRequest) -> Meeting:
        load_sdk()
        from msgraph.generated.users.item.online_meetings.create_or_get import (
            create_or_get_post_request_body as create_or_get,
        )

        require_aware(request.start, request.end)
        body = create_or_get.CreateOrGetPostRequestBody(
            external_id=request.booking_code,
            subject=request.subject,
            start_date_time=request.start,
            end_date_time=request.end,
        )
        # The native response is the only place the SDK exposes 201 (created) vs 200 (existed).
        meetings = self._client.users.by_user_id(request.organizer_id).online_meetings
        async with graph_call("createOrGet"):
            response: Any = await meetings.create_or_get.post(body, request_configuration=native())
        raise_for_native("createOrGet", response)
        meeting = _Answer("createOrGet", response)
        meeting_id, join_url = meeting.text("id"), meeting.text("joinWebUrl")
        if not meeting_id or not join_url:
            raise TransientGatewayError("Graph createOrGet answered without a meeting id or join URL")
        if _needs_patch(meeting, request):
            patch = meeting_settings_patch(request.subject, request.start, request.end)
            async with graph_call("update meeting settings"):
                patched: Any = await meetings.by_online_meeting_id(meeting_id).patch(
                    patch, request_configuration=native()
                )
            raise_for_native("update meeting settings", patched)
        return Meeting(meeting_id=meeting_id, join_url=join_url, created=response.status_code == 201)

    async def update_times(self, organizer_id: str, meeting_id: str, start: datetime, end: datetime) -> None:
        load_sdk()
        from msgraph.generated.models.online_meeting import OnlineMeeting

        require_aware(start, end)
        # Graph refuses a PATCH with only one of the two times, so both always travel together.
        body = OnlineMeeting(start_date_time=start, end_date_time=end)
        item = self._client.users.by_user_id(organizer_id).online_meetings.by_online_meeting_id(meeting_id)
        async with graph_call("update meeting times"):
            response: Any = await item.patch(body, request_configuration=native())
        raise_for_native("update meeting times", response)

    async def delete(self, organizer_id: str, meeting_id: str) -> None:
        load_sdk()
        item = self._client.users.by_user_id(organizer_id).online_meetings.by_online_meeting_id(meeting_id)
        async with graph_call("delete meeting", missing_ok=True):
            await item.delete()

    async def get_schedule(
        self, organizer_ids: list[str], start: datetime, end: datetime
    ) -> dict[str, list[BusyInterval]]:
        """Busy intervals per organizer; see ``ScheduleReader.busy`` (batched, cached, unknown ≠ free)."""
        return await self._schedule.busy(organizer_ids, start, end)

    # --- call-event subscriptions (beta) ------------------------------------------------------

    async def subscribe_call_events(
        self,
        organizer_id: str,
        meeting: Meeting,
        notification_url: str,
        client_state: str,
        *,
        encryption_certificate: str | None = None,
        encryption_certificate_id: str | None = None,
        look_first: bool = True,
    ) -> CallEventSubscription:
        """Subscribe to the meeting's call events (beta); idempotent for the same meeting.

        Graph has no filter on ``GET /subscriptions``: finding one means listing every live
        subscription of the app, which grows with the meetings in progress. So the list is read
        before the create only when an earlier attempt may have created it (``look_first``),
        and after any refusal.

        With ``encryption_certificate`` (base64 DER X.509, public key only) and its
        ``encryption_certificate_id`` the subscription asks for rich notifications
        (``includeResourceData``): the only kind that says which call event happened.
        An existing subscription on the resource is renewed and returned (see the module).
        """
        load_sdk()
        from msgraph.generated.models.subscription import Subscription

        if bool(encryption_certificate) != bool(encryption_certificate_id):
            raise ValueError("encryption_certificate and encryption_certificate_id go together")
        resource = meeting_call_events_resource(meeting.join_url)
        expires = datetime.now(UTC) + MAX_SUBSCRIPTION_LIFETIME
        if look_first and (existing := await self._find_subscription(resource)) is not None:
            return await self.renew_subscription(existing, expires)
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
        # The transport resends it only after a 429, which Graph answers before acting on it
        # (``BoundedRetryHandler``); a 503 or a lost answer goes back to the caller, whose next
        # attempt looks first (``look_first``), and a duplicate's refusal is settled below.
        try:
            async with graph_call("subscribe to call events"):
                response: Any = await subscriptions.post(body, request_configuration=native())
            raise_for_native("subscribe to call events", response)
        except PermanentGatewayError:
            existing = await self._find_subscription(resource)
            if existing is None:
                raise
            return await self.renew_subscription(existing, expires)
        return _native_subscription(_Answer("subscribe to call events", response), resource)

    async def renew_subscription(self, subscription_id: str, expires_at: datetime) -> CallEventSubscription:
        """Move the expiry (capped at Graph's 3-day maximum from now)."""
        load_sdk()
        from msgraph.generated.models.subscription import Subscription

        require_aware(expires_at)
        body = Subscription(
            expiration_date_time=min(expires_at, datetime.now(UTC) + MAX_SUBSCRIPTION_LIFETIME)
        )
        async with graph_call("renew subscription"):
            renewed: Any = await self._item(subscription_id).patch(body, request_configuration=native())
        raise_for_native("renew subscription", renewed)
        return _native_subscription(_Answer("renew subscription", renewed), None)

    async def reauthorize_subscription(self, subscription_id: str) -> None:
        """Answer ``reauthorizationRequired``: POST /subscriptions/{id}/reauthorize (204).

        https://learn.microsoft.com/en-us/graph/api/subscription-reauthorize
        """
        load_sdk()
        async with graph_call("reauthorize subscription"):
            await (
                self._item(subscription_id)
                .reauthorize.with_url(
                    f"{self._beta}/subscriptions/{quote(subscription_id, safe='')}/reauthorize"
                )
                .post()
            )

    async def get_subscription(self, subscription_id: str) -> CallEventSubscription | None:
        """The subscription as Graph has it, or None when Graph no longer has it."""
        load_sdk()
        async with graph_call("get subscription"):
            found: Any = await self._item(subscription_id).get(request_configuration=native())
        if found.status_code == 404:
            return None
        raise_for_native("get subscription", found)
        return _native_subscription(_Answer("get subscription", found), None)

    async def list_subscriptions(self) -> list[CallEventSubscription]:
        """The app's live subscriptions (app-only GET /subscriptions lists the app's own).

        Read natively (see the module): the list grows with the meetings in progress, and a model
        per subscription made a retried create cost milliseconds per live meeting."""
        load_sdk()
        result: list[CallEventSubscription] = []
        builder: Any = self._client.subscriptions.with_url(f"{self._beta}/subscriptions")
        for _page in range(50):  # bounded: never page forever
            async with graph_call("list subscriptions"):
                response: Any = await builder.get(request_configuration=native())
            raise_for_native("list subscriptions", response)
            page = _Answer("list subscriptions", response)
            items = page.body.get("value")
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
                    result.append(_native_subscription(_Answer("list subscriptions", body=item), None))
            next_link = page.text("@odata.nextLink")
            if not next_link:
                break
            builder = self._client.subscriptions.with_url(next_link)
        return result

    async def delete_subscription(self, subscription_id: str) -> None:
        """Delete a call-event subscription; one that is already gone (expired) is not an error."""
        load_sdk()
        async with graph_call("delete subscription", missing_ok=True):
            await self._item(subscription_id).delete()

    def _item(self, subscription_id: str) -> Any:
        return self._client.subscriptions.by_subscription_id(subscription_id).with_url(
            f"{self._beta}/subscriptions/{quote(subscription_id, safe='')}"
        )

    async def _find_subscription(self, resource: str) -> str | None:
        for sub in await self.list_subscriptions():
            if sub.resource.lstrip("/") == resource:
                return sub.subscription_id
        return None


def _native_subscription(sub: _Answer, resource: str | None) -> CallEventSubscription:
    subscription_id, expires_at = sub.text("id"), sub.instant("expirationDateTime")
    if not subscription_id or expires_at is None:
        raise TransientGatewayError("Graph answered a subscription call without id or expiry")
    return CallEventSubscription(
        subscription_id=subscription_id,
        resource=sub.text("resource") or resource or "",
        expires_at=expires_at,
        notification_url=sub.text("notificationUrl") or "",
    )
