"""The portal's calls on the local host, and the app's cold import, against baselines of the same run.

Baselines: a bare Azurite upsert (the floor for any write) and a bare ``import
azure.durable_functions`` (the floor for the app's import). Run: ``python bench/bench_api.py``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azure.data.tables import TableServiceClient  # noqa: E402

from adapters.tables import TableRepository  # noqa: E402
from appointments.principal import encode_principal  # noqa: E402
from bench.timing import median_ms  # noqa: E402
from devhost import azurite  # noqa: E402
from devhost.seed import DEMO_EXPERTS, seed  # noqa: E402
from devhost.testing import DevhostProcess  # noqa: E402

ROUNDS = 60
HELSINKI = ZoneInfo("Europe/Helsinki")


def import_time(module: str) -> float:
    runs = []
    for _ in range(5):
        out = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
            [
                sys.executable,
                "-c",
                f"import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(float(out.stdout.strip()))
    return statistics.median(runs)


def main() -> None:
    with azurite.running() as az:
        repo = TableRepository.from_connection_string(az.connection_string)
        seed(repo)
        table = TableServiceClient.from_connection_string(az.connection_string).create_table("Baseline")
        upsert = median_ms(
            lambda i: table.upsert_entity({"PartitionKey": "p", "RowKey": str(i), "V": i}), ROUNDS
        )
        with DevhostProcess(
            storage=az.connection_string,
            env={"DEV_MODE": "true", "CHANGE_NOTICE_HOURS": "0", "GRAPH_BASE_URL": "http://127.0.0.1:9/v1.0"},
        ) as host:
            who = {"x-ms-client-principal": encode_principal(f"bench-{uuid.uuid4().hex[:6]}")}
            now = datetime.fromisoformat(host.now().replace("Z", "+00:00"))
            slots = []
            day = (now + timedelta(days=2)).astimezone(HELSINKI).date()
            while len(slots) < ROUNDS:
                if day.weekday() < 5:
                    slots += [
                        datetime.combine(day, dtime(h, m), tzinfo=HELSINKI).astimezone(UTC)
                        for h in range(8, 15)
                        for m in (0, 30)
                    ]
                day += timedelta(days=1)
            codes: list[str] = []

            def book(i: int) -> None:
                r = host.post(
                    "/api/appointments",
                    headers=who,
                    json={
                        "expertId": DEMO_EXPERTS[0].expert_id,
                        "topic": "loans.home-loan",
                        "channel": "phone",
                        "start": slots[i].isoformat(),
                        "durationMinutes": 30,
                        "language": "fi",
                        "phone": "+358401234567",
                    },
                )
                assert r.status_code == 201, r.text
                codes.append(r.json()["bookingCode"])

            topics = median_ms(lambda i: host.get("/api/topics").raise_for_status(), ROUNDS)
            booking = median_ms(book, ROUNDS)
            listing = median_ms(lambda i: host.get("/api/appointments", headers=who).raise_for_status(), 20)
            one = median_ms(
                lambda i: host.get(f"/api/appointments/{codes[i]}", headers=who).raise_for_status(), ROUNDS
            )

            def lookup(i: int, phone: str, status: int) -> None:
                r = host.post(
                    "/api/appointments/lookup",
                    json={"bookingCode": codes[i], "phone": phone},
                    headers={"X-Forwarded-For": f"198.51.100.{i + 1}"},  # one source each: no waits
                )
                assert r.status_code == status, r.text

            # Throttle cost: a judged attempt claims two counters (read + conditional write each);
            # a success also deletes both. Each booking gets one wrong attempt: none has to wait.
            wrong_phone = median_ms(lambda i: lookup(i, "+358409999999", 404))
            right_phone = median_ms(lambda i: lookup(i, "040 123 4567", 200))

            def oversized(_: int) -> None:
                body = b'{"extraInfo": "' + b"x" * 70_000 + b'"}'
                headers = {**who, "content-type": "application/json"}
                r = host.post("/api/appointments", headers=headers, content=body)
                assert r.status_code == 413, r.text

            too_large = median_ms(oversized, 20)
    base_import = import_time("azure.durable_functions")
    app_import = import_time("function_app")
    rows = [
        ("bare Azurite upsert (baseline)", upsert, upsert),
        ("GET /api/topics (no storage)", topics, upsert),
        ("POST /api/appointments (book + start lifecycle)", booking, upsert),
        (f"GET /api/appointments ({ROUNDS} upcoming)", listing, upsert),
        ("GET /api/appointments/{code}", one, upsert),
        ("POST /api/appointments/lookup, wrong phone (2 claims)", wrong_phone, upsert),
        ("POST /api/appointments/lookup, right phone (2 claims, 2 resets)", right_phone, upsert),
        ("POST /api/appointments, 70 KB body (413)", too_large, upsert),
        ("import azure.durable_functions (baseline)", base_import * 1000, base_import * 1000),
        ("import function_app (cold start)", app_import * 1000, base_import * 1000),
    ]
    print(f"{'measure':<66} {'ms (median)':>12} {'x baseline':>11}")
    for label, ms, base in rows:
        print(f"{label:<66} {ms:>12.1f} {ms / base:>11.1f}")


if __name__ == "__main__":
    main()
