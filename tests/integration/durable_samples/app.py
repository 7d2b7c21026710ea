"""A small DFApp written for the devhost tests: each orchestration shows one Durable pattern."""

from __future__ import annotations

import json
import os
import time
import typing
import uuid
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.data.tables import TableServiceClient

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

SIDE_EFFECTS = "SampleSideEffects"
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)


def _table() -> Any:
    connection = os.environ["AzureWebJobsStorage"]  # noqa: SIM112 - the Functions setting's name
    service = TableServiceClient.from_connection_string(connection)
    return service.create_table_if_not_exists(SIDE_EFFECTS)


# -- activities ------------------------------------------------------------------------------
@app.activity_trigger(input_name="payload")
def record(payload: typing.Dict[str, Any]) -> str:  # noqa: UP006 - the worker refuses dict[str, Any]
    """Writes one row per execution, so tests count how often an activity really ran."""
    time.sleep(float(payload.get("sleep", 0)))
    _table().create_entity(
        {
            "PartitionKey": payload["key"],
            "RowKey": uuid.uuid4().hex,
            "Step": payload["step"],
            "Started": payload.get("started", 0.0),
            "Finished": time.time(),
        }
    )
    return f"{payload['step']} done"


@app.activity_trigger(input_name="payload")
async def shout(payload: str) -> str:
    return payload.upper()


@app.activity_trigger(input_name="key")
def flaky(key: str) -> int:
    """Fails on its first two attempts (counted in the side-effect table), then succeeds."""
    table = _table()
    table.create_entity({"PartitionKey": key, "RowKey": uuid.uuid4().hex, "Step": "attempt"})
    attempts = len(list(table.query_entities("PartitionKey eq @k", parameters={"k": key})))
    if attempts < 3:
        raise RuntimeError(f"attempt {attempts} fails")
    return attempts


@app.activity_trigger(input_name="key")
def always_fails(key: str) -> None:
    raise ValueError(f"nope {key}")


# -- orchestrators ---------------------------------------------------------------------------
@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    a = yield context.call_activity(shout, "a")
    b = yield context.call_activity(shout, a + "b")
    c = yield context.call_activity("shout", b + "c")
    return [a, b, c]


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    key, n = context.instance_id, context.get_input()
    tasks = [context.call_activity(record, {"key": key, "step": f"s{i}", "sleep": 0.5}) for i in range(n)]
    results = yield context.task_all(tasks)
    return sorted(results)


@app.orchestration_trigger(context_name="context")
def slow_pair(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """Two activities that take 3 s each: long enough to be caught in flight."""
    key = context.instance_id
    tasks = [context.call_activity(record, {"key": key, "step": f"s{i}", "sleep": 3.0}) for i in range(2)]
    results = yield context.task_all(tasks)
    return sorted(results)


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    context.set_custom_status("waiting")
    deadline = context.current_utc_datetime + timedelta(hours=1)
    timer = context.create_timer(deadline)
    approved = context.wait_for_external_event("Approved")
    winner = yield context.task_any([approved, timer])
    if winner == approved:
        timer.cancel()
        context.set_custom_status("approved")
        return {"approved": approved.result}
    context.set_custom_status("timed out")
    return {"approved": None, "at": context.current_utc_datetime.isoformat()}


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    state = context.get_input()
    added = yield context.wait_for_external_event("Add")
    state = {"total": state["total"] + added, "rounds": state["rounds"] + 1}
    if state["rounds"] < 3:
        context.continue_as_new(state)
        return None
    return state


@app.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    attempts = yield context.call_activity_with_retry(flaky, RETRY, context.instance_id)
    try:
        yield context.call_activity_with_retry(always_fails, df.RetryOptions(1000, 2), "x")
    except Exception as exc:
        return {"attempts": attempts, "error": str(exc)[:200]}
    return {"attempts": attempts, "error": None}


@app.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    yield context.call_activity(shout, "x")
    raise ValueError("the orchestrator gave up")


@app.orchestration_trigger(context_name="context")
def waiter(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    value = yield context.wait_for_external_event("Go")
    return value


@app.orchestration_trigger(context_name="context")
def crash_flow(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    key = context.instance_id
    yield context.call_activity(record, {"key": key, "step": "A", "sleep": 2.0})
    yield context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    yield context.call_activity(record, {"key": key, "step": "B"})
    return "done"


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    first = yield context.call_sub_orchestrator("chain")
    return {"child": first}


@app.orchestration_trigger(context_name="context")
def long_wait(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    yield context.create_timer(context.current_utc_datetime + timedelta(days=10))
    return "woke"


@app.activity_trigger(input_name="payload")
def whisper(payload: str) -> str:
    return payload.lower()


@app.activity_trigger(input_name="size")
def big(size: int) -> str:
    """A result larger than a table property holds (the provider moves it to a blob)."""
    return "r" * size


@app.orchestration_trigger(context_name="context")
def nondeterministic(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """Schedules whisper on its first run and shout when it replays: a code change in disguise."""
    name = "shout" if context.is_replaying else "whisper"
    first = yield context.call_activity(name, "X")
    second = yield context.call_activity("shout", first)
    return second


@app.orchestration_trigger(context_name="context")
def loud_status(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    context.set_custom_status("s" * context.get_input())
    yield context.call_activity(shout, "after")
    return "done"


@app.orchestration_trigger(context_name="context")
def echo_big(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """A large input, a large activity result and a large output."""
    data = context.get_input()
    result = yield context.call_activity(big, len(data))
    return {"input": len(data), "result": len(result), "tail": data[-10:]}


@app.orchestration_trigger(context_name="context")
def mixed_case(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    return (yield context.call_activity("SHOUT", "case"))


@app.orchestration_trigger(context_name="context")
def parent_default_id(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """A child without an id, a child with an id the table keys must escape, and a timer."""
    yield context.create_timer(context.current_utc_datetime + timedelta(minutes=1))
    first = yield context.call_sub_orchestrator("chain")
    odd = yield context.call_sub_orchestrator("chain", None, f"{context.instance_id}#odd/child?")
    return {"first": first, "odd": odd}


@app.orchestration_trigger(context_name="context")
def fails_once(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """Fails through an activity that fails on its first call only (for rewind)."""
    return (yield context.call_activity(flaky_once, context.instance_id))


@app.activity_trigger(input_name="key")
def flaky_once(key: str) -> str:
    table = _table()
    table.create_entity({"PartitionKey": key, "RowKey": uuid.uuid4().hex, "Step": "attempt"})
    if len(list(table.query_entities("PartitionKey eq @k", parameters={"k": key}))) < 2:
        raise RuntimeError("first call fails")
    return "second call works"


@app.orchestration_trigger(context_name="context")
def http_caller(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    return (yield context.call_http("GET", "http://127.0.0.1:9/"))


# -- HTTP ------------------------------------------------------------------------------------
@app.route(route="start/{name}/{instance_id?}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    data = json.loads(body) if body else None
    instance_id = await client.start_new(req.route_params["name"], req.route_params.get("instance_id"), data)
    return client.create_check_status_response(req, instance_id)


@app.route(route="events/{instance_id}/{event}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def send_event(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        await client.raise_event(req.route_params["instance_id"], req.route_params["event"], req.get_json())
    except Exception as exc:
        status = 404 if "No instance" in str(exc) else 410
        return func.HttpResponse(
            json.dumps({"title": str(exc)}), status_code=status, mimetype="application/problem+json"
        )
    return func.HttpResponse(status_code=202)


@app.route(route="client/{op}/{instance_id?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def client_ops(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Runs the SDK client's management calls, so tests prove they work against the devhost."""
    op, instance_id = req.route_params["op"], req.route_params.get("instance_id", "")
    result: Any
    if op == "status":
        status = await client.get_status(instance_id, show_history=True)
        result = status.to_json() if status else None
    elif op == "terminate":
        await client.terminate(instance_id, "stopped by test")
        result = "ok"
    elif op == "purge":
        result = (await client.purge_instance_history(instance_id)).instances_deleted
    elif op == "by-status":
        statuses = [df.OrchestrationRuntimeStatus(s) for s in req.params["status"].split(",")]
        result = sorted(s.instance_id for s in await client.get_status_by(runtime_status=statuses))
    else:
        return func.HttpResponse(status_code=404)
    return func.HttpResponse(json.dumps(result), mimetype="application/json")


@app.route(route="hello/{name:alpha}", methods=["GET"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(
            {
                "name": req.route_params["name"],
                "q": req.params.get("q"),
                "header": req.headers.get("x-test"),
                "method": req.method,
            }
        ),
        mimetype="application/json",
        headers={"X-Sample": "yes"},
    )


@app.route(route="items/{id:int}", methods=["GET"])
def item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"item {req.route_params['id']}", mimetype="text/plain", charset="utf-8")


@app.route(route="files/{*path}", methods=["GET"])
def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params.get("path", ""))


@app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret internal detail")


@app.route(route="secret", methods=["GET", "POST"], auth_level=func.AuthLevel.FUNCTION)
def secret(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("the secret")
