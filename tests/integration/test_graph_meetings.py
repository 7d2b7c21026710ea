"""Teams meetings through the real msgraph-sdk against the Graph emulator."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from appointments.ports import PermanentGatewayError
from devhost.graph_emulator import Fault, GraphEmulator
from tests.integration.graph_conftest import (  # noqa: F401 - imported fixtures register with pytest
    ORGANIZER,
    START,
    graph_fixture,
    graph_ports,
    graph_server_fixture,
    meeting_request,
)


def test_meeting_is_created_with_external_id_then_locked_down(graph: GraphEmulator) -> None:
    """createOrGet carries externalId, subject and times; a PATCH sets lobby, recording and presenters."""

    async def scenario() -> None:
        async with graph_ports(graph.base_url) as ports:
            meeting = await ports.meetings.create_or_get(meeting_request("K7Q2MX"))
        assert meeting.created is True
        assert meeting.join_url.startswith(graph.origin)

    asyncio.run(scenario())

    [create] = graph.state.received("POST", r"/onlineMeetings/createOrGet$")
    assert create.path == f"/v1.0/users/{ORGANIZER}/onlineMeetings/createOrGet"
    assert create.body == {
        "externalId": "K7Q2MX",
        "subject": "Lainat, Asuntolainaneuvottelu",
        "startDateTime": "2030-03-04T10:30:00+00:00",
        "endDateTime": "2030-03-04T11:00:00+00:00",
    }
    [patch] = graph.state.received("PATCH", r"/onlineMeetings/")
    assert patch.body["lobbyBypassSettings"] == {"scope": "organizer", "isDialInBypassEnabled": False}
    assert patch.body["recordAutomatically"] is True
    assert patch.body["allowedPresenters"] == "organizer"
    [stored] = graph.state.meetings.values()
    assert stored["lobbyBypassSettings"]["scope"] == "organizer"
    assert stored["recordAutomatically"] is True


def test_same_booking_code_twice_is_one_meeting(graph: GraphEmulator) -> None:
    """A retried create finds the meeting (200): created is False, and nothing is patched again."""

    async def scenario() -> tuple[bool, bool, str, str]:
        async with graph_ports(graph.base_url) as ports:
            first = await ports.meetings.create_or_get(meeting_request("K7Q2MX"))
            second = await ports.meetings.create_or_get(meeting_request("K7Q2MX"))
        return first.created, second.created, first.meeting_id, second.meeting_id

    created_first, created_second, first_id, second_id = asyncio.run(scenario())

    assert (created_first, created_second) == (True, False)
    assert first_id == second_id
    assert len(graph.state.meetings) == 1
    assert [r.status for r in graph.state.received("POST", "createOrGet")] == [201, 200]
    assert len(graph.state.received("PATCH")) == 1


def test_retry_after_a_failed_patch_still_locks_the_meeting_down(graph: GraphEmulator) -> None:
    """If the settings PATCH failed, the retry's createOrGet (200) applies the settings then."""
    graph.state.add_fault(Fault(path=r"/onlineMeetings/[^/]+$", method="PATCH", status=403, code="Forbidden"))

    async def scenario() -> bool:
        async with graph_ports(graph.base_url) as ports:
            with pytest.raises(PermanentGatewayError):
                await ports.meetings.create_or_get(meeting_request("K7Q2MX"))
            return (await ports.meetings.create_or_get(meeting_request("K7Q2MX"))).created

    assert asyncio.run(scenario()) is False
    [stored] = graph.state.meetings.values()
    assert stored["lobbyBypassSettings"]["scope"] == "organizer"
    assert stored["allowedPresenters"] == "organizer"


def test_same_booking_code_for_another_organizer_is_another_meeting(graph: GraphEmulator) -> None:
    """Graph keys createOrGet by tenant + organizer + externalId."""

    async def scenario() -> None:
        async with graph_ports(graph.base_url) as ports:
            assert (await ports.meetings.create_or_get(meeting_request("K7Q2MX"))).created
            other = meeting_request("K7Q2MX", organizer="pekka.virtanen@pankki.example")
            assert (await ports.meetings.create_or_get(other)).created

    asyncio.run(scenario())
    assert len(graph.state.meetings) == 2


def test_rescheduling_moves_the_meeting(graph: GraphEmulator) -> None:
    """update_times PATCHes only the new start and end."""
    new_start = START + timedelta(days=1)

    async def scenario() -> str:
        async with graph_ports(graph.base_url) as ports:
            meeting = await ports.meetings.create_or_get(meeting_request())
            await ports.meetings.update_times(
                ORGANIZER, meeting.meeting_id, new_start, new_start + timedelta(hours=1)
            )
            return meeting.meeting_id

    meeting_id = asyncio.run(scenario())

    last_patch = graph.state.received("PATCH")[-1]
    assert last_patch.body == {
        "@odata.type": "#microsoft.graph.onlineMeeting",
        "startDateTime": "2030-03-05T10:30:00+00:00",
        "endDateTime": "2030-03-05T11:30:00+00:00",
    }
    assert graph.state.meetings[meeting_id]["startDateTime"].startswith("2030-03-05T10:30:00")


def test_rescheduling_a_deleted_meeting_is_permanent(graph: GraphEmulator) -> None:
    """A 404 on update says the meeting is gone: retrying cannot help."""

    async def scenario() -> None:
        async with graph_ports(graph.base_url) as ports:
            await ports.meetings.update_times(ORGANIZER, "no-such-meeting", START, START + timedelta(hours=1))

    with pytest.raises(PermanentGatewayError) as caught:
        asyncio.run(scenario())
    assert caught.value.status == 404


def test_deleting_twice_is_not_an_error(graph: GraphEmulator) -> None:
    """Cancel deletes the meeting; a retried delete meets 404 and is still a success."""

    async def scenario() -> None:
        async with graph_ports(graph.base_url) as ports:
            meeting = await ports.meetings.create_or_get(meeting_request())
            await ports.meetings.delete(ORGANIZER, meeting.meeting_id)
            await ports.meetings.delete(ORGANIZER, meeting.meeting_id)

    asyncio.run(scenario())

    assert graph.state.meetings == {}
    assert [r.status for r in graph.state.received("DELETE")] == [204, 404]


def test_naive_times_are_refused_before_calling_graph(graph: GraphEmulator) -> None:
    """Graph would read a naive time as UTC; the adapter insists on aware times instead."""
    request = meeting_request()
    naive = type(request)(
        request.booking_code,
        request.organizer_id,
        request.subject,
        request.start.replace(tzinfo=None),
        request.end.replace(tzinfo=None),
    )

    async def scenario() -> None:
        async with graph_ports(graph.base_url) as ports:
            await ports.meetings.create_or_get(naive)

    with pytest.raises(ValueError, match="timezone-aware"):
        asyncio.run(scenario())
    assert graph.state.received() == []


def test_warm_up_loads_the_sdk_without_network_or_warnings() -> None:
    """warm_up() is safe to call off the request path: no I/O, no warnings, repeatable."""
    import sys

    from adapters.graph import warm_up

    warm_up()
    warm_up()
    assert "msgraph.generated.models.online_meeting" in sys.modules
