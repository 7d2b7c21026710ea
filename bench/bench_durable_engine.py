"""How fast the devhost's durable engine runs episodes, against a bare Azurite upsert.

    .venv/bin/python bench/bench_durable_engine.py

Starts an in-memory Azurite and an in-process devhost (frozen clock), then measures:
a chain of sequential activities (one episode per activity: replay + history write + commit),
a fan-out of parallel activities, and the single-activity round trip. Figures are ratios against
a bare single-entity upsert measured in the same run, so they compare across machines.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import azure.durable_functions as df
import azure.functions as func
from azure.data.tables.aio import TableServiceClient

from devhost import azurite
from devhost.clock import Clock
from devhost.host import Host
from devhost.worker import Worker

CHAIN = 100
FAN_OUT = 200
ROUND_TRIPS = 30

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.activity_trigger(input_name="n")
def inc(n: int) -> int:
    return n + 1


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    n = 0
    for _ in range(context.get_input()):
        n = yield context.call_activity(inc, n)
    return n


@app.orchestration_trigger(context_name="context")
def fan(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    results = yield context.task_all([context.call_activity(inc, i) for i in range(context.get_input())])
    return sum(results)


async def upsert_baseline(conn: str, n: int = 200) -> float:
    service = TableServiceClient.from_connection_string(conn)
    table = await service.create_table_if_not_exists("BenchBaseline")
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        await table.upsert_entity({"PartitionKey": "p", "RowKey": str(i), "Value": i})
        times.append(time.perf_counter() - t0)
    await table.close()
    await service.close()
    return statistics.median(times)


async def run(
    host: Host, session: aiohttp.ClientSession, name: str, value: Any
) -> tuple[float, dict[str, Any]]:
    base = f"{host.base_url}/durabletask"  # the local RPC endpoint the SDK client calls (no key)
    t0 = time.perf_counter()
    # As the SDK client starts it: json.dumps(input), posted as JSON (the host parses it once).
    async with session.post(f"{base}/orchestrators/{name}", json=json.dumps(value)) as r:
        instance = (await r.json())["id"]
    await host.engine.wait_idle(120)
    elapsed = time.perf_counter() - t0
    async with session.get(f"{base}/instances/{instance}") as r:
        status = await r.json()
    assert status["runtimeStatus"] == "Completed", status
    return elapsed, status


# The worker imports this very file as the app script (as module bench_durable_engine).
HERE = Path(__file__).resolve()


async def main() -> None:
    with azurite.running() as az:
        upsert = await upsert_baseline(az.connection_string)
        host = Host(
            Worker(HERE.parent, HERE.name),
            storage=az.connection_string,
            port=azurite.free_port(),
            clock=Clock("frozen"),
            hub="Bench",
        )
        await host.start()
        try:
            async with aiohttp.ClientSession() as session:
                await run(host, session, "chain", 3)  # warm-up
                chain_s, _ = await run(host, session, "chain", CHAIN)
                fan_s, _ = await run(host, session, "fan", FAN_OUT)
                trips = [(await run(host, session, "chain", 1))[0] for _ in range(ROUND_TRIPS)]
        finally:
            await host.stop()
    episode = chain_s / (CHAIN + 1)
    trip = statistics.median(trips)
    rows = [
        ("bare Azurite upsert (baseline)", upsert * 1000, 1.0),
        (f"episode in a {CHAIN}-activity chain", episode * 1000, episode / upsert),
        ("start + 1 activity + complete", trip * 1000, trip / upsert),
        (f"fan-out of {FAN_OUT} activities, total", fan_s * 1000, fan_s / upsert),
    ]
    print(f"{'measure':<40} {'ms':>9} {'x upsert':>9}")
    for label, ms, ratio in rows:
        print(f"{label:<40} {ms:>9.2f} {ratio:>9.1f}")
    print(f"episodes/s in the chain: {1 / episode:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
