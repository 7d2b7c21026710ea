"""kill -9 the devhost at awkward moments: every instance still finishes, nothing runs twice."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from devhost.testing import DevhostProcess
from tests.integration.durable_samples.helpers import SAMPLE_APP, side_effects


@pytest.fixture
def crashable(storage_connection_string: str) -> Iterator[DevhostProcess]:
    with DevhostProcess(SAMPLE_APP, storage=storage_connection_string, clock="frozen") as host:
        yield host


def steps(connection_string: str, instance: str) -> list[str]:
    return sorted(r["Step"] for r in side_effects(connection_string, instance))


def test_orchestration_survives_kills_during_an_activity_and_a_timer(
    crashable: DevhostProcess, storage_connection_string: str
) -> None:
    """Killed mid-activity and again while a timer waits, the flow completes with one A and one B."""
    instance = crashable.start_orchestration("crash_flow")
    time.sleep(0.6)  # activity A sleeps 2 s before it writes its side effect
    assert steps(storage_connection_string, instance) == []
    crashable.restart()  # SIGKILL, then start on the same storage
    crashable.wait_idle()  # A runs again (at least once) and its result is recorded
    status = crashable.status(instance, show_history=True)
    assert status["runtimeStatus"] == "Running"
    assert [e["EventType"] for e in status["historyEvents"]].count("TimerCreated") == 1
    assert steps(storage_connection_string, instance) == ["A"]

    crashable.restart()  # the timer is pending: it must be re-armed, A must not run again
    crashable.wait_idle()
    assert steps(storage_connection_string, instance) == ["A"]
    crashable.advance(hours=1)
    status = crashable.status(instance)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == "done"
    assert steps(storage_connection_string, instance) == ["A", "B"]


def test_raised_event_survives_a_kill(crashable: DevhostProcess) -> None:
    """An event acknowledged with 202 is delivered even if the host dies right after."""
    instance = crashable.start_orchestration("waiter")
    crashable.wait_idle()
    assert crashable.raise_event(instance, "Go", "kept").status_code == 202
    crashable.restart()
    crashable.wait_idle()
    assert crashable.status(instance)["output"] == "kept"


def test_late_timer_fires_at_once_after_restart(crashable: DevhostProcess) -> None:
    """A timer that fell due while the host was down fires as soon as it comes back."""
    instance = crashable.start_orchestration("approval")
    crashable.wait_idle()
    crashable.kill()
    crashable.start()
    # The frozen clock restarts at wall time; push it past the deadline: the timer is late.
    crashable.advance(hours=2)
    assert crashable.status(instance)["customStatus"] == "timed out"


def test_started_but_never_run_instance_resumes(crashable: DevhostProcess) -> None:
    """Pending instances (started, killed before their first episode committed) run after restart."""
    ids = [crashable.start_orchestration("chain") for _ in range(5)]
    crashable.restart()
    crashable.wait_idle()
    assert {crashable.status(i)["runtimeStatus"] for i in ids} == {"Completed"}
