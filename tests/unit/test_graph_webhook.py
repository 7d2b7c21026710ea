"""The pure webhook helpers: handshake, per-appointment clientState, notification parsing."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.graph_webhook import (
    CLIENT_STATE_MAX,
    MalformedNotification,
    client_state_for,
    join_url_of,
    meeting_call_events_resource,
    notification_url_for,
    parse_call_ended,
    validation_token,
)

SECRET = "unit-test-secret-0123456789abcdef"
CODE = "K7Q2MX"
JOIN_URL = (
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NjE4%40thread.v2/0"
    "?context=%7b%22Tid%22%3a%22t%22%2c%22Oid%22%3a%22o%22%7d"
)
RESOURCE = meeting_call_events_resource(JOIN_URL)


def notification(
    event_type: str = "callEnded", *, state: str | None = None, resource: str = RESOURCE, **extra: Any
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "subscriptionId": "sub-1",
        "changeType": "updated",
        "resource": resource,
        "clientState": client_state_for(SECRET, CODE) if state is None else state,
        "tenantId": "tenant",
        "resourceData": {
            "@odata.type": "#microsoft.graph.callEvent",
            "id": "event-1",
            "eventType": event_type,
            "eventDateTime": "2030-03-04T11:02:03.1234567Z",
        },
    }
    item.update(extra)
    return item


def body(*items: dict[str, Any]) -> bytes:
    return json.dumps({"value": list(items)}).encode()


def test_validation_request_is_echoed_as_plain_text() -> None:
    """Graph's ?validationToken= is answered 200, text/plain, with the token itself."""
    reply = validation_token({"validationToken": "Validation: Testing client application reachability"})
    assert reply is not None
    assert (reply.status, reply.content_type, reply.body) == (
        200,
        "text/plain",
        "Validation: Testing client application reachability",
    )
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_a_notification_is_not_a_validation_request() -> None:
    """Without validationToken the trigger goes on to parse the body."""
    assert validation_token({"appointment": CODE}) is None


def test_an_oversized_validation_token_is_refused() -> None:
    """The endpoint will not reflect arbitrary payloads back."""
    with pytest.raises(MalformedNotification):
        validation_token({"validationToken": "x" * 5000})


def test_client_state_is_a_keyed_hmac_per_booking_code() -> None:
    """Deterministic per (secret, code), different across codes and secrets, short and URL-safe."""
    state = client_state_for(SECRET, CODE)
    assert state == client_state_for(SECRET, CODE)
    assert state != client_state_for(SECRET, "AB12CD")
    assert state != client_state_for("another-secret-0123456789abcdef", CODE)
    assert len(state) <= CLIENT_STATE_MAX
    assert set(state) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert CODE not in state and SECRET not in state


def test_client_state_needs_a_secret() -> None:
    """An empty key would make every clientState computable from the booking code."""
    with pytest.raises(ValueError, match="empty"):
        client_state_for("", CODE)


def test_notification_url_carries_the_booking_code() -> None:
    """The code is added to the query, next to anything already there (e.g. a function key)."""
    assert notification_url_for("https://app.example/api/graph/notifications", CODE) == (
        "https://app.example/api/graph/notifications?appointment=K7Q2MX"
    )
    assert notification_url_for("https://app.example/api/n?code=abc", "A B") == (
        "https://app.example/api/n?code=abc&appointment=A+B"
    )


def test_resource_encodes_the_join_url_and_reads_back() -> None:
    """The join URL is percent-encoded inside the resource (twice-encoded parts included)."""
    assert RESOURCE.startswith("communications/onlineMeetings(joinWebUrl='https%3A%2F%2Fteams.microsoft.com")
    assert "%253a" in RESOURCE
    assert join_url_of(RESOURCE) == JOIN_URL
    assert join_url_of("/" + RESOURCE) == JOIN_URL
    assert join_url_of("communications/callRecords/abc") is None


def test_genuine_call_ended_is_returned() -> None:
    """A callEnded with the right clientState becomes a CallEnded notice."""
    batch = parse_call_ended(body(notification()), CODE, SECRET)

    [notice] = batch.call_ended
    assert notice.booking_code == CODE
    assert notice.subscription_id == "sub-1"
    assert notice.join_web_url == JOIN_URL
    assert notice.notification_id == "event-1"
    assert notice.ended_at == datetime(2030, 3, 4, 11, 2, 3, 123456, tzinfo=UTC)
    assert (batch.forged, batch.lifecycle, batch.ignored) == ([], [], 0)


def test_the_older_event_type_spelling_is_understood() -> None:
    """Earlier documentation wrote Microsoft.Communication.CallEnded."""
    batch = parse_call_ended(body(notification("Microsoft.Communication.CallEnded")), CODE, SECRET)
    assert len(batch.call_ended) == 1


def test_other_events_and_resources_are_ignored() -> None:
    """callStarted, roster updates, other resources and half-empty items are not call-ended."""
    items = [
        notification("callStarted"),
        notification("rosterUpdated"),
        notification(resource="communications/callRecords/abc"),
        notification(resourceData={}),
        notification(subscriptionId=None),
        "not an object",
    ]
    batch = parse_call_ended(json.dumps({"value": items}).encode(), CODE, SECRET)
    assert batch.call_ended == []
    assert batch.forged == []
    assert batch.ignored == 6


def test_wrong_or_missing_client_state_is_reported_as_forged() -> None:
    """Forgeries are returned apart from the genuine notices, with a reason for the audit."""
    other_appointment = client_state_for(SECRET, "AB12CD")
    items = [
        notification(state="guess"),
        notification(state=other_appointment),
        notification(),
        notification(),
    ]
    del items[3]["clientState"]

    batch = parse_call_ended(body(*items), CODE, SECRET)

    assert len(batch.call_ended) == 1
    assert [f.reason for f in batch.forged] == [
        "clientState mismatch",
        "clientState mismatch",
        "clientState missing",
    ]
    assert all(f.subscription_id == "sub-1" for f in batch.forged)


def test_forged_items_are_not_believed_even_when_otherwise_perfect() -> None:
    """Nothing in an item counts before its clientState has matched."""
    batch = parse_call_ended(
        body(notification(state=client_state_for("leaked-other-secret-xxxxxxxx", CODE))), CODE, SECRET
    )
    assert batch.call_ended == []
    assert len(batch.forged) == 1


def test_lifecycle_notifications_are_reported() -> None:
    """reauthorizationRequired and friends come to the same URL and are surfaced, not dropped."""
    lifecycle = {
        "subscriptionId": "sub-1",
        "clientState": client_state_for(SECRET, CODE),
        "lifecycleEvent": "reauthorizationRequired",
    }
    batch = parse_call_ended(body(lifecycle), CODE, SECRET)
    [notice] = batch.lifecycle
    assert (notice.booking_code, notice.event) == (CODE, "reauthorizationRequired")


def test_encrypted_content_needs_a_decryptor() -> None:
    """Rich notifications are ignored without ``decrypt`` and read with it."""
    item = notification(encryptedContent={"data": "…", "dataKey": "…"})
    item["resourceData"] = {"id": "event-2"}

    assert parse_call_ended(body(item), CODE, SECRET).ignored == 1
    batch = parse_call_ended(body(item), CODE, SECRET, decrypt=lambda _: {"eventType": "callEnded"})
    [notice] = batch.call_ended
    assert notice.notification_id == "event-2"
    assert notice.ended_at is None


def test_a_refusing_decryptor_marks_the_item_forged() -> None:
    """Wrong certificate, bad signature, tampered data: audited as forged, never believed."""
    item = notification(encryptedContent={"data": "x"})

    def refuse(_: Any) -> Any:
        raise ValueError("dataSignature does not match")

    batch = parse_call_ended(body(item), CODE, SECRET, decrypt=refuse)
    assert batch.call_ended == []
    assert [f.reason for f in batch.forged] == ["encryptedContent: dataSignature does not match"]


def test_with_a_decryptor_clear_event_details_are_ignored() -> None:
    """Rich mode believes only the encrypted content (basic items say nothing anyway)."""
    batch = parse_call_ended(body(notification()), CODE, SECRET, decrypt=lambda _: {"eventType": "callEnded"})
    assert (batch.call_ended, batch.ignored) == ([], 1)


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'{"value": {}}', b"\xff\xfe"])
def test_malformed_bodies_are_refused(raw: bytes) -> None:
    """Anything that is not a notification collection raises (the trigger answers 400)."""
    with pytest.raises(MalformedNotification):
        parse_call_ended(raw, CODE, SECRET)


def test_importing_the_graph_adapters_imports_no_sdk() -> None:
    """Cold start: msgraph, kiota and azure.identity load on first use, not at import."""
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys, adapters.graph, adapters.graph_webhook; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'msgraph', 'msgraph_core', 'kiota_http', "
        "'kiota_abstractions', 'azure', 'httpx'}))"
    )
    result = subprocess.run(  # noqa: S603 - fixed arguments, our own interpreter
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# --- validationTokens -------------------------------------------------------------------------

APP = "11111111-2222-3333-4444-555555555555"
TENANT = "8a5b4f34-5c5e-4b8e-9b7a-0e1f2d3c4b5a"


@pytest.fixture(scope="module")
def signing() -> Any:
    from devhost.graph_emulator.crypto import TestSigningKey

    return TestSigningKey()


def verifier(signing: Any, app: str = APP, tenant: str = TENANT) -> Any:
    from adapters.notification_crypto import ValidationTokenVerifier
    from appointments.settings import Settings

    settings = Settings(
        graph_client_id=app, graph_tenant_id=tenant, graph_notification_jwks=signing.jwks_json()
    )
    return ValidationTokenVerifier.from_settings(settings)


def test_a_token_graph_signed_for_this_app_and_tenant_passes(signing: Any) -> None:
    """Signature from the key set, audience = our app, issuer/tenant = ours, azp = Graph change tracking."""
    verifier(signing)([signing.token(APP, TENANT)])


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "someone-else"}, "wrong audience"),
        ({"iss": "https://sts.windows.net/another-tenant/"}, "wrong issuer"),
        ({"tid": "another-tenant"}, "wrong tenant"),
        ({"azp": "a-random-app"}, "not issued to Graph change tracking"),
        ({"exp": 1_000_000_000}, "expired"),
    ],
)
def test_tokens_that_fail_one_documented_check_are_refused(
    signing: Any, claims: dict[str, Any], reason: str
) -> None:
    """Each of Graph's documented checks refuses on its own."""
    with pytest.raises(ValueError, match=reason):
        verifier(signing)([signing.token(APP, TENANT, **claims)])


def test_a_token_signed_with_another_key_or_none_at_all_is_refused(signing: Any) -> None:
    """A stranger's key, an unsigned token or no token: refused."""
    from devhost.graph_emulator.crypto import TestSigningKey

    check = verifier(signing)
    with pytest.raises(ValueError, match="invalid"):
        check([TestSigningKey().token(APP, TENANT)])
    with pytest.raises(ValueError, match="missing"):
        check([])
    with pytest.raises(ValueError, match="cannot be checked"):
        verifier(signing, tenant="")([signing.token(APP, "")])


def rich_item() -> dict[str, Any]:
    item = notification()
    item.pop("resourceData")
    item["resourceData"] = {"id": "event-9"}
    item["encryptedContent"] = {"data": "x"}
    return item


def test_rich_items_without_valid_validation_tokens_are_forged(signing: Any) -> None:
    """The POST's tokens are checked once; when they fail, every rich item is refused and audited."""
    ended = lambda _: {"callEventType": "callEnded", "eventDateTime": "2030-03-04T11:00:00Z"}  # noqa: E731
    forged = json.dumps({"value": [rich_item()], "validationTokens": ["not-a-jwt"]}).encode()
    batch = parse_call_ended(forged, CODE, SECRET, decrypt=ended, verify_tokens=verifier(signing))
    assert (batch.call_ended, [f.reason for f in batch.forged]) == (
        [],
        ["validationTokens: invalid (DecodeError)"],
    )

    genuine = json.dumps({"value": [rich_item()], "validationTokens": [signing.token(APP, TENANT)]}).encode()
    batch = parse_call_ended(genuine, CODE, SECRET, decrypt=ended, verify_tokens=verifier(signing))
    assert [(n.notification_id, n.resource) for n in batch.call_ended] == [("event-9", RESOURCE)]
    assert batch.forged == []


# --- the trigger's hand-over ------------------------------------------------------------------


class FakeDurableClient:
    """Records what the webhook hands to Durable."""

    def __init__(self) -> None:
        self.raised: list[tuple[str, str, Any]] = []
        self.started: list[tuple[str, Any]] = []

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        self.raised.append((instance_id, name, data))

    async def start_new(self, name: str, instance_id: str | None, data: Any) -> str:
        self.started.append((name, data))
        return "id"


class NoStorage:
    """A repository the webhook must not touch before it answers."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the webhook called repo.{name} before answering")


def services() -> Any:
    from types import SimpleNamespace

    from tests.fakes import FakeClock

    return SimpleNamespace(repo=NoStorage(), clock=FakeClock())


def test_call_ended_is_raised_once_with_its_own_time_and_no_storage_work() -> None:
    """The same notification twice (Graph retries) raises MeetingEnded once, carrying eventDateTime."""
    import asyncio

    from http_triggers.graph_webhook import SeenNotifications, _hand_over

    client = FakeDurableClient()
    batch = parse_call_ended(body(notification()), CODE, SECRET)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("http_triggers.graph_webhook.seen", SeenNotifications())
        asyncio.run(_hand_over(client, CODE, batch, services()))  # type: ignore[arg-type]
        asyncio.run(_hand_over(client, CODE, batch, services()))  # type: ignore[arg-type]
    assert client.raised == [
        ("appt-K7Q2MX", "MeetingEnded", {"source": "graph", "occurredAt": "2030-03-04T11:02:03Z"})
    ]


def test_a_lifecycle_notice_starts_the_upkeep_orchestration() -> None:
    """reauthorizationRequired goes to graph_subscription_upkeep; the Graph work happens there."""
    import asyncio

    from http_triggers.graph_webhook import SeenNotifications, _hand_over

    client = FakeDurableClient()
    item = {"subscriptionId": "sub-1", "lifecycleEvent": "reauthorizationRequired", "resource": RESOURCE}
    item["clientState"] = client_state_for(SECRET, CODE)
    batch = parse_call_ended(body(item), CODE, SECRET)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("http_triggers.graph_webhook.seen", SeenNotifications())
        asyncio.run(_hand_over(client, CODE, batch, services()))  # type: ignore[arg-type]
    assert client.started == [
        (
            "graph_subscription_upkeep",
            {"bookingCode": CODE, "subscriptionId": "sub-1", "event": "reauthorizationRequired"},
        )
    ]


def test_forged_posts_are_audited_as_one_count_per_window() -> None:
    """100 forged POSTs in a window: no audit write while answering, then one row with the count."""
    import asyncio
    from datetime import timedelta

    from appointments.ports import AuditEntry
    from http_triggers.graph_webhook import ForgedTally

    written: list[AuditEntry] = []
    tally = ForgedTally(window=timedelta(seconds=0.05))
    batch = parse_call_ended(body(notification(state="guess")), CODE, SECRET)

    async def flood() -> int:
        for _ in range(100):
            tally.add(
                CODE, [f.reason for f in batch.forged], datetime(2030, 1, 1, tzinfo=UTC), written.append
            )
        during = len(written)
        await asyncio.sleep(0.2)
        return during

    assert asyncio.run(flood()) == 0
    [row] = written
    assert (row.booking_code, row.action) == ("graph-webhook", "forged_notifications_refused")
    assert row.detail.startswith(
        "100 item(s) since 2030-01-01T00:00:00Z for K7Q2MX: clientState mismatch x100"
    )


# --- the lifecycle's rule for Graph's call-ended ----------------------------------------------


def test_a_call_end_older_than_the_customer_joining_changes_nothing() -> None:
    """Replayed or early callEnded (the expert's empty call) is ignored; a later one ends the meeting."""
    from datetime import timedelta

    from appointments.catalogue import Channel
    from appointments.lifecycle import GRAPH_SOURCE, LifecycleState, MeetingEnded, decide
    from appointments.model import Phase

    joined = datetime(2030, 3, 4, 10, 20, tzinfo=UTC)
    state = LifecycleState(
        "K7Q2MX", Channel.ONLINE, "x", joined, joined + timedelta(minutes=30), phase=Phase.LOBBY, since=joined
    )

    def ended(occurred: datetime | None, phase: Phase = Phase.LOBBY) -> Phase:
        event = MeetingEnded(joined + timedelta(minutes=20), source=GRAPH_SOURCE, occurred_at=occurred)
        return decide(replace(state, phase=phase), event).state.phase

    from dataclasses import replace

    assert ended(joined - timedelta(minutes=5)) is Phase.LOBBY  # the empty call before the customer came
    assert ended(None) is Phase.LOBBY  # no time of its own: not believed
    assert ended(joined + timedelta(minutes=15), Phase.JOIN_OPEN) is Phase.JOIN_OPEN
    assert ended(joined + timedelta(minutes=15)) is Phase.ENDED
    expert_end = MeetingEnded(joined + timedelta(minutes=1))
    assert decide(state, expert_end).state.phase is Phase.ENDED  # the expert's End needs no time
