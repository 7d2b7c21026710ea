"""What passes on the devhost passes on Azure: one small orchestration per point where the local
durable engine once differed from Durable Functions + DurableTask.AzureStorage (issue 11).

Each test asserts the host's behaviour, as its source has it (files cited in devhost/durable/).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from devhost import azurite
from devhost.testing import DevhostProcess
from tests.integration.durable_samples.helpers import SAMPLE_APP
from tests.integration.durabletask_reader import DurableTaskReader
from tests.integration.storage_proxy import proxying

API = "/runtime/webhooks/durabletask"


def start(devhost: DevhostProcess, name: str, input: Any = None, instance_id: str | None = None) -> str:
    """Start through the app's own HTTP trigger (the SDK client, as the app does)."""
    path = f"/api/start/{name}" + (f"/{instance_id}" if instance_id else "")
    r = devhost.post(path, key=True, json=input)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def run(devhost: DevhostProcess, name: str, input: Any = None) -> dict[str, Any]:
    instance = start(devhost, name, input)
    devhost.wait_idle()
    return devhost.status(instance)


def tables(connection: str, hub: str) -> tuple[Any, Any]:
    service = TableServiceClient.from_connection_string(connection)
    return service.get_table_client(f"{hub}Instances"), service.get_table_client(f"{hub}History")


# -- 1. non-determinism -----------------------------------------------------------------------
def test_replay_that_schedules_another_activity_fails_the_orchestration(devhost: DevhostProcess) -> None:
    """whisper on the first run, shout on replay: DurableTask's NonDeterministicOrchestrationException."""
    status = run(devhost, "nondeterministic")
    assert status["runtimeStatus"] == "Failed"
    assert status["output"].startswith("Non-Deterministic workflow detected: ")
    assert "'whisper'" in status["output"] and "'shout'" in status["output"]


# -- 2. raised events parsed once --------------------------------------------------------------
@pytest.mark.parametrize(("body", "expected"), [('"9361"', "9361"), ('"true"', "true"), ("9361", 9361)])
def test_raised_event_body_is_parsed_once(devhost: DevhostProcess, body: str, expected: Any) -> None:
    """A JSON string stays a string: the host parses the body once (ConvertToJToken)."""
    instance = start(devhost, "waiter")
    devhost.wait_idle()
    r = devhost.post(
        f"{API}/instances/{instance}/raiseEvent/Go",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 202
    devhost.wait_idle()
    assert devhost.status(instance)["output"] == expected


def test_event_from_the_python_client_arrives_as_the_json_text_it_sent(devhost: DevhostProcess) -> None:
    """The SDK client json.dumps the data and posts it as JSON: one parse leaves the text."""
    instance = start(devhost, "waiter")
    devhost.wait_idle()
    assert devhost.post(f"/api/events/{instance}/Go", json={"a": 1}).status_code == 202
    devhost.wait_idle()
    assert devhost.status(instance)["output"] == json.dumps({"a": 1})


def test_raise_event_needs_json_content(devhost: DevhostProcess) -> None:
    """Only application/json request content is supported (400), as the host says."""
    instance = start(devhost, "waiter")
    devhost.wait_idle()
    r = devhost.post(
        f"{API}/instances/{instance}/raiseEvent/Go", content="1", headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 400
    assert r.json() == {"Message": "Only application/json request content is supported"}


# -- 3. limits ----------------------------------------------------------------------------------
def test_custom_status_over_16_kb_fails_the_orchestration(devhost: DevhostProcess) -> None:
    """20,000 characters of custom status: the extension's 16 KB (UTF-16) cap fails the orchestrator."""
    status = run(devhost, "loud_status", 20_000)
    assert status["runtimeStatus"] == "Failed"
    assert status["output"] == (
        "Orchestrator function 'loud_status' failed: The UTF-16 size of the JSON-serialized payload "
        "must not exceed 16 KB. The current payload size is 39 KB."
    )
    assert run(devhost, "loud_status", 8_000)["runtimeStatus"] == "Completed"


def test_large_input_result_and_output_go_to_blobs(
    devhost: DevhostProcess, storage_connection_string: str
) -> None:
    """100,000 characters in, out and through an activity: the provider's large-message blobs."""
    data = "i" * 99_990 + "0123456789"
    instance = start(devhost, "echo_big", data)
    devhost.wait_idle()
    status = devhost.status(instance)
    assert status["runtimeStatus"] == "Completed", status
    # The SDK client sends json.dumps(input) as JSON; the host parses once and keeps that text.
    assert status["input"] == json.dumps(data)
    assert status["output"] == {"input": 100_000, "result": 100_000, "tail": "0123456789"}
    instances, history = tables(storage_connection_string, devhost.task_hub)
    row = instances.get_entity(instance, "")
    assert row["Input"].startswith("http://") and "-largemessages/" in row["Input"]
    rows = history.query_entities("PartitionKey eq @p and RowKey ne 'sentinel'", parameters={"p": instance})
    events = {e["EventType"]: e for e in rows}
    assert events["ExecutionStarted"]["Input"] == "" and events["ExecutionStarted"]["InputBlobName"]
    assert events["TaskCompleted"]["ResultBlobName"].endswith("-Result.json.gz")
    container = BlobServiceClient.from_connection_string(storage_connection_string).get_container_client(
        f"{devhost.task_hub.lower()}-largemessages"
    )
    names = [b.name for b in container.list_blobs(name_starts_with=f"{instance}/")]
    assert any(n.endswith("-Result.json.gz") for n in names)
    assert not any(n.endswith("-Body.json.gz") for n in names), "an applied message's blob was left behind"
    reader = DurableTaskReader(storage_connection_string, devhost.task_hub)
    started = next(e for e in reader.instance(instance).history if e["EventType"] == "ExecutionStarted")
    assert json.loads(json.loads(started["Input"])) == data


# -- 4. the management API ------------------------------------------------------------------------
def test_management_api_requires_the_system_key(devhost: DevhostProcess) -> None:
    """No key, no answer (401); ?code= or x-functions-key opens it."""
    assert devhost.get(f"{API}/instances", key=False).status_code == 401
    assert devhost.get(f"{API}/instances", key=False, params={"code": "wrong"}).status_code == 401
    assert (
        devhost.get(f"{API}/instances", key=False, params={"code": devhost.function_key}).status_code == 200
    )


def test_check_status_urls_from_the_app_carry_the_code(devhost: DevhostProcess) -> None:
    """create_check_status_response's URLs work as they are, without adding the key."""
    r = devhost.post("/api/start/chain", key=True)
    payload = r.json()
    assert f"code={devhost.function_key}" in payload["statusQueryGetUri"]
    assert set(payload) >= {"sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri", "restartPostUri"}
    assert {"suspendPostUri", "resumePostUri"} <= set(payload)
    devhost.wait_idle()
    url = urlsplit(payload["statusQueryGetUri"])
    status = httpx.get(f"{devhost.base_url}{url.path}?{url.query}")
    assert status.status_code == 200
    assert status.json()["output"] == ["A", "AB", "ABC"]


def test_start_and_wait_answers_with_the_output_or_the_check_status_payload(devhost: DevhostProcess) -> None:
    """createAndWaitOnNewInstancePostUri: the output if the instance completes in time, else 202."""
    r = devhost.post(f"{API}/orchestrators/chain", params={"timeout": "20", "pollingInterval": "0.05"})
    assert (r.status_code, r.json()) == (200, ["A", "AB", "ABC"])
    r = devhost.post(f"{API}/orchestrators/waiter", params={"timeout": "0.3", "pollingInterval": "0.1"})
    assert r.status_code == 202
    assert "statusQueryGetUri" in r.json()
    devhost.post(f"{API}/instances/{r.json()['id']}/terminate")
    devhost.wait_idle()


def test_suspend_holds_events_until_resume(devhost: DevhostProcess) -> None:
    """A suspended instance keeps its events; resume delivers them."""
    instance = start(devhost, "waiter")
    devhost.wait_idle()
    assert devhost.post(f"{API}/instances/{instance}/suspend", params={"reason": "hold"}).status_code == 202
    devhost.wait_idle()
    assert devhost.status(instance)["runtimeStatus"] == "Suspended"
    assert devhost.raise_event(instance, "Go", 5).status_code == 202
    devhost.wait_idle()
    assert devhost.status(instance)["runtimeStatus"] == "Suspended"
    assert devhost.post(f"{API}/instances/{instance}/resume", params={"reason": "go"}).status_code == 202
    devhost.wait_idle()
    status = devhost.status(instance)
    assert (status["runtimeStatus"], status["output"]) == ("Completed", 5)


def test_rewind_runs_the_failed_activity_again(devhost: DevhostProcess) -> None:
    """A Failed instance rewound retries what failed and can complete."""
    instance = start(devhost, "fails_once")
    devhost.wait_idle()
    assert devhost.status(instance)["runtimeStatus"] == "Failed"
    assert devhost.post(f"{API}/instances/{instance}/rewind", params={"reason": "retry"}).status_code == 202
    devhost.wait_idle()
    status = devhost.status(instance)
    assert (status["runtimeStatus"], status["output"]) == ("Completed", "second call works")
    assert devhost.post(f"{API}/instances/{instance}/rewind").status_code == 410


def test_restart_starts_the_same_orchestration_again(devhost: DevhostProcess) -> None:
    """restart: a new id by default, the same id with restartWithNewInstanceId=false."""
    instance = start(devhost, "chain")
    devhost.wait_idle()
    r = devhost.post(f"{API}/instances/{instance}/restart")
    assert r.status_code == 202
    again = r.json()["id"]
    assert again != instance
    r = devhost.post(f"{API}/instances/{instance}/restart", params={"restartWithNewInstanceId": "false"})
    assert r.json()["id"] == instance
    devhost.wait_idle()
    assert devhost.status(again)["output"] == devhost.status(instance)["output"] == ["A", "AB", "ABC"]
    assert devhost.post(f"{API}/instances/nobody/restart").status_code == 400


def test_show_history_is_the_hosts_shape(devhost: DevhostProcess) -> None:
    """No orchestrator events; TaskScheduled folded into its result; results parsed."""
    instance = start(devhost, "chain")
    devhost.wait_idle()
    events = devhost.status(instance, show_history=True)["historyEvents"]
    assert [e["EventType"] for e in events] == ["ExecutionStarted"] + ["TaskCompleted"] * 3 + [
        "ExecutionCompleted"
    ]
    first = events[1]
    assert first["FunctionName"] == "shout" and first["Result"] == "A" and "ScheduledTime" in first
    assert "TaskScheduledId" not in first and "EventId" not in first
    assert events[-1]["Result"] == ["A", "AB", "ABC"]


def test_query_defaults_show_input_and_always_send_a_continuation_header(devhost: DevhostProcess) -> None:
    """showInput defaults to true; x-ms-continuation-token comes on every page; a bad date is ignored."""
    prefix = f"q{uuid.uuid4().hex[:6]}-"
    for n in range(3):
        start(devhost, "waiter", {"n": n}, instance_id=f"{prefix}{n}")
    devhost.wait_idle()
    r = devhost.get(f"{API}/instances", params={"instanceIdPrefix": prefix, "createdTimeFrom": "not a date"})
    assert r.status_code == 200
    assert "x-ms-continuation-token" in r.headers
    assert sorted(json.loads(s["input"])["n"] for s in r.json()) == [0, 1, 2]
    seen, token = [], None
    while True:
        r = devhost.get(
            f"{API}/instances",
            params={"instanceIdPrefix": prefix, "top": "2", "showInput": "false"},
            headers={"x-ms-continuation-token": token} if token else {},
        )
        assert all(s["input"] is None for s in r.json())
        seen += [s["instanceId"] for s in r.json()]
        token = r.headers["x-ms-continuation-token"]
        if not token:
            break
    assert sorted(seen) == [f"{prefix}{n}" for n in range(3)]
    for n in range(3):
        devhost.post(f"{API}/instances/{prefix}{n}/terminate")
    devhost.wait_idle()


def test_purge_many_needs_created_time_from(devhost: DevhostProcess) -> None:
    """DELETE /instances without createdTimeFrom is a 400, as the host answers."""
    r = devhost.request("DELETE", f"{API}/instances")
    assert r.status_code == 400
    assert r.json() == {"Message": "Please provide value for 'createdTimeFrom' parameter."}


def test_unknown_instance_is_an_empty_404(devhost: DevhostProcess) -> None:
    """request.CreateResponse(NotFound): no body."""
    r = devhost.get(f"{API}/instances/no-such-{uuid.uuid4().hex}")
    assert (r.status_code, r.content) == (404, b"")


def test_caller_chosen_ids_with_a_backslash_are_refused(devhost: DevhostProcess) -> None:
    """DurableClient.StartNewAsync refuses / \\ # ? and control characters (400)."""
    r = devhost.post(f"{API}/orchestrators/chain/bad%5Cid")
    assert r.status_code == 400
    assert "must not contain" in r.json()["ExceptionMessage"]


# -- 5. the task hub layout ---------------------------------------------------------------------
def test_task_hub_rows_are_as_durabletask_azure_storage_writes_them(
    devhost: DevhostProcess, storage_connection_string: str
) -> None:
    """A timer and two sub-orchestrations, one with / # ? in its id: DurableTask's rows, read by its rules."""
    instance = start(devhost, "parent_default_id")
    devhost.wait_idle()
    devhost.advance(minutes=1)
    status = devhost.status(instance)
    assert status["runtimeStatus"] == "Completed", status
    reader = DurableTaskReader(storage_connection_string, devhost.task_hub)
    parent = reader.instance(instance)
    row = parent.row
    assert (row["Generation"], row["TaskHubName"], row["Tags"], row["CustomStatus"]) == (
        0,
        devhost.task_hub,
        "null",
        "null",
    )
    kinds = [e["EventType"] for e in parent.history]
    assert kinds[-2:] == ["ExecutionCompleted", "OrchestratorCompleted"]
    timer = next(e for e in parent.history if e["EventType"] == "TimerCreated")
    assert isinstance(timer["FireAt"], datetime)
    children = [
        e["InstanceId"] for e in parent.history if e["EventType"] == "SubOrchestrationInstanceCreated"
    ]
    assert children[0] == f"{row['ExecutionId']}:1"  # executionId:sequence number
    assert children[1] == f"{instance}#odd/child?"
    for child_id in children:
        child = reader.instance(child_id)
        started = child.history[1]
        assert started["ParentInstance"]["OrchestrationInstance"] == {
            "InstanceId": instance,
            "ExecutionId": row["ExecutionId"],
        }
        assert started["ParentInstance"]["Name"] == "parent_default_id"
        assert child.row["RuntimeStatus"] == "Completed"
    instances, _ = tables(storage_connection_string, devhost.task_hub)
    assert instances.get_entity(f"{instance}^2odd^0child^3", "")["Name"] == "chain"


def test_failure_output_is_plain_text(devhost: DevhostProcess, storage_connection_string: str) -> None:
    """The instance's Output holds the failure message itself, not a JSON string of it."""
    instance = start(devhost, "failing")
    devhost.wait_idle()
    instances, _ = tables(storage_connection_string, devhost.task_hub)
    output = instances.get_entity(instance, "")["Output"]
    assert output == "Orchestrator function 'failing' failed: ValueError: the orchestrator gave up" or (
        output.startswith("Orchestrator function 'failing' failed: ") and not output.startswith('"')
    )


# -- 6. smaller divergences -----------------------------------------------------------------------
def test_function_names_ignore_case(devhost: DevhostProcess) -> None:
    """MIXED_CASE starts mixed_case, which calls SHOUT for shout."""
    r = devhost.post(f"{API}/orchestrators/MIXED_CASE")
    assert r.status_code == 202
    devhost.wait_idle()
    assert devhost.status(r.json()["id"])["output"] == "CASE"


def test_last_failed_retry_waits_no_further_interval(
    devhost: DevhostProcess, storage_connection_string: str
) -> None:
    """The timer after the last failed attempt fires at once (RetryInterceptor's back-compat timer)."""
    instance = start(devhost, "retrying")
    devhost.wait_idle()
    for _ in range(3):  # the three 1 s retry intervals
        devhost.advance(seconds=1)
    status = devhost.status(instance)
    assert status["runtimeStatus"] == "Completed", status
    _, history = tables(storage_connection_string, devhost.task_hub)
    timers = list(
        history.query_entities(
            "PartitionKey eq @p and EventType eq 'TimerCreated'", parameters={"p": instance}
        )
    )
    assert len(timers) == 4  # flaky: 1 s twice, then success; always_fails: 1 s, then the immediate one
    immediate = [t for t in timers if t["FireAt"] == t["_Timestamp"]]
    assert len(immediate) == 1


# -- 7. a failed commit is retried ------------------------------------------------------------------
@pytest.fixture
def proxied_devhost(azurite_server: azurite.Azurite) -> Iterator[tuple[DevhostProcess, Any]]:
    with proxying(azurite_server.port) as proxy:
        storage = azurite.connection_string(proxy.port, blob_port=azurite_server.blob_port)
        with DevhostProcess(SAMPLE_APP, storage=storage, clock="frozen") as host:
            yield host, proxy


def test_history_write_fault_is_retried_and_the_instance_completes(
    proxied_devhost: tuple[DevhostProcess, Any],
) -> None:
    """The connection drops under the history writes (as Azurite did under load): the episode is
    redone from storage, the instance completes, and /dev/idle waits for it."""
    devhost, proxy = proxied_devhost
    proxy.trip(5, b"$batch", f"{devhost.task_hub}History".encode(), b"PUT ")
    instance = start(devhost, "chain")
    devhost.wait_idle()
    status = devhost.status(instance)
    assert proxy.tripped == 5
    assert (status["runtimeStatus"], status["output"]) == ("Completed", ["A", "AB", "ABC"])
    assert "it is retried from storage" in devhost.output()


# -- 8. kinds of work the devhost does not run ----------------------------------------------------
def test_call_http_fails_the_orchestration_instead_of_hanging(devhost: DevhostProcess) -> None:
    """call_http: a clear failure naming it."""
    status = run(devhost, "http_caller")
    assert status["runtimeStatus"] == "Failed"
    assert "call_http is not supported" in status["output"]
