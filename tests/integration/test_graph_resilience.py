"""Throttling, outages and refusals: what the adapter retries and what it hands to Durable."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

from adapters.graph import RetryPolicy
from appointments.ports import PermanentGatewayError, TransientGatewayError
from devhost.graph_emulator import Fault, GraphEmulator
from tests.integration.graph_conftest import (  # noqa: F401 - imported fixtures register with pytest
    ORGANIZER,
    graph_fixture,
    graph_ports,
    graph_server_fixture,
    meeting_request,
)

CREATE = r"/onlineMeetings/createOrGet$"


def test_throttled_request_waits_for_retry_after_then_succeeds(graph: GraphEmulator) -> None:
    """429 with Retry-After: 1 is retried after a second, inside the same call."""
    graph.state.add_fault(Fault(path=CREATE, status=429, retry_after="1"))

    async def scenario() -> bool:
        async with graph_ports(graph.base_url) as ports:
            return (await ports.meetings.create_or_get(meeting_request())).created

    began = time.monotonic()
    assert asyncio.run(scenario()) is True
    elapsed = time.monotonic() - began

    assert elapsed >= 1.0, "Retry-After was not honoured"
    assert elapsed < 3.0
    assert [r.status for r in graph.state.received("POST", CREATE)] == [429, 201]


def test_a_call_waiting_out_retry_after_holds_no_concurrency_slot(graph: GraphEmulator) -> None:
    """The process keeps 4 Graph requests in flight, and a throttled call waiting out its
    Retry-After is not in flight: four other calls go to Graph during the wait. (Were the slot
    held through the wait, the fourth would reach Graph only after the throttled one's retry.)"""
    throttled = "kiireinen.asiantuntija@pankki.example"
    graph.state.add_fault(
        Fault(path=f"/users/{throttled}/onlineMeetings/createOrGet$", status=429, retry_after="1")
    )
    graph.state.add_fault(Fault(path=f"/users/{ORGANIZER}/onlineMeetings/createOrGet$", delay=1.5, count=4))

    async def scenario() -> None:
        async with graph_ports(graph.base_url) as ports:
            first = asyncio.create_task(
                ports.meetings.create_or_get(meeting_request("THROTT1", organizer=throttled))
            )
            while not graph.state.received("POST", CREATE):  # noqa: ASYNC110 - recorded by the emulator thread
                await asyncio.sleep(0.01)
            others = [ports.meetings.create_or_get(meeting_request(f"OTHER{i}")) for i in range(4)]
            await asyncio.gather(first, *others)

    asyncio.run(scenario())
    order = [(r.path.split("/")[3], r.status) for r in graph.state.received("POST", CREATE)]
    assert order[0] == (throttled, 429)
    assert order[-1] == (throttled, 201), order
    assert sorted(order[1:-1]) == [(ORGANIZER, 201)] * 4


def test_a_process_has_at_most_four_requests_in_flight(graph: GraphEmulator) -> None:
    """Ten mails at once from one mailbox: Outlook allows 4 concurrent requests per app and
    mailbox and answers a fifth 429 (the emulator counts each while it holds the answer 0.3 s),
    so none may be refused: the process itself keeps to 4."""
    from appointments.ports import MailMessage

    graph.state.add_fault(Fault(path=r"/sendMail$", delay=0.3, after=True, count=10))

    async def scenario() -> None:
        async with graph_ports(graph.base_url) as ports:
            await asyncio.gather(
                *(
                    ports.mail.send(
                        MailMessage(ORGANIZER, "s", "t", "<p>h</p>", f"k{i}", internet_message_id=f"<k{i}@x>")
                    )
                    for i in range(10)
                )
            )

    began = time.monotonic()
    asyncio.run(scenario())
    assert [r.status for r in graph.state.received("POST", r"/sendMail$")] == [202] * 10
    assert len(graph.state.mail) == 10
    assert time.monotonic() - began >= 0.9, "10 calls of 0.3 s, 4 at a time, take 3 rounds"


def test_long_retry_after_is_handed_to_durable_instead_of_slept_on(graph: GraphEmulator) -> None:
    """A Retry-After above the policy's limit fails fast as transient, saying how long to wait."""
    graph.state.add_fault(Fault(path=CREATE, status=429, retry_after="120"))

    async def scenario() -> None:
        async with graph_ports(graph.base_url) as ports:
            await ports.meetings.create_or_get(meeting_request())

    began = time.monotonic()
    with pytest.raises(TransientGatewayError, match=r"429 TooManyRequests \(retry after 120 s\)"):
        asyncio.run(scenario())
    assert time.monotonic() - began < 1.0
    assert len(graph.state.received("POST", CREATE)) == 1


def test_outage_beyond_the_retry_budget_is_transient(graph: GraphEmulator) -> None:
    """503 on every attempt: one try plus max_retries, then TransientGatewayError for Durable to retry."""
    graph.state.add_fault(Fault(path=CREATE, status=503, count=100))
    policy = RetryPolicy(max_retries=2, backoff=0.05, timeout=5.0)

    async def scenario() -> None:
        async with graph_ports(graph.base_url, policy) as ports:
            await ports.meetings.create_or_get(meeting_request())

    with pytest.raises(TransientGatewayError, match="HTTP 503"):
        asyncio.run(scenario())
    assert [r.status for r in graph.state.received("POST", CREATE)] == [503, 503, 503]


def test_brief_outage_within_the_budget_is_absorbed(graph: GraphEmulator) -> None:
    """Two 503s and then success on an idempotent POST (createOrGet): the caller never sees the outage."""
    graph.state.add_fault(Fault(path=CREATE, status=503, count=2))

    async def scenario() -> bool:
        async with graph_ports(graph.base_url) as ports:
            return (await ports.meetings.create_or_get(meeting_request())).created

    assert asyncio.run(scenario()) is True
    assert [r.status for r in graph.state.received("POST", CREATE)] == [503, 503, 201]


def test_send_mail_is_never_resent_by_the_transport(graph: GraphEmulator) -> None:
    """A 503 after Graph accepted the mail: one POST, a transient error, and the mail exists once."""
    graph.state.add_fault(Fault(path=r"/sendMail$", status=503, after=True))

    async def scenario() -> None:
        from appointments.ports import MailMessage

        async with graph_ports(graph.base_url) as ports:
            await ports.mail.send(
                MailMessage(ORGANIZER, "s", "t", "<p>h</p>", "k", internet_message_id="<k@x>")
            )

    with pytest.raises(TransientGatewayError, match="503"):
        asyncio.run(scenario())
    assert len(graph.state.received("POST", r"/sendMail$")) == 1
    assert len(graph.state.mail) == 1


def test_forbidden_is_permanent_with_status_and_graph_code(graph: GraphEmulator) -> None:
    """403 (e.g. no application access policy for the expert) is not retried, and says why."""
    graph.state.add_fault(Fault(path=CREATE, status=403, code="Forbidden"))

    async def scenario() -> None:
        async with graph_ports(graph.base_url) as ports:
            await ports.meetings.create_or_get(meeting_request())

    with pytest.raises(PermanentGatewayError) as caught:
        asyncio.run(scenario())
    error = caught.value
    assert (error.status, error.code) == (403, "Forbidden")
    assert str(error) == "Graph createOrGet failed: HTTP 403 Forbidden"
    assert ORGANIZER not in str(error)
    assert len(graph.state.received("POST", CREATE)) == 1


def test_bad_request_through_the_sdk_error_path_is_permanent(graph: GraphEmulator) -> None:
    """A 400 on a call the SDK parses itself (ODataError) maps the same way."""
    graph.state.add_fault(Fault(path=r"/sendMail$", status=400, code="ErrorInvalidRecipients"))

    async def scenario() -> None:
        from appointments.ports import MailMessage

        async with graph_ports(graph.base_url) as ports:
            await ports.mail.send(MailMessage(ORGANIZER, "s", "t", "<p>h</p>", "k"))

    with pytest.raises(PermanentGatewayError) as caught:
        asyncio.run(scenario())
    assert (caught.value.status, caught.value.code) == (400, "ErrorInvalidRecipients")
    assert ORGANIZER not in str(caught.value)


def test_slow_graph_times_out_as_transient(graph: GraphEmulator) -> None:
    """A response slower than the policy's timeout is a transient failure, not a hang."""
    graph.state.add_fault(Fault(path=CREATE, delay=1.0))
    policy = RetryPolicy(max_retries=0, timeout=0.3)

    async def scenario() -> None:
        async with graph_ports(graph.base_url, policy) as ports:
            await ports.meetings.create_or_get(meeting_request())

    with pytest.raises(TransientGatewayError, match="ReadTimeout"):
        asyncio.run(scenario())


def test_unreachable_graph_is_transient() -> None:
    """A refused connection is transient: Graph (or the network) may be back soon."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the call: nothing listens there

    async def scenario() -> None:
        async with graph_ports(f"http://127.0.0.1:{port}/v1.0") as ports:
            await ports.meetings.create_or_get(meeting_request())

    with pytest.raises(TransientGatewayError, match="ConnectError"):
        asyncio.run(scenario())


def test_emulator_refuses_calls_without_a_bearer_token(graph: GraphEmulator) -> None:
    """Like Graph, the emulator answers 401 InvalidAuthenticationToken without a token."""
    response = httpx.post(
        f"{graph.base_url}/users/{ORGANIZER}/onlineMeetings/createOrGet", json={"externalId": "x"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert graph.state.meetings == {}
