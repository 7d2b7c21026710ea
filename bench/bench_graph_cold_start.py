"""What msgraph costs a cold Functions worker, and what ``adapters.graph.warm_up()`` saves.

Each cold figure comes from a fresh interpreter (``--child``), repeated and reported as
the median. The baseline, measured in the same run, is one plain httpx POST of the same
createOrGet body to the same emulator on an open connection: the round trip itself. A
gateway createOrGet of a new meeting is two round trips (createOrGet, then the PATCH).

    .venv/bin/python bench/bench_graph_cold_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ORGANIZER = "bench.expert@pankki.example"
START = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)


def child(base_url: str, warm: bool) -> dict[str, float]:
    """One cold process: time each step of the first Graph call, then a second call."""
    clock = time.perf_counter
    marks: dict[str, float] = {}
    t = clock()
    import adapters.graph as graph

    marks["import adapters.graph"] = clock() - t
    if warm:
        t = clock()
        graph.load_sdk()
        marks["warm_up: SDK imports"] = clock() - t
        t = clock()
        graph.warm_up()
        marks["warm_up: first (de)serialisation"] = clock() - t

    import httpx

    from appointments.ports import MeetingRequest
    from appointments.settings import Settings

    async def calls() -> None:
        async with httpx.AsyncClient() as http:
            t = clock()
            client = graph.build_graph_client(Settings(graph_base_url=base_url), http_client=http)
            gateway = graph.GraphMeetingGateway(client)
            marks["build_graph_client"] = clock() - t
            for label in ("first createOrGet", "second createOrGet"):
                # A new booking code each time: every call is 201 + the settings PATCH.
                request = MeetingRequest(
                    uuid.uuid4().hex[:8], ORGANIZER, "Bench", START, START + timedelta(minutes=30)
                )
                t = clock()
                await gateway.create_or_get(request)
                marks[label] = clock() - t

    asyncio.run(calls())
    return marks


def baseline(base_url: str, runs: int) -> float:
    """Median of plain httpx POSTs of the same body on one open client: the round trip alone."""
    import httpx

    body = {
        "externalId": "BASELINE",
        "subject": "Bench",
        "startDateTime": START.isoformat(),
        "endDateTime": (START + timedelta(minutes=30)).isoformat(),
    }
    url = f"{base_url}/users/{ORGANIZER}/onlineMeetings/createOrGet"
    samples = []
    from devhost.graph_emulator.state import DEV_TOKEN

    with httpx.Client() as http:
        for _ in range(runs + 1):
            t = time.perf_counter()
            http.post(url, json=body, headers={"Authorization": f"Bearer {DEV_TOKEN}"}).raise_for_status()
            samples.append(time.perf_counter() - t)
    return statistics.median(samples[1:])  # the first pays for the connection


def run_children(base_url: str, warm: bool, runs: int) -> dict[str, float]:
    results: dict[str, list[float]] = {}
    for _ in range(runs):
        args = [sys.executable, __file__, "--child", base_url] + (["--warm"] if warm else [])
        out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True)  # noqa: S603
        for key, value in json.loads(out.stdout.strip().splitlines()[-1]).items():
            results.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", metavar="BASE_URL")
    parser.add_argument("--warm", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.warm)))
        return

    from devhost.graph_emulator import GraphEmulator

    with GraphEmulator() as emulator:
        base = baseline(emulator.base_url, max(args.runs, 5))
        cold = run_children(emulator.base_url, warm=False, runs=args.runs)
        warm = run_children(emulator.base_url, warm=True, runs=args.runs)

    def row(label: str, seconds: float) -> str:
        return f"| {label:<44} | {seconds * 1000:9.1f} | {seconds / base:8.1f}x |"

    print(f"Graph cold start, median of {args.runs} fresh processes (emulator on loopback)\n")
    print(f"| {'step':<44} | {'ms':>9} | {'vs base':>9} |")
    print(f"|{'-' * 46}|{'-' * 11}|{'-' * 11}|")
    print(row("baseline: plain httpx createOrGet POST", base))
    for key, value in cold.items():
        print(row(f"cold: {key}", value))
    for key, value in warm.items():
        print(row(f"warmed: {key}", value))
    saved = cold["first createOrGet"] - warm["first createOrGet"]
    warm_cost = warm["warm_up: SDK imports"] + warm["warm_up: first (de)serialisation"]
    print(
        f"\nwarm_up() takes {warm_cost * 1000:.0f} ms off the request path; the first createOrGet "
        f"drops from {cold['first createOrGet'] * 1000:.0f} ms to {warm['first createOrGet'] * 1000:.0f} ms "
        f"({saved * 1000:.0f} ms saved; a warm call is {cold['second createOrGet'] * 1000:.0f} ms)."
    )


if __name__ == "__main__":
    main()
