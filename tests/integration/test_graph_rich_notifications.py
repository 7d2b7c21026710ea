"""Rich (encrypted) call-event subscriptions against the emulator, over loopback HTTP.

The gateway asks for includeResourceData with the app's public certificate; the emulator
encrypts each callEvent for it exactly as Graph does; the endpoint decrypts with the
private key. Tampered or misaddressed content is forged, never believed.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import tests.integration.graph_conftest as graph_conftest
from adapters.graph_webhook import client_state_for, meeting_call_events_resource, parse_call_ended
from adapters.notification_crypto import NotificationCertificate
from appointments.ports import CallEventSubscription, Meeting, PermanentGatewayError
from devhost.graph_emulator import GraphEmulator
from devhost.graph_emulator.crypto import throwaway_certificate
from devhost.graph_emulator.state import DEV_TOKEN
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

CERT_ID = "integration-notifications"


@pytest.fixture(scope="module", name="cert")
def cert_fixture() -> NotificationCertificate:
    return NotificationCertificate.load(throwaway_certificate(), CERT_ID)


@pytest.fixture(name="rich_webhook")
def rich_webhook_fixture(
    webhook: WebhookEndpoint, cert: NotificationCertificate, monkeypatch: pytest.MonkeyPatch
) -> Iterator[WebhookEndpoint]:
    """The endpoint as the trigger runs it when GRAPH_NOTIFICATION_CERTIFICATE is set."""
    monkeypatch.setattr(
        graph_conftest, "parse_call_ended", functools.partial(parse_call_ended, decrypt=cert.decrypt)
    )
    yield webhook


def subscribe_rich(
    graph: GraphEmulator,
    webhook: WebhookEndpoint,
    cert: NotificationCertificate,
    code: str = "K7Q2MX",
    **overrides: Any,
) -> tuple[Meeting, CallEventSubscription]:
    encryption = {
        "encryption_certificate": cert.public_certificate,
        "encryption_certificate_id": cert.certificate_id,
        **overrides,
    }

    async def scenario() -> tuple[Meeting, CallEventSubscription]:
        async with graph_ports(graph.base_url) as ports:
            meeting = await ports.meetings.create_or_get(meeting_request(code))
            subscription = await ports.meetings.subscribe_call_events(
                ORGANIZER,
                meeting,
                webhook.notification_url(code),
                client_state_for(WEBHOOK_SECRET, code),
                **encryption,
            )
            return meeting, subscription

    result: tuple[Meeting, CallEventSubscription] = asyncio.run(scenario())
    return result


def test_rich_subscription_sends_the_public_certificate(
    graph: GraphEmulator, rich_webhook: WebhookEndpoint, cert: NotificationCertificate
) -> None:
    """includeResourceData with the base64 DER certificate (no private key) and our id."""
    meeting, subscription = subscribe_rich(graph, rich_webhook, cert)

    [request] = graph.state.received("POST", r"/subscriptions$")
    assert request.path == "/beta/subscriptions"
    assert request.body["includeResourceData"] is True
    assert request.body["encryptionCertificate"] == cert.public_certificate
    assert request.body["encryptionCertificateId"] == CERT_ID
    assert "PRIVATE" not in str(request.body)
    assert subscription.resource == meeting_call_events_resource(meeting.join_url)


def test_rich_call_ended_is_decrypted_and_believed(
    graph: GraphEmulator, rich_webhook: WebhookEndpoint, cert: NotificationCertificate
) -> None:
    """The emulator encrypts the callEvent for our certificate; the endpoint reads callEnded."""
    meeting, subscription = subscribe_rich(graph, rich_webhook, cert)

    assert graph.start_meeting(meeting.meeting_id) == [202]
    assert graph.end_meeting(meeting.meeting_id) == [202]

    started, ended = rich_webhook.batches
    assert (started.call_ended, started.ignored, started.forged) == ([], 1, [])
    [notice] = ended.call_ended
    assert (notice.booking_code, notice.subscription_id) == ("K7Q2MX", subscription.subscription_id)
    assert notice.join_web_url == meeting.join_url
    assert notice.ended_at is not None
    [item] = graph.state.notifications[-1]["value"]
    assert "eventType" not in item["resourceData"]  # the event travels encrypted only
    assert set(item["encryptedContent"]) == {
        "data",
        "dataSignature",
        "dataKey",
        "encryptionCertificateId",
        "encryptionCertificateThumbprint",
    }
    assert item["encryptedContent"]["encryptionCertificateThumbprint"] == cert.thumbprint


def test_a_tampered_rich_notification_is_answered_202_and_refused(
    graph: GraphEmulator, rich_webhook: WebhookEndpoint, cert: NotificationCertificate
) -> None:
    """A replayed notification with its ciphertext altered fails the HMAC: forged."""
    meeting, _ = subscribe_rich(graph, rich_webhook, cert)
    graph.end_meeting(meeting.meeting_id)
    tampered = copy.deepcopy(graph.state.notifications[-1])
    content = tampered["value"][0]["encryptedContent"]
    content["data"] = ("A" if content["data"][0] != "A" else "B") + content["data"][1:]

    assert post_json(rich_webhook.notification_url("K7Q2MX"), tampered) == 202

    batch = rich_webhook.batches[-1]
    assert batch.call_ended == []
    assert [f.reason for f in batch.forged] == ["encryptedContent: dataSignature does not match"]


def test_content_for_another_certificate_is_refused(
    graph: GraphEmulator, rich_webhook: WebhookEndpoint, cert: NotificationCertificate
) -> None:
    """A subscription made with a different certificate (e.g. before a rotation) is not readable."""
    stranger = NotificationCertificate.load(throwaway_certificate("stranger"), "stranger")
    meeting, _ = subscribe_rich(graph, rich_webhook, stranger)
    graph.end_meeting(meeting.meeting_id)

    batch = rich_webhook.batches[-1]
    assert batch.call_ended == []
    assert [f.reason for f in batch.forged] == ["encryptedContent: encryptionCertificateId does not match"]


def test_include_resource_data_without_a_certificate_is_a_400(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """Graph's rule, enforced by the emulator."""

    async def meeting() -> Meeting:
        async with graph_ports(graph.base_url) as ports:
            return await ports.meetings.create_or_get(meeting_request())

    join_url = asyncio.run(meeting()).join_url
    body = {
        "changeType": "updated",
        "notificationUrl": webhook.notification_url("K7Q2MX"),
        "resource": meeting_call_events_resource(join_url),
        "expirationDateTime": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "clientState": client_state_for(WEBHOOK_SECRET, "K7Q2MX"),
        "includeResourceData": True,
    }
    with httpx.Client(headers={"Authorization": f"Bearer {DEV_TOKEN}"}) as http:
        r = http.post(f"{graph.beta_url}/subscriptions", json=body)
    assert r.status_code == 400
    assert "encryptionCertificate" in r.json()["error"]["message"]
    assert graph.state.subscriptions == {}


def test_a_certificate_that_is_not_x509_is_a_400(
    graph: GraphEmulator, webhook: WebhookEndpoint, cert: NotificationCertificate
) -> None:
    with pytest.raises(PermanentGatewayError) as caught:
        subscribe_rich(graph, webhook, cert, encryption_certificate="bm90IGEgY2VydGlmaWNhdGU=")
    assert caught.value.status == 400
    assert graph.state.subscriptions == {}


def test_half_an_encryption_setting_is_refused_before_calling_graph(
    graph: GraphEmulator, webhook: WebhookEndpoint, cert: NotificationCertificate
) -> None:
    with pytest.raises(ValueError, match="together"):
        subscribe_rich(graph, webhook, cert, encryption_certificate_id=None)
    assert graph.state.received("POST", r"/subscriptions$") == []


def test_delete_subscription_removes_it_and_tolerates_a_second_delete(
    graph: GraphEmulator, rich_webhook: WebhookEndpoint, cert: NotificationCertificate
) -> None:
    """Cancelling deletes the subscription; an expired (404) one is not an error."""
    _, subscription = subscribe_rich(graph, rich_webhook, cert)

    async def delete_twice() -> None:
        async with graph_ports(graph.base_url) as ports:
            await ports.meetings.delete_subscription(subscription.subscription_id)
            await ports.meetings.delete_subscription(subscription.subscription_id)

    asyncio.run(delete_twice())
    assert graph.state.subscriptions == {}
    deletes = graph.state.received("DELETE", r"/subscriptions/")
    assert [r.status for r in deletes] == [204, 404]
    assert all(r.path.startswith("/beta/") for r in deletes)
