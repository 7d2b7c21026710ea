"""The emulator answers like Graph: msgraph-sdk's own models read every answer with nothing left
over, and it refuses what Graph refuses, with Graph's error shapes and codes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from adapters.graph_webhook import client_state_for
from adapters.notification_crypto import NotificationCertificate, ValidationTokenVerifier
from appointments.settings import Settings
from devhost.graph_emulator import APP_ID, TENANT_ID, Fault, GraphEmulator
from devhost.graph_emulator.crypto import throwaway_certificate
from devhost.graph_emulator.state import DEV_TOKEN
from tests.integration.graph_conftest import (  # noqa: F401 - imported fixtures register with pytest
    ORGANIZER,
    SENDER,
    WEBHOOK_SECRET,
    WebhookEndpoint,
    graph_fixture,
    graph_server_fixture,
    webhook_fixture,
)

START = datetime(2030, 3, 4, 10, 30, tzinfo=UTC)
# changeNotification's properties in Graph's schema (v1.0 and beta), for the one payload
# msgraph-sdk has no model of: https://learn.microsoft.com/en-us/graph/api/resources/changenotification
CHANGE_NOTIFICATION = {
    "changeType",
    "clientState",
    "encryptedContent",
    "id",
    "lifecycleEvent",
    "resource",
    "resourceData",
    "subscriptionExpirationDateTime",
    "subscriptionId",
    "tenantId",
}


def graph_http(graph: GraphEmulator) -> httpx.Client:
    return httpx.Client(base_url=graph.origin, headers={"Authorization": f"Bearer {DEV_TOKEN}"}, timeout=30)


def parse(model: Any, payload: Any) -> Any:
    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory

    node = JsonParseNodeFactory().get_root_parse_node("application/json", json.dumps(payload).encode())
    return node.get_object_value(model)


def stray(obj: Any, path: str = "$") -> list[str]:
    """Every property that landed in ``additional_data`` and is not an OData annotation."""
    if isinstance(obj, list):
        return [p for i, item in enumerate(obj) for p in stray(item, f"{path}[{i}]")]
    if not dataclasses.is_dataclass(obj) or not hasattr(obj, "additional_data"):
        return []
    found = [f"{path}.{k}" for k in obj.additional_data if not k.startswith("@odata.")]
    for f in dataclasses.fields(obj):
        if f.name not in ("backing_store", "additional_data"):
            found += stray(getattr(obj, f.name), f"{path}.{f.name}")
    return found


def models() -> dict[str, Any]:
    from msgraph.generated.models.call_event import CallEvent
    from msgraph.generated.models.message_collection_response import MessageCollectionResponse
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.online_meeting import OnlineMeeting
    from msgraph.generated.models.subscription import Subscription
    from msgraph.generated.models.subscription_collection_response import SubscriptionCollectionResponse
    from msgraph.generated.users.item.calendar.get_schedule.get_schedule_post_response import (
        GetSchedulePostResponse,
    )

    return {
        "meeting": OnlineMeeting,
        "schedule": GetSchedulePostResponse,
        "subscription": Subscription,
        "subscriptions": SubscriptionCollectionResponse,
        "messages": MessageCollectionResponse,
        "error": ODataError,
        "callEvent": CallEvent,
    }


def test_every_emulator_answer_reads_into_msgraph_models_with_nothing_left_over(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """createOrGet, GET/PATCH, getSchedule, subscriptions, Sent Items, errors and a callEvent: schema only."""
    cert = NotificationCertificate.load(throwaway_certificate(), "fidelity")
    m = models()
    users = f"/v1.0/users/{ORGANIZER}"
    graph.state.set_busy(ORGANIZER, [{"start": "2030-03-04T08:00:00Z", "end": "2030-03-04T09:00:00Z"}])
    answers: list[tuple[str, Any, Any]] = []
    with graph_http(graph) as http:
        body = {
            "externalId": "FIDEL1",
            "subject": "s",
            "startDateTime": START.isoformat(),
            "endDateTime": (START + timedelta(minutes=30)).isoformat(),
        }
        created = http.post(f"{users}/onlineMeetings/createOrGet", json=body)
        assert created.status_code == 201
        meeting_id = created.json()["id"]
        answers += [
            ("createOrGet", m["meeting"], created.json()),
            (
                "createOrGet again",
                m["meeting"],
                http.post(f"{users}/onlineMeetings/createOrGet", json=body).json(),
            ),
            ("GET meeting", m["meeting"], http.get(f"{users}/onlineMeetings/{meeting_id}").json()),
            (
                "PATCH meeting",
                m["meeting"],
                http.patch(f"{users}/onlineMeetings/{meeting_id}", json={"recordAutomatically": True}).json(),
            ),
        ]
        schedule = http.post(
            f"{users}/calendar/getSchedule",
            json={
                "schedules": [ORGANIZER, "nobody@elsewhere.example"],
                "startTime": {"dateTime": "2030-03-04T00:00:00", "timeZone": "UTC"},
                "endTime": {"dateTime": "2030-03-05T00:00:00", "timeZone": "UTC"},
                "availabilityViewInterval": 15,
            },
        ).json()
        assert schedule["value"][1]["error"]["responseCode"]  # unknown mailbox: an error item
        answers.append(("getSchedule", m["schedule"], schedule))
        join_url = created.json()["joinWebUrl"]
        from adapters.graph_webhook import meeting_call_events_resource

        sub = http.post(
            "/beta/subscriptions",
            json={
                "changeType": "updated",
                "notificationUrl": webhook.notification_url("FIDEL1"),
                "lifecycleNotificationUrl": webhook.notification_url("FIDEL1"),
                "resource": meeting_call_events_resource(join_url),
                "expirationDateTime": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
                "clientState": client_state_for(WEBHOOK_SECRET, "FIDEL1"),
                "includeResourceData": True,
                "encryptionCertificate": cert.public_certificate,
                "encryptionCertificateId": cert.certificate_id,
            },
        )
        assert sub.status_code == 201, sub.text
        sub_id = sub.json()["id"]
        renewed = http.patch(
            f"/beta/subscriptions/{sub_id}",
            json={"expirationDateTime": (datetime.now(UTC) + timedelta(days=2)).isoformat()},
        )
        answers += [
            ("POST subscription", m["subscription"], sub.json()),
            ("GET subscription", m["subscription"], http.get(f"/beta/subscriptions/{sub_id}").json()),
            ("PATCH subscription", m["subscription"], renewed.json()),
            ("list subscriptions", m["subscriptions"], http.get("/beta/subscriptions").json()),
        ]
        mail = {
            "message": {
                "subject": "s",
                "body": {"contentType": "html", "content": "<p>x</p>"},
                "toRecipients": [{"emailAddress": {"address": ORGANIZER}}],
                "internetMessageId": "<fidelity@pankki.example>",
            }
        }
        assert http.post(f"/v1.0/users/{SENDER}/sendMail", json=mail).status_code == 202
        sent = http.get(
            f"/v1.0/users/{SENDER}/mailFolders/sentitems/messages",
            params={"$filter": "internetMessageId eq '<fidelity@pankki.example>'"},
        ).json()
        assert [x["internetMessageId"] for x in sent["value"]] == ["<fidelity@pankki.example>"]
        answers.append(("Sent Items", m["messages"], sent))
        for name, response in [
            ("404", http.get(f"{users}/onlineMeetings/nope")),
            ("400", http.post(f"{users}/onlineMeetings/createOrGet", json={"subject": "no id"})),
            ("401", httpx.get(f"{graph.origin}/v1.0/subscriptions", headers={"Authorization": "Bearer x"})),
        ]:
            assert response.status_code == int(name)
            answers.append((f"error {name}", m["error"], response.json()))
    graph.end_meeting(meeting_id)
    [payload] = [n for n in graph.state.notifications if n["value"][0].get("encryptedContent")]
    item = payload["value"][0]
    assert set(item) <= CHANGE_NOTIFICATION, set(item) - CHANGE_NOTIFICATION
    answers.append(("callEvent", m["callEvent"], cert.decrypt(item["encryptedContent"])))

    leftovers = {name: stray(parse(model, data)) for name, model, data in answers}
    assert {name: found for name, found in leftovers.items() if found} == {}


def send(graph: GraphEmulator, method: str, path: str, body: Any = None) -> httpx.Response:
    with graph_http(graph) as http:
        return http.request(method, path, json=body)


def meeting_body(**times: str) -> dict[str, Any]:
    return {"externalId": "REFUSE1", "subject": "s", **times}


def create_meeting(graph: GraphEmulator) -> dict[str, Any]:
    body = meeting_body(startDateTime="2030-03-04T10:00:00Z", endDateTime="2030-03-04T11:00:00Z")
    return dict(send(graph, "POST", f"/v1.0/users/{ORGANIZER}/onlineMeetings/createOrGet", body).json())


SCHEDULE_DAY = {
    "startTime": {"dateTime": "2030-03-04T00:00:00", "timeZone": "UTC"},
    "endTime": {"dateTime": "2030-03-05T00:00:00", "timeZone": "UTC"},
}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        pytest.param(
            "POST",
            f"/v1.0/users/{ORGANIZER}/onlineMeetings/createOrGet",
            meeting_body(startDateTime="2030-03-04T11:00:00Z", endDateTime="2030-03-04T10:00:00Z"),
            400,
            "BadRequest",
            id="createOrGet-end-before-start",
        ),
        pytest.param(
            "POST",
            f"/v1.0/users/{ORGANIZER}/onlineMeetings/createOrGet",
            meeting_body(endDateTime="2030-03-04T10:00:00Z"),
            400,
            "BadRequest",
            id="createOrGet-end-without-start",
        ),
        pytest.param(
            "POST",
            f"/v1.0/users/{ORGANIZER}/calendar/getSchedule",
            {"schedules": [f"u{i}@pankki.example" for i in range(21)], **SCHEDULE_DAY},
            400,
            "ErrorMailboxDataArrayTooBig",
            id="getSchedule-21-schedules",
        ),
        pytest.param(
            "POST",
            f"/v1.0/users/{ORGANIZER}/calendar/getSchedule",
            {
                "schedules": [ORGANIZER],
                "startTime": {"dateTime": "2030-03-01T00:00:00", "timeZone": "UTC"},
                "endTime": {"dateTime": "2030-05-02T00:00:00", "timeZone": "UTC"},
            },
            400,
            "ErrorTimeIntervalTooBig",
            id="getSchedule-62-days",
        ),
        pytest.param(
            "POST",
            f"/v1.0/users/{ORGANIZER}/calendar/getSchedule",
            {"schedules": [ORGANIZER], "availabilityViewInterval": 2000, **SCHEDULE_DAY},
            400,
            "ErrorInvalidMergedFreeBusyInterval",
            id="getSchedule-interval-2000",
        ),
        pytest.param(
            "POST",
            f"/v1.0/users/{SENDER}/sendMail",
            {"message": {"subject": "s", "toRecipients": [{"emailAddress": {"address": "not an address"}}]}},
            400,
            "ErrorInvalidRecipients",
            id="sendMail-invalid-recipient",
        ),
        pytest.param(
            "POST",
            "/v1.0/users/stranger@elsewhere.example/sendMail",
            {"message": {"subject": "s", "toRecipients": [{"emailAddress": {"address": ORGANIZER}}]}},
            404,
            "ErrorInvalidUser",
            id="sendMail-unknown-sender",
        ),
        pytest.param(
            "POST",
            f"/v1.0/users/{SENDER}/sendMail",
            {
                "message": {
                    "subject": "s",
                    "toRecipients": [{"emailAddress": {"address": ORGANIZER}}],
                    "attachments": [
                        {"@odata.type": "#microsoft.graph.fileAttachment", "contentBytes": "A" * 6_000_000}
                    ],
                }
            },
            413,
            "ErrorMessageSizeExceeded",
            id="sendMail-6-MiB",
        ),
    ],
)
def test_the_emulator_refuses_what_graph_refuses(
    graph: GraphEmulator, method: str, path: str, body: Any, status: int, code: str
) -> None:
    """Graph's status and error code in Graph's envelope, and nothing changed."""
    response = send(graph, method, path, body)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert set(response.json()["error"]) == {"code", "message", "innerError"}
    assert graph.state.meetings == {} and graph.state.mail == []


def test_a_patch_with_a_start_but_no_end_is_refused(graph: GraphEmulator) -> None:
    """Graph updates a meeting's times together or not at all."""
    created = create_meeting(graph)
    response = send(
        graph,
        "PATCH",
        f"/v1.0/users/{ORGANIZER}/onlineMeetings/{created['id']}",
        {"startDateTime": "2030-03-04T12:00:00Z"},
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, "BadRequest")
    assert graph.state.meetings[created["id"]]["startDateTime"].startswith("2030-03-04T10:00:00")


def test_only_the_dev_token_passes(graph: GraphEmulator) -> None:
    """Any other bearer token is 401 InvalidAuthenticationToken, as Graph answers a foreign token."""
    r = httpx.get(f"{graph.origin}/v1.0/subscriptions", headers={"Authorization": "Bearer anything"})
    assert (r.status_code, r.json()["error"]["code"]) == (401, "InvalidAuthenticationToken")
    with graph_http(graph) as http:
        assert http.get("/v1.0/subscriptions").status_code == 200


def test_a_fifth_concurrent_request_to_one_mailbox_is_throttled(graph: GraphEmulator) -> None:
    """Outlook's 4 concurrent requests per mailbox: the fifth gets 429 ApplicationThrottled."""
    graph.state.add_fault(Fault(path=r"/calendar/getSchedule$", delay=0.5, after=True, count=5))
    body = {"schedules": [ORGANIZER], **SCHEDULE_DAY}

    async def five() -> list[int]:
        async with httpx.AsyncClient(
            base_url=graph.origin, headers={"Authorization": f"Bearer {DEV_TOKEN}"}
        ) as c:
            answers = await asyncio.gather(
                *(c.post(f"/v1.0/users/{ORGANIZER}/calendar/getSchedule", json=body) for _ in range(5))
            )
            return sorted(r.status_code for r in answers)

    assert asyncio.run(five()) == [200, 200, 200, 200, 429]


def test_both_endpoints_are_validated_even_when_they_are_one(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """notificationUrl and lifecycleNotificationUrl each get a validation request."""
    created = create_meeting(graph)
    from adapters.graph_webhook import meeting_call_events_resource

    url = webhook.notification_url("REFUSE1")
    r = send(
        graph,
        "POST",
        "/beta/subscriptions",
        {
            "changeType": "updated",
            "notificationUrl": url,
            "lifecycleNotificationUrl": url,
            "resource": meeting_call_events_resource(created["joinWebUrl"]),
            "expirationDateTime": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
            "clientState": "x",
        },
    )
    assert r.status_code == 201, r.text
    assert len(webhook.validations) == 2


def test_notifications_get_three_seconds_and_are_retried(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """An endpoint that answers 500 gets the same notification again; a 2xx stops the retries."""
    from tests.integration.test_graph_subscriptions import subscribe

    meeting, subscription = subscribe(graph, webhook)
    graph.state.notification_retry_delay = 0.05
    assert graph.state.notification_timeout == 3.0
    original = webhook.handle
    answers = iter([500, 500])

    def flaky(query: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        status = next(answers, None)
        return (status, "text/plain", b"") if status else original(query, body)

    webhook.handle = flaky  # type: ignore[method-assign]
    assert graph.end_meeting(meeting.meeting_id) == [202]
    assert [d["status"] for d in graph.state.deliveries] == [500, 500, 202]
    del subscription


def test_lifecycle_notifications_reach_the_endpoint_and_removed_means_gone(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """reauthorizationRequired and subscriptionRemoved arrive with the clientState; removed deletes it."""
    from tests.integration.test_graph_subscriptions import subscribe

    _, subscription = subscribe(graph, webhook)
    assert graph.lifecycle(subscription.subscription_id, "reauthorizationRequired") == 202
    assert graph.lifecycle(subscription.subscription_id, "subscriptionRemoved") == 202
    events = [(n.event, n.subscription_id) for b in webhook.batches for n in b.lifecycle]
    assert events == [
        ("reauthorizationRequired", subscription.subscription_id),
        ("subscriptionRemoved", subscription.subscription_id),
    ]
    assert graph.state.subscriptions == {}
    assert all(not b.forged for b in webhook.batches)


def test_rich_notifications_carry_validation_tokens_that_the_app_accepts(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """The emulator signs validationTokens with its test key set; the app's verifier accepts them."""
    cert = NotificationCertificate.load(throwaway_certificate(), "fidelity")
    from tests.integration.test_graph_rich_notifications import subscribe_rich

    meeting, _ = subscribe_rich(graph, webhook, cert)
    graph.end_meeting(meeting.meeting_id)
    [payload] = graph.state.notifications
    verify = ValidationTokenVerifier.from_settings(
        Settings(
            graph_client_id=APP_ID,
            graph_tenant_id=TENANT_ID,
            graph_notification_jwks=graph.signing.jwks_json(),
        )
    )
    verify(payload["validationTokens"])  # raises on any failed check
    foreign = ValidationTokenVerifier.from_settings(
        Settings(
            graph_client_id="someone-else",
            graph_tenant_id=TENANT_ID,
            graph_notification_jwks=graph.signing.jwks_json(),
        )
    )
    with pytest.raises(ValueError, match="wrong audience"):
        foreign(payload["validationTokens"])
