"""Call-event subscriptions and the webhook, end to end over loopback HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.graph import MAX_SUBSCRIPTION_LIFETIME
from adapters.graph_webhook import client_state_for, meeting_call_events_resource
from appointments.ports import CallEventSubscription, Meeting, PermanentGatewayError
from devhost.graph_emulator import Fault, GraphEmulator
from tests.integration.graph_conftest import (  # noqa: F401 - imported fixtures register with pytest
    ORGANIZER,
    WEBHOOK_SECRET,
    WebhookEndpoint,
    graph_fixture,
    graph_ports,
    graph_server_fixture,
    meeting_request,
    post_json,
    webhook_fixture,
)


def subscribe(
    graph: GraphEmulator, webhook: WebhookEndpoint, code: str = "K7Q2MX", *, look_first: bool = True
) -> tuple[Meeting, CallEventSubscription]:
    async def scenario() -> tuple[Meeting, CallEventSubscription]:
        async with graph_ports(graph.base_url) as ports:
            meeting = await ports.meetings.create_or_get(meeting_request(code))
            subscription = await ports.meetings.subscribe_call_events(
                ORGANIZER,
                meeting,
                webhook.notification_url(code),
                client_state_for(WEBHOOK_SECRET, code),
                look_first=look_first,
            )
            return meeting, subscription

    result: tuple[Meeting, CallEventSubscription] = asyncio.run(scenario())
    return result


def test_subscription_is_validated_by_our_endpoint_then_created_on_beta(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """Graph's handshake reaches the endpoint, which echoes the token; the subscription is per appointment."""
    before = datetime.now(UTC)
    meeting, subscription = subscribe(graph, webhook)

    assert webhook.validations, "the endpoint never saw the validation request"
    assert subscription.resource == meeting_call_events_resource(meeting.join_url)
    assert before + MAX_SUBSCRIPTION_LIFETIME - timedelta(minutes=1) < subscription.expires_at
    assert subscription.expires_at <= before + timedelta(days=3)
    [request] = graph.state.received("POST", r"/subscriptions$")
    assert request.path == "/beta/subscriptions"
    assert request.body["changeType"] == "updated"
    assert request.body["notificationUrl"] == webhook.url + "?appointment=K7Q2MX"
    assert request.body["clientState"] == client_state_for(WEBHOOK_SECRET, "K7Q2MX")
    assert request.body["resource"].startswith(
        "communications/onlineMeetings(joinWebUrl='http%3A%2F%2F127.0.0.1"
    )


def test_subscription_fails_when_the_endpoint_does_not_echo_the_token(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """Like Graph: no echo, no subscription (400), and that is permanent."""
    webhook.mode = "wrong-token"
    with pytest.raises(PermanentGatewayError) as caught:
        subscribe(graph, webhook)
    assert (caught.value.status, caught.value.code) == (400, "ValidationError")
    assert graph.state.subscriptions == {}


def test_subscription_fails_when_the_endpoint_is_too_slow(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """Graph waits 10 s for the echo (shortened here); a slower endpoint gets no subscription."""
    graph.state.validation_timeout = 0.3
    webhook.mode, webhook.slow_seconds = "slow", 1.0
    with pytest.raises(PermanentGatewayError, match="400 ValidationError"):
        subscribe(graph, webhook)


def test_subscribing_again_returns_the_existing_subscription(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """A retried subscribe finds the one it has (GET /subscriptions) and renews it: no second POST."""
    _, first = subscribe(graph, webhook)
    _, second = subscribe(graph, webhook)

    assert second.subscription_id == first.subscription_id
    assert len(graph.state.subscriptions) == 1
    assert [r.status for r in graph.state.received("POST", r"/subscriptions$")] == [201]
    assert [r.status for r in graph.state.received("PATCH", r"/subscriptions/")] == [200]


def test_a_first_attempt_creates_without_listing_every_subscription(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """GET /subscriptions has no filter: it lists all of the app's live subscriptions, so a first
    attempt (nothing can exist yet) goes straight to the POST."""
    for code in ("K7Q2MA", "K7Q2MB"):
        subscribe(graph, webhook, code, look_first=False)

    assert graph.state.received("GET", r"/subscriptions$") == []
    assert [r.status for r in graph.state.received("POST", r"/subscriptions$")] == [201, 201]


def test_a_refused_first_attempt_still_finds_the_existing_one(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """Without the lookup first, a refusal (here a rival's subscription and a 409) is still settled
    by listing: the existing subscription is renewed, never duplicated."""
    _, first = subscribe(graph, webhook)
    graph.state.add_fault(Fault(path=r"/subscriptions$", method="POST", status=409, code="Conflict"))
    _, second = subscribe(graph, webhook, look_first=False)

    assert second.subscription_id == first.subscription_id
    assert len(graph.state.subscriptions) == 1


class LaggingListing(dict[str, dict[str, Any]]):
    """Graph's subscriptions, whose first listing misses one that a rival creates just then."""

    listings = 0

    def values(self) -> Any:
        self.listings += 1
        return [] if self.listings == 1 else super().values()


def test_a_duplicate_refused_with_any_status_is_still_recognised(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """A rival subscribed between our lookup and our POST, and Graph said 403: the next lookup finds it."""
    _, first = subscribe(graph, webhook)
    original = graph.state.subscriptions
    graph.state.subscriptions = LaggingListing(original)
    graph.state.add_fault(Fault(path=r"/subscriptions$", method="POST", status=403, code="Forbidden"))
    try:
        _, second = subscribe(graph, webhook)
    finally:
        graph.state.subscriptions = original

    assert second.subscription_id == first.subscription_id
    assert [r.status for r in graph.state.received("POST", r"/subscriptions$")] == [201, 403]


def test_renewal_is_capped_at_three_days(graph: GraphEmulator, webhook: WebhookEndpoint) -> None:
    """Asking for a week gets Graph's maximum instead of a 400."""
    _, subscription = subscribe(graph, webhook)

    async def renew() -> CallEventSubscription:
        async with graph_ports(graph.base_url) as ports:
            return await ports.meetings.renew_subscription(
                subscription.subscription_id, datetime.now(UTC) + timedelta(days=7)
            )

    renewed = asyncio.run(renew())
    assert renewed.subscription_id == subscription.subscription_id
    assert renewed.expires_at <= datetime.now(UTC) + timedelta(days=3)
    assert graph.state.received("PATCH", r"/subscriptions/")[0].path.startswith("/beta/")


def test_basic_notifications_carry_no_event_details(graph: GraphEmulator, webhook: WebhookEndpoint) -> None:
    """Like Graph: without includeResourceData a notification cannot say the call ended."""
    meeting, subscription = subscribe(graph, webhook)

    assert graph.start_meeting(meeting.meeting_id) == [202]
    assert graph.end_meeting(meeting.meeting_id) == [202]

    started, ended = webhook.batches
    for batch in (started, ended):
        assert (batch.call_ended, batch.ignored, batch.forged) == ([], 1, [])
    [request] = graph.state.received("POST", r"/subscriptions$")
    assert "includeResourceData" not in request.body
    assert "encryptionCertificate" not in request.body
    [item] = graph.state.notifications[-1]["value"]
    assert item["subscriptionId"] == subscription.subscription_id
    assert "eventType" not in item["resourceData"] and "encryptedContent" not in item


def test_forged_notification_is_answered_202_but_not_believed(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """A POST with a guessed clientState is reported as forged and ends nothing."""
    _, subscription = subscribe(graph, webhook)
    forged = {
        "value": [
            {
                "subscriptionId": subscription.subscription_id,
                "changeType": "updated",
                "resource": subscription.resource,
                "clientState": "guessed",
                "resourceData": {"eventType": "callEnded", "id": "x"},
            }
        ]
    }

    assert post_json(webhook.notification_url("K7Q2MX"), forged) == 202

    [batch] = webhook.batches
    assert batch.call_ended == []
    assert [f.reason for f in batch.forged] == ["clientState mismatch"]


def test_one_appointments_client_state_cannot_end_another(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """The clientState of K7Q2MX sent to the URL of AB12CD is a forgery there."""
    _, subscription = subscribe(graph, webhook, "K7Q2MX")
    leaked = {
        "value": [
            {
                "subscriptionId": subscription.subscription_id,
                "changeType": "updated",
                "resource": subscription.resource,
                "clientState": client_state_for(WEBHOOK_SECRET, "K7Q2MX"),
                "resourceData": {"eventType": "callEnded", "id": "x"},
            }
        ]
    }

    assert post_json(webhook.notification_url("AB12CD"), leaked) == 202

    [batch] = webhook.batches
    assert batch.call_ended == []
    assert len(batch.forged) == 1


def test_a_subscription_beyond_the_first_page_is_found(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """Graph pages GET /subscriptions (``@odata.nextLink``): with 250 other meetings' subscriptions
    live, a retried subscribe still finds its own on the third page and creates no second one."""
    _, first = subscribe(graph, webhook)
    mine = graph.state.subscriptions.pop(first.subscription_id)
    for n in range(250):
        graph.state.subscriptions[f"other-{n}"] = {
            **mine,
            "id": f"other-{n}",
            "resource": f"{mine['resource']}-{n}",
        }
    graph.state.subscriptions[mine["id"]] = mine  # listed last

    async def listed() -> list[CallEventSubscription]:
        async with graph_ports(graph.base_url) as ports:
            return await ports.meetings.list_subscriptions()

    before = len(graph.state.received("GET", r"/subscriptions$"))
    assert len(asyncio.run(listed())) == 251
    assert len(graph.state.received("GET", r"/subscriptions$")) - before == 3  # pages of 100, 100, 51
    _, second = subscribe(graph, webhook)
    assert second.subscription_id == first.subscription_id
    assert [r.status for r in graph.state.received("POST", r"/subscriptions$")] == [201]
