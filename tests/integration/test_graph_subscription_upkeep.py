"""Subscriptions live as long as the meeting needs them: ``appointments.call_events`` on the real
gateway against the emulator (the timer's and the lifecycle activity's logic, called directly)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from adapters.graph_webhook import client_state_for
from appointments.call_events import CALL_EVENTS_REFUSED, CallEventSubscriptions, Target
from appointments.catalogue import Channel
from appointments.model import Appointment, Phase
from appointments.ports import Meeting
from devhost.graph_emulator import Fault, GraphEmulator
from devhost.graph_emulator.state import graph_time
from tests.integration.graph_conftest import (  # noqa: F401 - imported fixtures register with pytest
    ORGANIZER,
    WEBHOOK_SECRET,
    WebhookEndpoint,
    graph_fixture,
    graph_ports,
    graph_server_fixture,
    meeting_request,
    webhook_fixture,
)

T = TypeVar("T")
NOW = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)  # the app's clock: the appointments' day


@dataclass
class Records:
    """The two repository calls the use case makes, over a dict."""

    appointments: dict[str, Appointment] = field(default_factory=dict)
    subscriptions: dict[str, str] = field(default_factory=dict)

    def get_by_code(self, code: str) -> Appointment | None:
        return self.appointments.get(code)

    def set_subscription(self, code: str, subscription_id: str) -> None:
        self.subscriptions[code] = subscription_id


def run[T](
    graph: GraphEmulator, webhook: WebhookEndpoint, records: Records, work: Callable[[Any, Any], Awaitable[T]]
) -> T:
    async def scenario() -> T:
        async with graph_ports(graph.base_url) as ports:

            def target(code: str) -> Target:
                return Target(webhook.notification_url(code), client_state_for(WEBHOOK_SECRET, code))

            use_case = CallEventSubscriptions(
                ports.meetings,
                records,  # type: ignore[arg-type]
                target,
                end_grace=timedelta(minutes=30),
            )
            return await work(use_case, ports.meetings)

    return asyncio.run(scenario())


def booked(
    graph: GraphEmulator, webhook: WebhookEndpoint, records: Records, *, phase: Phase = Phase.JOIN_OPEN
) -> Appointment:
    """An appointment whose meeting exists and is subscribed."""
    code = uuid.uuid4().hex[:6].upper()

    async def work(use_case: CallEventSubscriptions, meetings: Any) -> Appointment:
        meeting = await meetings.create_or_get(meeting_request(code))
        a = Appointment(
            code, f"c-{code}", ORGANIZER, Channel.ONLINE, "loans.home-loan", NOW + timedelta(minutes=15), 30,
            "fi", "+358401234567", None, phase=phase, meeting_id=meeting.meeting_id,
            join_url=meeting.join_url,
        )  # fmt: skip
        records.appointments[code] = a
        assert await use_case.subscribe(a, meeting) is None
        return a

    return run(graph, webhook, records, work)


def subscribed(graph: GraphEmulator, webhook: WebhookEndpoint) -> tuple[Records, Appointment, str]:
    records = Records()
    a = booked(graph, webhook, records)
    return records, a, records.subscriptions[a.booking_code]


def notice(
    graph: GraphEmulator, webhook: WebhookEndpoint, records: Records, a: Appointment, sub: str, event: str
) -> str:
    """One lifecycle notification of ``a``'s subscription, as the upkeep activity hands it over."""
    return run(graph, webhook, records, lambda uc, _: uc.on_lifecycle(a.booking_code, sub, event, NOW))


def expire_in(graph: GraphEmulator, subscription_id: str, delta: timedelta) -> None:
    with graph.state.lock:
        graph.state.subscriptions[subscription_id]["expirationDateTime"] = graph_time(
            datetime.now(UTC) + delta
        )


def test_the_timer_renews_what_expires_soon_and_deletes_what_is_over(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """Expiring in 2 h → renewed to ~3 days; in 2 days → kept; an ended appointment's → deleted."""
    records = Records()
    soon, later, over = (booked(graph, webhook, records) for _ in range(3))
    expire_in(graph, records.subscriptions[soon.booking_code], timedelta(hours=2))
    expire_in(graph, records.subscriptions[later.booking_code], timedelta(days=2))
    records.appointments[over.booking_code] = replace(over, phase=Phase.ENDED)

    counts = run(graph, webhook, records, lambda uc, _: uc.renew_due(NOW))

    assert counts == {"renewed": 1, "deleted": 1, "kept": 1, "failed": 0}
    subs = graph.state.subscriptions
    assert records.subscriptions[over.booking_code] not in subs
    renewed = subs[records.subscriptions[soon.booking_code]]["expirationDateTime"]
    assert datetime.fromisoformat(renewed.replace("0Z", "+00:00")) > datetime.now(UTC) + timedelta(
        days=2, hours=23
    )


def test_one_failed_renewal_does_not_stop_the_others(graph: GraphEmulator, webhook: WebhookEndpoint) -> None:
    """A 503 on one PATCH is counted and left to the next run; the other is renewed."""
    records = Records()
    first, second = booked(graph, webhook, records), booked(graph, webhook, records)
    for a in (first, second):
        expire_in(graph, records.subscriptions[a.booking_code], timedelta(hours=1))
    graph.state.add_fault(Fault(path=r"/subscriptions/", method="PATCH", status=503, count=3))

    counts = run(graph, webhook, records, lambda uc, _: uc.renew_due(NOW))
    assert counts == {"renewed": 1, "deleted": 0, "kept": 0, "failed": 1}


def test_reauthorization_required_is_answered_with_reauthorize(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """POST /subscriptions/{id}/reauthorize on beta, and the subscription stays."""
    records, a, sub = subscribed(graph, webhook)

    outcome = notice(graph, webhook, records, a, sub, "reauthorizationRequired")

    assert outcome == "reauthorized"
    [request] = graph.state.received("POST", r"/reauthorize$")
    assert request.path == f"/beta/subscriptions/{sub}/reauthorize" and request.status == 204
    assert sub in graph.state.subscriptions


def test_a_removed_subscription_is_recreated_while_the_meeting_needs_it(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """subscriptionRemoved (Graph has dropped it): a new one on the same meeting, and the record follows."""
    records, a, old = subscribed(graph, webhook)
    assert graph.lifecycle(old, "subscriptionRemoved") == 202

    outcome = notice(graph, webhook, records, a, old, "subscriptionRemoved")

    assert outcome == "recreated"
    new = records.subscriptions[a.booking_code]
    assert new != old and new in graph.state.subscriptions


def test_missed_reconciles_only_what_is_gone(graph: GraphEmulator, webhook: WebhookEndpoint) -> None:
    """missed with the subscription still there changes nothing; with it gone, it is recreated."""
    records, a, sub = subscribed(graph, webhook)

    assert notice(graph, webhook, records, a, sub, "missed") == "still subscribed"
    with graph.state.lock:
        del graph.state.subscriptions[sub]
    assert notice(graph, webhook, records, a, sub, "missed") == "recreated"


def test_nothing_is_recreated_for_an_appointment_that_is_over(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """A removed subscription of an ended appointment stays removed."""
    records, a, sub = subscribed(graph, webhook)
    graph.lifecycle(sub, "subscriptionRemoved")
    records.appointments[a.booking_code] = replace(a, phase=Phase.ENDED)

    outcome = notice(graph, webhook, records, a, sub, "subscriptionRemoved")
    assert outcome == "not needed" and graph.state.subscriptions == {}


def test_a_refused_subscription_is_an_attention_reason_not_a_failure(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """403 on the subscription (e.g. "meeting tenant does not match the token tenant"): a reason, no raise."""
    records = Records()
    graph.state.add_fault(Fault(path=r"/subscriptions$", method="POST", status=403, code="Forbidden"))
    code = "REFUSD"

    async def work(use_case: CallEventSubscriptions, meetings: Any) -> str | None:
        meeting: Meeting = await meetings.create_or_get(meeting_request(code))
        a = Appointment(
            code, f"c-{code}", ORGANIZER, Channel.ONLINE, "loans.home-loan", NOW, 30, "fi", "+358401234567",
            None, meeting_id=meeting.meeting_id, join_url=meeting.join_url,
        )  # fmt: skip
        result: str | None = await use_case.subscribe(a, meeting)
        return result

    assert run(graph, webhook, records, work) == CALL_EVENTS_REFUSED
    assert records.subscriptions == {} and graph.state.subscriptions == {}


def test_the_first_attempt_does_not_list_and_a_retry_after_a_lost_answer_finds_its_subscription(
    graph: GraphEmulator, webhook: WebhookEndpoint
) -> None:
    """create_meeting reads the record, stores the meeting, then subscribes. A record read without
    a meeting id: no attempt got as far as the subscription, so no GET /subscriptions (it lists
    all of the app's live ones). A retry reads the meeting id its predecessor stored: it lists,
    finds the subscription whose answer was lost, and renews it — never a second one."""
    records = Records()
    code = uuid.uuid4().hex[:6].upper()

    async def first_attempt(use_case: CallEventSubscriptions, meetings: Any) -> tuple[Appointment, Meeting]:
        meeting = await meetings.create_or_get(meeting_request(code))
        fresh = Appointment(
            code, f"c-{code}", ORGANIZER, Channel.ONLINE, "loans.home-loan", NOW + timedelta(minutes=15), 30,
            "fi", "+358401234567", None, phase=Phase.JOIN_OPEN,
        )  # fmt: skip
        assert await use_case.subscribe(fresh, meeting) is None
        return fresh, meeting

    fresh, meeting = run(graph, webhook, records, first_attempt)
    assert graph.state.received("GET", r"/subscriptions$") == []
    created = records.subscriptions.pop(code)  # as if the POST's answer never arrived
    stored = replace(fresh, meeting_id=meeting.meeting_id, join_url=meeting.join_url)

    assert run(graph, webhook, records, lambda uc, _: uc.subscribe(stored, meeting)) is None
    assert records.subscriptions[code] == created
    assert len(graph.state.received("GET", r"/subscriptions$")) == 1
    assert [r.status for r in graph.state.received("POST", r"/subscriptions$")] == [201]
