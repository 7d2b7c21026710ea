"""Kill -9 the local host in the middle of an appointment's lifecycle; it must finish after a restart."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from functools import partial

import httpx
import pytest

from adapters.tables import TableRepository
from devhost.azurite import free_port
from devhost.graph_emulator import GraphEmulator
from devhost.seed import seed
from devhost.testing import DevhostProcess
from tests.e2e.conftest import GRAPH_SECRET, MATLEENA, Stack


@pytest.fixture
def crashable(storage_connection_string: str) -> Iterator[Stack]:
    """A stack of its own (the test kills its host), on the session's Azurite."""
    repo = TableRepository.from_connection_string(storage_connection_string)
    seed(repo)
    port = free_port()
    with GraphEmulator() as graph:
        env = {
            "DEV_MODE": "true",
            "GRAPH_BASE_URL": graph.base_url,
            "GRAPH_SENDER_MAILBOX": "neuvottelut@pankki.example",
            "GRAPH_NOTIFICATION_URL": f"http://127.0.0.1:{port}/api/graph/notifications",
            "GRAPH_CLIENT_STATE": GRAPH_SECRET,
        }
        with DevhostProcess(storage=storage_connection_string, port=port, env=env) as host:
            yield Stack(host, graph, repo)


def meetings_for(stack: Stack, code: str) -> list[dict[str, object]]:
    return [m for m in stack.graph.state.meetings.values() if m.get("externalId") == code]


def test_a_crash_while_the_meeting_is_being_created_loses_nothing(crashable: Stack) -> None:
    """Killed while createOrGet is in flight: after the restart the window opens with one meeting."""
    stack = crashable
    who = f"cust-{uuid.uuid4().hex[:8]}"
    booked = stack.book(who)
    code = booked["bookingCode"]
    httpx.post(
        f"{stack.graph.origin}/_emulator/faults",
        json={"path": "onlineMeetings/createOrGet", "delayMs": 20_000, "count": 1},
    ).raise_for_status()
    target = datetime.fromisoformat(booked["start"].replace("Z", "+00:00")) - timedelta(minutes=15)

    def advance() -> None:
        with contextlib.suppress(httpx.HTTPError, AssertionError):
            stack.host.advance((target - stack.now()).total_seconds())

    mover = threading.Thread(target=advance, daemon=True)
    mover.start()
    deadline = time.monotonic() + 30
    while not stack.graph.state.received("POST", "createOrGet") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.graph.state.received("POST", "createOrGet"), "the activity never called Graph"
    stack.host.kill()
    mover.join(timeout=5)
    stack.host.restart()
    assert stack.phase(code) == "join_open"
    assert len(meetings_for(stack, code)) == 1
    record = stack.repo.get_by_code(code)
    assert record is not None and record.join_url


def test_kill_mid_lifecycle_then_the_lifecycle_completes(crashable: Stack) -> None:
    """Killed in the lobby: the restarted host carries on to verified and ended; nothing twice."""
    stack = crashable
    who = f"cust-{uuid.uuid4().hex[:8]}"
    booked = stack.book(who)
    code = booked["bookingCode"]
    target = datetime.fromisoformat(booked["start"].replace("Z", "+00:00")) - timedelta(minutes=15)
    stack.host.advance((target - stack.now()).total_seconds())
    assert stack.as_customer(who, "POST", f"/api/appointments/{code}/join").status_code == 200
    stack.host.kill()
    stack.host.restart()
    assert stack.phase(code) == "lobby"
    r = stack.as_expert(MATLEENA.expert_id, "POST", f"/api/expert/appointments/{code}/identification-code")
    assert r.status_code == 201
    stack.host.kill()
    stack.host.restart()
    assert stack.phase(code) == "code_issued"
    v = stack.as_customer(
        who, "POST", f"/api/appointments/{code}/identity-verification", json={"code": r.json()["code"]}
    )
    assert v.status_code == 200
    assert stack.phase(code) == "verified"
    stack.host.kill()
    stack.host.restart()
    # Nobody ends it: the end-plus-grace timer, armed before the crash, fires after the restart.
    stack.host.advance(minutes=15 + 45 + 30)
    assert stack.phase(code) == "ended"
    assert stack.runtime_status(code) == "Completed"
    assert len(meetings_for(stack, code)) == 1
    assert stack.graph.state.duplicate_mail() == {}


def _in_window(stack: Stack, who: str) -> str:
    booked = stack.book(who)
    target = datetime.fromisoformat(booked["start"].replace("Z", "+00:00")) - timedelta(minutes=15)
    stack.host.advance((target - stack.now()).total_seconds())
    return str(booked["bookingCode"])


def _crashing_on(stack: Stack, event: str, request: Callable[[], httpx.Response]) -> None:
    """Restart the host so that it exits right after committing ``event``; send the request; it dies."""
    stack.host.env["DEV_CRASH_AFTER_COMMIT"] = event
    stack.host.restart()
    with pytest.raises(httpx.TransportError):
        request()
    assert stack.host.process is not None and stack.host.process.wait(timeout=10) == 70
    del stack.host.env["DEV_CRASH_AFTER_COMMIT"]
    stack.host.start()
    stack.host.wait_idle()  # the work the crash interrupted, redone


# For each meeting event a trigger raises: the steps before, the request that commits it, the phase it
# leads to, and what a retry of that request answers (the same as the first attempt would have).
def _joined(stack: Stack, who: str, code: str) -> httpx.Response:
    return stack.as_customer(who, "POST", f"/api/appointments/{code}/join")


def _issued(stack: Stack, who: str, code: str) -> httpx.Response:
    return stack.as_expert(MATLEENA.expert_id, "POST", f"/api/expert/appointments/{code}/identification-code")


def _verify(stack: Stack, who: str, code: str, secret: str) -> httpx.Response:
    path = f"/api/appointments/{code}/identity-verification"
    return stack.as_customer(who, "POST", path, json={"code": secret})


def _wrong(secret: str) -> str:
    return "000000" if secret != "000000" else "111111"


def _ended(stack: Stack, who: str, code: str) -> httpx.Response:
    return stack.as_expert(MATLEENA.expert_id, "POST", f"/api/expert/appointments/{code}/end")


@pytest.mark.parametrize(
    ("event", "phase"),
    [
        ("CustomerJoined", "lobby"),
        ("CodeIssued", "code_issued"),
        ("CodeVerified", "verified"),
        ("CodeLocked", "lobby"),
        ("MeetingEnded", "ended"),
    ],
)
def test_a_crash_between_the_commit_and_the_raise_loses_no_event(
    crashable: Stack, event: str, phase: str
) -> None:
    """The host exits right after a trigger committed its event: the restarted lifecycle still gets it."""
    stack = crashable
    who = f"cust-{uuid.uuid4().hex[:8]}"
    code = _in_window(stack, who)
    retry: Callable[[], httpx.Response]
    if event == "CustomerJoined":
        retry = partial(_joined, stack, who, code)
        expected = 200
    else:
        assert _joined(stack, who, code).status_code == 200
        if event == "CodeIssued":
            retry, expected = partial(_issued, stack, who, code), 201
        else:
            issued = _issued(stack, who, code)
            assert issued.status_code == 201
            secret = str(issued.json()["code"])
            stack.host.wait_idle()
            if event == "CodeVerified":
                retry, expected = partial(_verify, stack, who, code, secret), 200
            elif event == "CodeLocked":
                for _ in range(2):
                    assert _verify(stack, who, code, _wrong(secret)).status_code == 422
                retry, expected = partial(_verify, stack, who, code, _wrong(secret)), 423
            else:
                assert _verify(stack, who, code, secret).status_code == 200
                retry, expected = partial(_ended, stack, who, code), 202
    _crashing_on(stack, event, retry)
    # Nobody retries: the lifecycle's next look at its outbox (a couple of minutes) applies the event.
    stack.host.advance(minutes=2)
    assert stack.phase(code) == phase
    if event == "MeetingEnded":
        assert stack.runtime_status(code) == "Completed"
    assert stack.repo.pending(code) == []  # acknowledged
    # A retry of the request that died answers what it would have answered.
    assert retry().status_code == expected
    stack.host.wait_idle()
    if event != "CodeIssued":  # a retried issue is a new code, as asking again means
        assert stack.phase(code) == phase
    if event == "CodeLocked":
        sent = stack.repo.table("Notifications").query_entities(
            "PartitionKey eq @pk", parameters={"pk": code}
        )
        assert [r["Recipient"] for r in sent if r["Kind"] == "code_locked"] == ["expert"]
