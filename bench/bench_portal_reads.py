"""The portal's two reads at 100,000 stored appointments, against the bare Table query.

    .venv/bin/python bench/bench_portal_reads.py [--appointments 100000]

Stores the appointments (10 per customer) in an in-memory Azurite, then times the HTTP
functions ``GET /api/appointments`` and ``GET /api/appointments/{code}`` (their own code,
called as the worker calls them, without the host's socket) against what they cannot do
without: the bare partition query and the bare point read, through a plain Table client, in
the same run. Storage round trips are counted at the Table client's transport.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import azure.functions as func  # noqa: E402
from azure.core.exceptions import ServiceResponseError  # noqa: E402
from azure.data.tables import TableServiceClient  # noqa: E402

import bootstrap  # noqa: E402
from adapters.tables import TableRepository  # noqa: E402
from adapters.tables.mappers import APPOINTMENTS  # noqa: E402
from adapters.tables.mappers import appointment_entity as _to_entity  # noqa: E402
from adapters.tables.transport import table_transport  # noqa: E402
from appointments.catalogue import Channel  # noqa: E402
from appointments.codes import new_booking_code  # noqa: E402
from appointments.model import Appointment, Phase  # noqa: E402
from appointments.principal import encode_principal  # noqa: E402
from bench.round_trips import RoundTrips, kind  # noqa: E402
from bench.timing import median_ms  # noqa: E402
from devhost import azurite  # noqa: E402
from devhost.seed import DEMO_EXPERTS, seed  # noqa: E402

PER_CUSTOMER = 10
ROUNDS = 100


def appointments_of(customer: str, now: datetime, n: int = PER_CUSTOMER) -> list[Appointment]:
    return [
        Appointment(
            booking_code=new_booking_code(),
            customer_id=customer,
            expert_id=DEMO_EXPERTS[i % len(DEMO_EXPERTS)].expert_id,
            channel=Channel.ONLINE,
            topic_id="loans.home-loan",
            start=now + timedelta(days=3, minutes=30 * i),
            duration_minutes=45,
            language="fi",
            phone="+358401234567",
            phase=Phase.BOOKED,
            phase_since=now,
            created_at=now,
        )
        for i in range(n)
    ]


def fill(service: TableServiceClient, total: int, now: datetime) -> list[Appointment]:
    """Store ``total`` appointments; returns the measured customer's ``PER_CUSTOMER``.

    The others go 100 to a customer (a full transaction each), so that filling is quick;
    the measured partition is the same size either way."""
    table = service.get_table_client(APPOINTMENTS)

    def store(customer: str, n: int) -> list[Appointment]:
        batch = appointments_of(customer, now, n)
        for attempt in range(3):  # upserts: a retry after a dropped connection is harmless
            try:
                table.submit_transaction([("upsert", _to_entity(a)) for a in batch])
                break
            except ServiceResponseError:
                if attempt == 2:
                    raise
        return batch

    others = total - PER_CUSTOMER
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(lambda i: store(f"bench-{i:06d}", min(100, others - i * 100)), range(-(-others // 100)))
        )
    return store("bench-measured", PER_CUSTOMER)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appointments", type=int, default=100_000)
    args = parser.parse_args()
    with azurite.running() as az:
        os.environ.update({"DEV_MODE": "true", "AzureWebJobsStorage": az.connection_string})
        counter = table_transport(transport=RoundTrips)
        repo = TableRepository.from_connection_string(az.connection_string, transport=counter)
        bootstrap.override(repo=repo)
        seed(repo)
        repo.table(APPOINTMENTS)
        # The baseline on the same transport as the app: the ratio is the app's own work.
        bare = TableServiceClient.from_connection_string(az.connection_string, transport=table_transport())
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        mine = fill(bare, args.appointments, now)
        filled = time.perf_counter() - t0
        customer = mine[0].customer_id
        code = mine[3].booking_code
        table = bare.get_table_client(APPOINTMENTS)
        count = sum(1 for _ in table.list_entities(select=["RowKey"]))
        assert count == args.appointments, count

        from http_triggers.customer import get_appointment, list_appointments

        list_fn = list_appointments.build().get_user_function()
        get_fn = get_appointment.build().get_user_function()
        headers = {"x-ms-client-principal": encode_principal(customer)}

        def request(path: str, **route: str) -> func.HttpRequest:
            return func.HttpRequest(
                "GET", f"http://localhost/api/{path}", headers=headers, body=b"", route_params=route
            )

        loop = asyncio.new_event_loop()

        def list_call() -> None:
            with kind("GET /api/appointments"):
                r = loop.run_until_complete(list_fn(request("appointments")))
            assert r.status_code == 200 and len(r.get_body()) > 100, r.get_body()

        def get_call() -> None:
            with kind("GET /api/appointments/{code}"):
                r = loop.run_until_complete(get_fn(request(f"appointments/{code}", code=code)))
            assert r.status_code == 200, r.get_body()

        def bare_query() -> None:
            rows = list(table.query_entities("PartitionKey eq @pk", parameters={"pk": customer}))
            assert len(rows) == PER_CUSTOMER

        def bare_read() -> None:
            table.get_entity(customer, code)

        for warm in (list_call, get_call, bare_query, bare_read):
            warm()
        counter.reset()
        q, lst, r, one = [], [], [], []
        # Call by call, each measure next to its baseline: a busy neighbour on the machine
        # slows both sides of a pair alike. ROUNDS pairs, the median of each side.
        for _ in range(ROUNDS):
            q.append(median_ms(lambda _: bare_query(), 1))
            lst.append(median_ms(lambda _: list_call(), 1))
            r.append(median_ms(lambda _: bare_read(), 1))
            one.append(median_ms(lambda _: get_call(), 1))
        loop.close()
    list_trips = counter.total("GET /api/appointments") / ROUNDS
    get_trips = counter.total("GET /api/appointments/{code}") / ROUNDS
    bq, bl, br, bg = (statistics.median(x) for x in (q, lst, r, one))
    print(f"{args.appointments:,} appointments stored in {filled:.0f} s; the customer has {PER_CUSTOMER}.\n")
    print("| measure | ms (median) | × baseline | storage round trips |")
    print("|---|---:|---:|---:|")
    print(f"| bare partition query, {PER_CUSTOMER} rows (baseline) | {bq:.1f} | 1.00 | 1 |")
    print(f"| `GET /api/appointments` (function) | {bl:.1f} | {bl / bq:.2f} | {list_trips:g} |")
    print(f"| bare point read (baseline) | {br:.1f} | 1.00 | 1 |")
    print(f"| `GET /api/appointments/{{code}}` (function) | {bg:.1f} | {bg / br:.2f} | {get_trips:g} |")


if __name__ == "__main__":
    main()
