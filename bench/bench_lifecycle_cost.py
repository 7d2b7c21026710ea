"""What one full online lifecycle costs, counted where it happens, and what replaying it costs.

    .venv/bin/python bench/bench_lifecycle_cost.py

Runs the devhost in this process (the real worker, Azurite, the Graph emulator, a virtual
clock), with the app's Table client on a counting transport (``bench.round_trips``), and drives
one online appointment through book → join → code → verify → end over HTTP. Reports:

- storage round trips per request kind (an aiohttp middleware names the request; the
  lifecycle's activities count as ``background``), and for the whole lifecycle;
- Durable history events, Durable Task Scheduler *actions* (its billing unit: an orchestration
  start, each activity's scheduling and its result, each timer fired, each event raised), and
  activity executions, from the instance's own history (summed over its executions, when it
  continues as new; each execution's start counts as a start);
- Graph calls (the emulator's request log);
- replay: the longest execution's last context (its whole history) through the SDK's
  ``Orchestrator.handle`` for the lifecycle, against a minimal orchestrator on the same
  history (the baseline: what parsing the history alone costs), CPU time, same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import azure.durable_functions as df  # noqa: E402
import httpx  # noqa: E402
from aiohttp import web  # noqa: E402
from azure.durable_functions.models import DurableOrchestrationContext  # noqa: E402

import bootstrap  # noqa: E402
from adapters.tables import TableRepository  # noqa: E402
from adapters.tables.transport import table_transport  # noqa: E402
from bench.lifecycles import (  # noqa: E402
    HELSINKI,
    START_LOCAL,
    app_settings,
    bench_experts,
    booking_body,
    customer_headers,
    expert_headers,
)
from bench.round_trips import BACKGROUND, KIND, RoundTrips  # noqa: E402
from bench.timing import median_ms  # noqa: E402
from devhost import azurite  # noqa: E402
from devhost.clock import Clock  # noqa: E402
from devhost.graph_emulator import GraphEmulator  # noqa: E402
from devhost.host import Host  # noqa: E402
from devhost.worker import Worker  # noqa: E402

REPLAYS = 30
_CODE_SEGMENT = re.compile(r"/[0-9A-Z]{8}(?=/|$)")

# Every orchestration context the worker hands the SDK, in order (the last one of an
# instance holds its whole history).
contexts: list[str] = []
_from_json = DurableOrchestrationContext.from_json.__func__  # type: ignore[attr-defined]


def _recording(cls: type, json_string: str) -> Any:
    contexts.append(json_string if isinstance(json_string, str) else json.dumps(json_string))
    return _from_json(cls, json_string)


DurableOrchestrationContext.from_json = classmethod(_recording)  # type: ignore[method-assign,assignment]


@web.middleware
async def name_the_request(request: web.Request, handler: Any) -> web.StreamResponse:
    """File the app's storage calls under ``METHOD /api/route`` while this request runs."""
    token = KIND.set(
        f"{request.method} {_CODE_SEGMENT.sub('/{code}', request.path)}"
        if request.path.startswith("/api/")
        else None
    )
    try:
        return await handler(request)
    finally:
        KIND.reset(token)


def name_the_activities(host: Host) -> None:
    """File each activity's storage calls under its name (where the engine lets us see it)."""
    runner = getattr(host.engine, "registry", None)
    run_activity = getattr(runner, "run_activity", None)
    if run_activity is None:
        return

    async def named(name: str, input_json: str | None) -> Any:
        token = KIND.set(f"activity {name}")
        try:
            return await run_activity(name, input_json)
        finally:
            KIND.reset(token)

    runner.run_activity = named  # type: ignore[union-attr]


def minimal(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    yield context.wait_for_external_event("never")


def cpu_ms(handle: Any, context: str) -> float:
    return median_ms(lambda _: handle(context), REPLAYS, time.process_time)


async def drive(host: Host, clock: Clock, expert_id: str, who: str) -> str:
    from datetime import UTC, datetime, timedelta

    now = clock.now()
    day = (now + timedelta(days=2)).astimezone(HELSINKI).date()
    while day.weekday() >= 5:
        day += timedelta(days=1)
    morning = datetime.combine(day, START_LOCAL.replace(hour=8, minute=0), tzinfo=HELSINKI)
    start = datetime.combine(day, START_LOCAL, tzinfo=HELSINKI)
    clock.set(morning.astimezone(UTC))
    async with httpx.AsyncClient(base_url=host.base_url, timeout=60) as http:
        r = await http.post(
            "/api/appointments",
            headers={**customer_headers(who), "Idempotency-Key": f"{who}-1"},
            json=booking_body(expert_id, start),
        )
        assert r.status_code == 201, r.text
        code = r.json()["bookingCode"]
        await host.engine.wait_idle(60)
        assert (await http.get("/api/appointments", headers=customer_headers(who))).status_code == 200
        assert (await http.get(f"/api/appointments/{code}", headers=customer_headers(who))).status_code == 200
        r = await http.post("/dev/clock/set", json={"now": (start - timedelta(minutes=15)).isoformat()})
        assert r.json()["settled"], r.text
        r = await http.post(f"/api/appointments/{code}/join", headers=customer_headers(who))
        assert r.status_code == 200, r.text
        await host.engine.wait_idle(60)
        r = await http.post(
            f"/api/expert/appointments/{code}/identification-code", headers=expert_headers(expert_id)
        )
        assert r.status_code == 201, r.text
        await host.engine.wait_idle(60)
        r = await http.post(
            f"/api/appointments/{code}/identity-verification",
            headers=customer_headers(who),
            json={"code": r.json()["code"]},
        )
        assert r.status_code == 200, r.text
        await host.engine.wait_idle(60)
        r = await http.post(f"/api/expert/appointments/{code}/end", headers=expert_headers(expert_id))
        assert r.status_code == 202, r.text
        await host.engine.wait_idle(60)
        status = (
            await http.get(
                f"/runtime/webhooks/durabletask/instances/appt-{code}",
                headers={"x-functions-key": host.function_key},  # the management API's system key
            )
        ).json()
        assert status["runtimeStatus"] == "Completed", status
    return str(code)


def durable_counts(history: list[dict[str, Any]]) -> dict[str, int]:
    from azure.durable_functions.models.history.HistoryEventType import HistoryEventType as T

    kinds = Counter(T(e["EventType"]) for e in history)
    activities = kinds[T.TASK_SCHEDULED]
    return {
        "history events": len(history),
        "episodes (OrchestratorStarted)": kinds[T.ORCHESTRATOR_STARTED],
        "activity executions": activities,
        "timers created / fired": kinds[T.TIMER_CREATED] * 1000 + kinds[T.TIMER_FIRED],
        "events raised": kinds[T.EVENT_RAISED],
        # Durable Task Scheduler's billing unit: start + (schedule, result) per activity
        # + each timer fired + each external event.
        "DTS actions": 1
        + activities
        + kinds[T.TASK_COMPLETED]
        + kinds[T.TASK_FAILED]
        + kinds[T.TIMER_FIRED]
        + kinds[T.EVENT_RAISED],
    }


async def main() -> None:
    with azurite.running() as az, GraphEmulator() as graph:
        port = azurite.free_port()
        os.environ.update({**app_settings(graph, port), "AzureWebJobsStorage": az.connection_string})
        counter = table_transport(transport=RoundTrips)
        repo = TableRepository.from_connection_string(az.connection_string, transport=counter)
        warm_up, expert = bench_experts(2)
        repo.put_expert(warm_up)
        repo.put_expert(expert)
        bootstrap.override(repo=repo)
        clock = Clock("virtual")
        bootstrap.use_clock(clock)
        host = Host(
            Worker(ROOT, "function_app.py"),
            storage=az.connection_string,
            port=port,
            clock=clock,
            hub="Cost",
            dev_mode=True,
        )
        host.web_app.middlewares.append(name_the_request)
        name_the_activities(host)
        await host.start()
        try:
            # A first lifecycle warms the process (tables created, Graph client built, caches
            # filled), as on a long-running instance; the second one is counted.
            await drive(host, clock, warm_up.expert_id, "bench-cost-warm-up")
            counter.reset()
            graph_before = len(graph.state.requests)
            code = await drive(host, clock, expert.expert_id, "bench-cost-customer")
            trips = counter.snapshot()
            graph_calls = Counter(
                f"{r.method} {re.sub(r'/[^/]{20,}', '/…', r.path)}"
                for r in graph.state.requests[graph_before:]
            )
        finally:
            await host.stop()
    mine = [c for c in contexts if json.loads(c).get("instanceId") == f"appt-{code}"]
    # An instance that continues as new has one history per execution; the last context of each
    # holds that execution's whole history. Executions are told apart by their ExecutionStarted.
    executions: dict[str, str] = {}
    for c in mine:
        started = next(e for e in json.loads(c)["history"] if e["EventType"] == 0)
        executions[f"{started['Timestamp']} {started.get('Input')}"] = c
    longest = max(executions.values(), key=lambda c: len(json.loads(c)["history"]))
    history = json.loads(longest)["history"]
    from orchestrators.appointment_lifecycle import appointment_lifecycle

    lifecycle_handle = appointment_lifecycle.build().get_user_function()
    minimal_handle = df.Orchestrator.create(minimal)
    full_ms = cpu_ms(lifecycle_handle, longest)
    base_ms = cpu_ms(minimal_handle, longest)
    per_episode = sum(cpu_ms(lifecycle_handle, c) for c in mine[:: max(1, len(mine) // 10)])  # sampled
    counts: Counter[str] = Counter()
    for c in executions.values():
        counts.update(durable_counts(json.loads(c)["history"]))

    print("#### Storage round trips per request (the app's Table client, counted at its transport)\n")
    print("| request | round trips | of which |")
    print("|---|---:|---|")
    for request_kind in sorted(trips, key=lambda k: (k == BACKGROUND, k)):
        ops = trips[request_kind]
        detail = ", ".join(f"{n} {op}" for op, n in ops.most_common())
        print(f"| {request_kind} | {sum(ops.values())} | {detail} |")
    total = sum(sum(c.values()) for c in trips.values())
    portal_reads = sum(
        sum(trips.get(k, Counter()).values()) for k in trips if k.startswith("GET /api/appointments")
    )
    print(
        f"| **one online lifecycle, booked → ended** | **{total - portal_reads}** | "
        "without the two portal reads above |"
    )
    print("\n#### One online lifecycle in Durable and Graph terms\n")
    print("| measure | count |")
    print("|---|---:|")
    for label, value in counts.items():
        if label.startswith("timers"):
            print(f"| {label} | {value // 1000} / {value % 1000} |")
        else:
            print(f"| {label} | {value} |")
    sizes = " + ".join(str(len(json.loads(c)["history"])) for c in executions.values())
    print(f"| executions (continue-as-new starts the next) | {len(executions)} ({sizes} events) |")
    print(f"| orchestrator episodes run (contexts the worker handed the SDK) | {len(mine)} |")
    graph_detail = ", ".join(f"{n} {k}" for k, n in graph_calls.most_common())
    print(f"| Graph calls | {sum(graph_calls.values())} ({graph_detail}) |")
    print("\n#### Replay\n")
    print("| replay of the longest execution's whole history (CPU, median) | ms | × baseline |")
    print("|---|---:|---:|")
    print(f"| minimal orchestrator, same {len(history)} events (baseline) | {base_ms:.1f} | 1.00 |")
    print(f"| the lifecycle orchestrator | {full_ms:.1f} | {full_ms / base_ms:.2f} |")
    sampled = mine[:: max(1, len(mine) // 10)]
    replay_cpu = per_episode * len(mine) / len(sampled)
    print(
        f"\nEvery episode replays the whole history so far: about {replay_cpu:.0f} ms "
        f"of CPU per lifecycle in replays ({len(mine)} episodes)."
    )


if __name__ == "__main__":
    asyncio.run(main())
