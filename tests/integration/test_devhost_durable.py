"""Durable patterns run on the devhost engine (the SDK's own replay code, history in Azurite)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from devhost.testing import DevhostProcess
from tests.integration.durable_samples.helpers import SAMPLE_APP, side_effects

API = "/runtime/webhooks/durabletask"


def start_via_app(
    devhost: DevhostProcess, name: str, input: Any = None, instance_id: str | None = None
) -> str:
    path = f"/api/start/{name}" + (f"/{instance_id}" if instance_id else "")
    r = devhost.post(path, key=True, json=input)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def test_function_chaining_passes_each_result_on(devhost: DevhostProcess) -> None:
    """Three activities in a row (sync and async) feed each other; the output is their results."""
    instance = start_via_app(devhost, "chain")
    devhost.wait_idle()
    status = devhost.status(instance, show_history=True)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == ["A", "AB", "ABC"]
    # The host's shape: TaskScheduled folded into TaskCompleted, orchestrator events dropped.
    kinds = [e["EventType"] for e in status["historyEvents"]]
    assert kinds == [
        "ExecutionStarted",
        "TaskCompleted",
        "TaskCompleted",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    assert [e.get("FunctionName") for e in status["historyEvents"][1:4]] == ["shout"] * 3


def test_fan_out_runs_activities_concurrently(
    devhost: DevhostProcess, storage_connection_string: str
) -> None:
    """Five 0.5 s activities overlap in time, and task_all gathers every result."""
    instance = start_via_app(devhost, "fan_out", 5)
    devhost.wait_idle()
    status = devhost.status(instance)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == [f"s{i} done" for i in range(5)]
    rows = side_effects(storage_connection_string, instance)
    assert sorted(r["Step"] for r in rows) == [f"s{i}" for i in range(5)]
    finished = sorted(r["Finished"] for r in rows)
    assert finished[-1] - finished[0] < 0.4, "the activities ran one after another"


def test_host_json_limits_the_activities_that_run_at_once(storage_connection_string: str) -> None:
    """durableTask.maxConcurrentActivityFunctions holds, as on Azure: overridden to 2 by an app
    setting (AzureFunctionsJobHost__…), five 0.5 s activities run in three waves, not together;
    the rest wait in the queue and every one still runs once."""
    limit = {"AzureFunctionsJobHost__extensions__durableTask__maxConcurrentActivityFunctions": "2"}
    with DevhostProcess(SAMPLE_APP, storage=storage_connection_string, clock="frozen", env=limit) as host:
        instance = start_via_app(host, "fan_out", 5)
        host.wait_idle()
        assert host.status(instance)["runtimeStatus"] == "Completed"
    rows = side_effects(storage_connection_string, instance)
    assert sorted(r["Step"] for r in rows) == [f"s{i}" for i in range(5)]
    finished = sorted(r["Finished"] for r in rows)
    assert finished[-1] - finished[0] >= 0.9, "more than two activities ran at once"


def test_a_limit_that_is_not_positive_stops_the_host_at_start(storage_connection_string: str) -> None:
    """The extension refuses maxConcurrentActivityFunctions <= 0 when the host starts
    (DurableTaskOptions.Validate); so does the devhost, naming the setting."""
    bad = {"AzureFunctionsJobHost__extensions__durableTask__maxConcurrentActivityFunctions": "0"}
    host = DevhostProcess(SAMPLE_APP, storage=storage_connection_string, clock="frozen", env=bad)
    try:
        with pytest.raises(
            RuntimeError, match="maxConcurrentActivityFunctions must be a positive integer value"
        ):
            host.start()
    finally:
        host.close()


def test_event_wins_over_the_timer(devhost: DevhostProcess) -> None:
    """Human interaction: the approval event arrives before the timeout; the timer is cancelled."""
    instance = start_via_app(devhost, "approval")
    devhost.wait_idle()
    assert devhost.status(instance)["customStatus"] == "waiting"
    assert devhost.raise_event(instance, "Approved", {"by": "expert"}).status_code == 202
    devhost.wait_idle()
    status = devhost.status(instance)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == {"approved": {"by": "expert"}}
    assert status["customStatus"] == "approved"


def test_timer_wins_when_the_clock_passes_the_deadline(devhost: DevhostProcess) -> None:
    """Human interaction: nobody approves; advancing the frozen clock an hour fires the timeout."""
    instance = start_via_app(devhost, "approval")
    devhost.wait_idle()
    devhost.advance(minutes=59)
    assert devhost.status(instance)["runtimeStatus"] == "Running"
    devhost.advance(minutes=1)
    status = devhost.status(instance)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"]["approved"] is None
    assert status["customStatus"] == "timed out"


def test_event_raised_before_the_orchestrator_waits_is_kept(devhost: DevhostProcess) -> None:
    """An event that arrives early is buffered until wait_for_external_event asks for it."""
    instance = start_via_app(devhost, "waiter")
    assert devhost.raise_event(instance, "Go", 7).status_code == 202
    devhost.wait_idle()
    assert devhost.status(instance)["output"] == 7


def test_continue_as_new_carries_input_and_resets_history(devhost: DevhostProcess) -> None:
    """Each round continues as new with the new input; history holds only the last execution."""
    instance = start_via_app(devhost, "counter", {"total": 0, "rounds": 0})
    devhost.wait_idle()
    for n in (1, 2):
        devhost.raise_event(instance, "Add", n)
        devhost.wait_idle()
        status = devhost.status(instance, show_history=True)
        assert status["runtimeStatus"] == "Running"
        assert status["input"] == {"total": sum(range(1, n + 1)), "rounds": n}
        assert [e["EventType"] for e in status["historyEvents"]] == ["ExecutionStarted"]
    devhost.raise_event(instance, "Add", 3)
    devhost.wait_idle()
    assert devhost.status(instance)["output"] == {"total": 6, "rounds": 3}


def test_continue_as_new_keeps_the_history_rows_as_the_storage_provider_does(
    devhost: DevhostProcess, storage_connection_string: str
) -> None:
    """As DurableTask.AzureStorage: each execution writes its events at their positions over the
    previous one's rows, and a previous execution's rows beyond the new one's length stay (its
    readers skip them). The status shows the current execution's history only."""
    instance = start_via_app(devhost, "counter", {"total": 0, "rounds": 0})
    devhost.wait_idle()
    service = TableServiceClient.from_connection_string(storage_connection_string)
    history = service.get_table_client(f"{devhost.task_hub}History")
    instances = service.get_table_client(f"{devhost.task_hub}Instances")
    first = instances.get_entity(instance, "")["ExecutionId"]
    devhost.raise_event(instance, "Add", 1)
    devhost.wait_idle()
    current = instances.get_entity(instance, "")["ExecutionId"]
    assert current != first
    rows = sorted(
        history.query_entities("PartitionKey eq @pk", parameters={"pk": instance}), key=lambda r: r["RowKey"]
    )
    events = [r for r in rows if r["RowKey"] != "sentinel"]
    ours = [r for r in events if r["ExecutionId"] == current]
    older = [r for r in events if r["ExecutionId"] != current]
    assert [r["RowKey"] for r in ours] == [f"{i:016X}" for i in range(len(ours))]
    assert older, "the first execution was longer: its last rows stay"
    assert {r["ExecutionId"] for r in older} == {first}
    assert min(int(r["RowKey"], 16) for r in older) == len(ours)
    kinds = [e["EventType"] for e in devhost.status(instance, show_history=True)["historyEvents"]]
    assert kinds == ["ExecutionStarted"]


def test_events_after_continue_as_new_go_to_the_new_execution(devhost: DevhostProcess) -> None:
    """Each event in an episode of its own: every one reaches the execution then current."""
    instance = start_via_app(devhost, "counter", {"total": 0, "rounds": 0})
    devhost.wait_idle()
    for n in (10, 20, 30):
        devhost.raise_event(instance, "Add", n)
        devhost.wait_idle()
    assert devhost.status(instance)["output"] == {"total": 60, "rounds": 3}


def test_events_in_the_episode_that_continues_as_new_are_dropped(devhost: DevhostProcess) -> None:
    """Three events delivered together (held while suspended): the orchestrator consumes one and
    continues as new; the other two are discarded with the old execution, as the extension's
    ContinueAsNew does (preserveUnprocessedEvents false)."""
    instance = start_via_app(devhost, "counter", {"total": 0, "rounds": 0})
    devhost.wait_idle()
    api = f"/runtime/webhooks/durabletask/instances/{instance}"
    assert devhost.post(f"{api}/suspend").status_code == 202
    devhost.wait_idle()
    for n in (10, 20, 30):
        devhost.raise_event(instance, "Add", n)
    assert devhost.post(f"{api}/resume").status_code == 202
    devhost.wait_idle()
    status = devhost.status(instance)
    assert status["runtimeStatus"] == "Running"
    assert status["input"] == {"total": 10, "rounds": 1}


def test_activity_retry_until_success_and_until_exhausted(
    devhost: DevhostProcess, storage_connection_string: str
) -> None:
    """call_activity_with_retry: two failures then success; a hopeless one fails after its attempts."""
    instance = start_via_app(devhost, "retrying")
    devhost.wait_idle()
    for _ in range(4):  # retry timers are 1 s on the frozen clock
        devhost.advance(seconds=1)
    status = devhost.status(instance, show_history=True)
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"]["attempts"] == 3
    assert "nope x" in status["output"]["error"]
    assert len(side_effects(storage_connection_string, instance)) == 3
    kinds = [e["EventType"] for e in status["historyEvents"]]
    assert kinds.count("TaskFailed") == 4  # flaky twice, always_fails twice
    assert kinds.count("TimerFired") == 4  # a timer after each failure, the last one included


def test_orchestrator_exception_fails_the_instance(devhost: DevhostProcess) -> None:
    """An exception in the orchestrator makes the instance Failed with its message."""
    instance = start_via_app(devhost, "failing")
    devhost.wait_idle()
    status = devhost.status(instance)
    assert status["runtimeStatus"] == "Failed"
    assert "the orchestrator gave up" in status["output"]


def test_sub_orchestration_result_reaches_the_parent(devhost: DevhostProcess) -> None:
    """call_sub_orchestrator starts a child instance and returns its output."""
    instance = start_via_app(devhost, "parent")
    devhost.wait_idle()
    assert devhost.status(instance)["output"] == {"child": ["A", "AB", "ABC"]}


def test_long_timer_is_split_and_fires_after_ten_days(devhost: DevhostProcess) -> None:
    """A 10-day timer (longer than the provider's 6-day limit) works through the V3 schema."""
    instance = start_via_app(devhost, "long_wait")
    devhost.wait_idle()
    devhost.advance(days=9)
    assert devhost.status(instance)["runtimeStatus"] == "Running"
    devhost.advance(days=1)
    assert devhost.status(instance)["output"] == "woke"


def test_client_terminate_status_and_purge(devhost: DevhostProcess) -> None:
    """The SDK client's terminate, get_status and purge_instance_history work against the host."""
    instance = start_via_app(devhost, "waiter")
    devhost.wait_idle()
    assert devhost.post(f"/api/client/terminate/{instance}").json() == "ok"
    devhost.wait_idle()
    status = devhost.post(f"/api/client/status/{instance}").json()
    assert status["runtimeStatus"] == "Terminated"
    assert status["output"] == "stopped by test"
    assert devhost.raise_event(instance, "Go").status_code == 410
    assert devhost.post(f"/api/client/purge/{instance}").json() == 1
    assert devhost.post(f"/api/client/status/{instance}").json() is None
    assert devhost.status(instance) == {}


def test_query_by_status_with_paging(devhost: DevhostProcess) -> None:
    """Instances can be listed by runtime status, through the client and page by page."""
    running = [start_via_app(devhost, "waiter") for _ in range(3)]
    devhost.wait_idle()
    listed = devhost.post("/api/client/by-status/", params={"status": "Running"}).json()
    assert set(running) <= set(listed)
    completed = devhost.post("/api/client/by-status/", params={"status": "Completed"}).json()
    assert not set(running) & set(completed)
    seen, token = [], None
    while True:
        headers = {"x-ms-continuation-token": token} if token else {}
        r = devhost.get(f"{API}/instances", params={"runtimeStatus": "Running", "top": "2"}, headers=headers)
        page = r.json()
        assert len(page) <= 2
        seen += [s["instanceId"] for s in page]
        token = r.headers.get("x-ms-continuation-token")
        if not token:
            break
    assert set(running) <= set(seen)
    for instance in running:
        devhost.post(f"{API}/instances/{instance}/terminate", params={"reason": "cleanup"})
    devhost.wait_idle()


def test_raise_event_to_unknown_instance_is_404(devhost: DevhostProcess) -> None:
    """The management API and the client both report an unknown instance as 404."""
    assert devhost.raise_event("no-such-instance", "Go").status_code == 404
    assert devhost.post("/api/events/no-such-instance/Go", json=1).status_code == 404


def test_starting_a_running_id_conflicts_and_a_finished_one_restarts(devhost: DevhostProcess) -> None:
    """A running instance id cannot be started twice (the host's OrchestrationAlreadyExistsException
    reaches its catch-all: 500); a completed one starts afresh."""
    instance = f"fixed-{uuid.uuid4().hex[:8]}"
    devhost.start_orchestration("waiter", instance)
    devhost.wait_idle()
    r = devhost.post(f"{API}/orchestrators/waiter/{instance}")
    assert r.status_code == 500
    assert r.json() == {
        "Message": "Something went wrong while processing your request",
        "ExceptionMessage": "An Orchestration instance with the status Running already exists.",
    }
    assert devhost.status(instance)["runtimeStatus"] == "Running"
    devhost.raise_event(instance, "Go", 1)
    devhost.wait_idle()
    assert devhost.status(instance)["output"] == 1
    devhost.start_orchestration("chain", instance)
    devhost.wait_idle()
    assert devhost.status(instance)["output"] == ["A", "AB", "ABC"]


def test_unknown_orchestrator_is_400(devhost: DevhostProcess) -> None:
    """Starting a function that is not an orchestrator is refused."""
    assert devhost.post(f"{API}/orchestrators/hello").status_code == 400


def test_clock_cannot_go_backwards(devhost: DevhostProcess) -> None:
    """The dev clock only moves forward."""
    assert devhost.post("/dev/clock/set", json={"now": "2000-01-01T00:00:00Z"}).status_code == 400
