"""Many online lifecycles, booked → ended, through the devhost's HTTP API (virtual clock).

The stack is the product as ``make run`` runs it: Azurite, the Graph emulator and
``python -m devhost`` in its own process. ``run_load`` books ``n`` online appointments with
``clients`` concurrent clients (one expert each, all at the same start), sets the clock into
their join window once, then drives every one through join, identification code, verify and
end, and checks the outcome exactly: every instance Completed, one meeting per booking, the
mails and audit rows of one traced lifecycle times ``n``, no mail key sent twice.

Used by ``bench_lifecycles.py`` (throughput and correctness) and ``bench_round_trips.py``
(the traced lifecycle).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient

from adapters.tables import TableRepository
from adapters.tables.mappers import AUDIT, AUDIT_ROW_PREFIX
from appointments.model import Expert
from appointments.principal import encode_principal
from devhost import azurite
from devhost.graph_emulator import EmulatorState, Fault, GraphEmulator
from devhost.graph_emulator.crypto import throwaway_certificate
from devhost.seed import WEEKDAYS_8_TO_16
from devhost.testing import DevhostProcess

HELSINKI = ZoneInfo("Europe/Helsinki")
TOPIC = "loans.home-loan"
START_LOCAL = dtime(10, 30)  # 2.5 h after the clock's 08:00: the day-before reminder is skipped
GRAPH_SECRET = "bench-client-state-secret-0123456789"  # noqa: S105 - a throwaway for the emulator


class FlakyGraph(EmulatorState):
    """Graph that answers a share of its calls with 429 (Retry-After: 1) or 503, at random.

    Faults go through the emulator's own fault path (``take_fault``), so their error shape is
    the emulator's Graph error. Seeded: a run is repeatable.
    """

    def __init__(self, rate: float, seed: int = 17) -> None:
        super().__init__()
        self.rate = rate
        self._rng = random.Random(seed)
        self.injected = 0

    def take_fault(self, method: str, path: str, body: str = "") -> Fault | None:
        with self.lock:
            if self._rng.random() < self.rate:
                self.injected += 1
                if self._rng.random() < 0.5:
                    return Fault(path=".*", status=429, retry_after="1")
                return Fault(path=".*", status=503)
        return super().take_fault(method, path, body)


def bench_experts(n: int) -> list[Expert]:
    return [
        Expert(
            expert_id=str(uuid.UUID(int=0xBE7C4 << 64 | i)),
            display_name=f"Asiantuntija {i:04d}",
            email=f"asiantuntija{i:04d}@pankki.example",
            title="Asuntolaina-asiantuntija",
            topics=(TOPIC,),
            languages=("fi", "sv", "en"),
            working_hours=WEEKDAYS_8_TO_16,
        )
        for i in range(n)
    ]


def signed_in(user_id: str, *roles: str) -> dict[str, str]:
    """The App Service Authentication header the devhost trusts in dev mode."""
    return {"x-ms-client-principal": encode_principal(user_id, roles)}


def customer_headers(customer: str) -> dict[str, str]:
    return signed_in(customer)


def expert_headers(expert_id: str) -> dict[str, str]:
    return signed_in(expert_id, "Expert")


def booking_body(expert_id: str, start: datetime) -> dict[str, Any]:
    """An online booking of 45 minutes, as the portal sends it."""
    return {
        "expertId": expert_id,
        "topic": TOPIC,
        "channel": "online",
        "start": start.isoformat(),
        "durationMinutes": 45,
        "language": "fi",
        "phone": "+358401234567",
    }


@dataclass
class Stack:
    host: DevhostProcess
    graph: GraphEmulator
    connection_string: str
    experts: list[Expert]
    azurite_pid: int


def app_settings(graph: GraphEmulator, port: int) -> dict[str, str]:
    """The app's settings as in production, pointed at the emulator (rich call-event notifications)."""
    return {
        "DEV_MODE": "true",
        "GRAPH_BASE_URL": graph.base_url,
        "GRAPH_SENDER_MAILBOX": "neuvottelut@pankki.example",
        "GRAPH_NOTIFICATION_URL": f"http://127.0.0.1:{port}/api/graph/notifications",
        "GRAPH_CLIENT_STATE": GRAPH_SECRET,
        "GRAPH_NOTIFICATION_CERTIFICATE": throwaway_certificate(),
        "GRAPH_NOTIFICATION_CERTIFICATE_ID": "bench-notifications",
    }


@contextlib.contextmanager
def stack(
    experts: int,
    *,
    fault_rate: float = 0.0,
    env: dict[str, str] | None = None,
    build: Path | None = None,
) -> Iterator[Stack]:
    """Azurite (in memory), the Graph emulator and the devhost on a virtual clock.

    ``build``: a checkout of another build of this project whose devhost and app to run (its
    ``python -m devhost``, with its own app); Azurite, the emulator and the experts are this
    build's, as is the driver."""
    with azurite.running() as az:
        repo = TableRepository.from_connection_string(az.connection_string)
        people = bench_experts(experts)
        for x in people:
            repo.put_expert(x)
        port = azurite.free_port()
        state = FlakyGraph(fault_rate) if fault_rate else EmulatorState()
        with GraphEmulator(state) as graph:
            settings = {
                **app_settings(graph, port),
                "DEVHOST_LOG_LEVEL": "WARNING",
                **(env or {}),
            }
            with DevhostProcess(
                storage=az.connection_string,
                port=port,
                clock="virtual",
                env=settings,
                startup_timeout=60,
                cwd=build or azurite.PROJECT_ROOT,
            ) as host:
                assert az.process is not None
                yield Stack(host, graph, az.connection_string, people, az.process.pid)


def the_day(host: DevhostProcess) -> datetime:
    """08:00 Helsinki on the first weekday at least two days after the host's now (UTC)."""
    now = datetime.fromisoformat(host.now().replace("Z", "+00:00"))
    day = (now + timedelta(days=2)).astimezone(HELSINKI).date()
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, dtime(8), tzinfo=HELSINKI).astimezone(UTC)


def settle(host: DevhostProcess, *, timeout: float = 3600) -> float:
    """Wait (bounded) until the engine is idle; seconds taken."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        r = host.post("/dev/idle", timeout=120)
        r.raise_for_status()
        if r.json()["settled"]:
            return time.perf_counter() - t0
    raise TimeoutError("the devhost did not settle")


def set_clock(host: DevhostProcess, when: datetime) -> float:
    """Set the virtual clock and wait until the work it made due has settled; seconds taken."""
    t0 = time.perf_counter()
    r = host.post("/dev/clock/set", json={"now": when.isoformat()}, timeout=120)
    r.raise_for_status()
    if not r.json()["settled"]:
        settle(host)
    return time.perf_counter() - t0


@dataclass
class Calls:
    """Per-call latencies (seconds) by kind."""

    times: dict[str, list[float]] = field(default_factory=dict)

    def add(self, kind: str, seconds: float) -> None:
        self.times.setdefault(kind, []).append(seconds)

    def pct(self, kind: str, q: float) -> float:
        xs = sorted(self.times.get(kind, []))
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]

    def summary(self) -> list[tuple[str, int, float, float]]:
        return [(k, len(v), self.pct(k, 0.5), self.pct(k, 0.95)) for k, v in self.times.items()]


async def _call(
    http: httpx.AsyncClient, calls: Calls, kind: str, method: str, path: str, **kw: Any
) -> httpx.Response:
    t0 = time.perf_counter()
    r = await http.request(method, path, **kw)
    calls.add(kind, time.perf_counter() - t0)
    return r


async def _retrying(
    http: httpx.AsyncClient, calls: Calls, kind: str, method: str, path: str, ok: int, **kw: Any
) -> httpx.Response:
    """A client as the portal is: a 409 "being prepared" or a 503 is tried again shortly."""
    for _ in range(600):
        r = await _call(http, calls, kind, method, path, **kw)
        if r.status_code == ok:
            return r
        if r.status_code not in (409, 503):
            break
        await asyncio.sleep(0.2)
    raise AssertionError(f"{method} {path}: {r.status_code} {r.text}")


@dataclass
class Booking:
    customer: str
    expert_id: str
    code: str = ""


async def _workers(items: list[Any], clients: int, work: Any) -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            await work(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(clients)))


async def _book_all(base: str, bookings: list[Booking], start: datetime, clients: int, calls: Calls) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=300) as http:

        async def book(b: Booking) -> None:
            body = booking_body(b.expert_id, start)
            headers = {**customer_headers(b.customer), "Idempotency-Key": f"bench-{b.customer}"}
            r = await _call(
                http, calls, "POST /api/appointments", "POST", "/api/appointments", json=body, headers=headers
            )
            assert r.status_code == 201, r.text
            b.code = r.json()["bookingCode"]

        await _workers(bookings, clients, book)


async def _meet_all(base: str, bookings: list[Booking], clients: int, calls: Calls) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=300) as http:

        async def meet(b: Booking) -> None:
            cust, exp = customer_headers(b.customer), expert_headers(b.expert_id)
            await _retrying(
                http, calls, "POST join", "POST", f"/api/appointments/{b.code}/join", 200, headers=cust
            )
            r = await _retrying(
                http,
                calls,
                "POST identification-code",
                "POST",
                f"/api/expert/appointments/{b.code}/identification-code",
                201,
                headers=exp,
            )
            secret = r.json()["code"]
            await _retrying(
                http,
                calls,
                "POST identity-verification",
                "POST",
                f"/api/appointments/{b.code}/identity-verification",
                200,
                headers=cust,
                json={"code": secret},
            )
            await _retrying(
                http, calls, "POST end", "POST", f"/api/expert/appointments/{b.code}/end", 202, headers=exp
            )

        await _workers(bookings, clients, meet)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the devhost's worker processes)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as f:
                found += [int(c) for c in f.read().split()]
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process and its live children have used so far
    (``/proc/<pid>/stat``; a worker process that exits takes its share with it)."""
    total = 0.0
    for p in [pid, *children(pid)]:
        with contextlib.suppress(OSError), open(f"/proc/{p}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Outcome:
    n: int
    seconds: float
    clock_set_seconds: float
    calls: Calls
    completed: int
    meetings: int
    one_meeting_each: bool
    mails: int
    duplicate_mails: int
    audit_rows: int
    graph_calls: int
    graph_faults: int
    peak_rss_mb: float
    devhost_cpu_s: float
    azurite_cpu_s: float
    # This process: the 10 clients and the Graph emulator's thread (on Azure, Graph is not ours).
    bench_cpu_s: float
    # Mails per booking code (from their idempotency keys, ``code/execution/guid``), with subject and key.
    mails_by_code: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.n / self.seconds


def count_rows(connection_string: str, table: str, prefix: str = "") -> int:
    """Rows of ``table`` (whose row key starts with ``prefix``)."""
    client = TableServiceClient.from_connection_string(connection_string).get_table_client(table)
    try:
        return sum(1 for r in client.list_entities(select=["RowKey"]) if r["RowKey"].startswith(prefix))
    except ResourceNotFoundError:  # not created yet
        return 0


def wait_completed(host: DevhostProcess, codes: list[str], timeout: float = 180) -> int:
    """How many instances are Completed, waiting (bounded) while some are still retrying: a
    Durable retry waits on a timer, so the engine is idle meanwhile."""
    deadline = time.monotonic() + timeout
    pending = list(codes)
    while pending and time.monotonic() < deadline:
        pending = [c for c in pending if host.status(f"appt-{c}").get("runtimeStatus") != "Completed"]
        if pending:
            time.sleep(0.5)
    return len(codes) - len(pending)


def _mails_by_code(mails: list[dict[str, Any]], codes: set[str]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for mail in mails:
        key = str(mail.get("idempotencyKey") or "")
        code = key.split("/", 1)[0]
        if code in codes:
            out.setdefault(code, []).append((str(mail["message"].get("subject")), key))
    return out


def run_load(s: Stack, n: int, clients: int, *, first: int = 0) -> Outcome:
    """Book ``n`` lifecycles with experts ``first..first+n`` and drive each to its end."""
    start_of_day = the_day(s.host)
    set_clock(s.host, start_of_day)
    start = datetime.combine(start_of_day.astimezone(HELSINKI).date(), START_LOCAL, tzinfo=HELSINKI)
    bookings = [Booking(f"bench-{uuid.uuid4().hex[:10]}", x.expert_id) for x in s.experts[first : first + n]]
    calls = Calls()
    mails_before, requests_before = len(s.graph.state.mail), len(s.graph.state.requests)
    audit_before = count_rows(s.connection_string, AUDIT, AUDIT_ROW_PREFIX)
    base = s.host.base_url
    assert s.host.process is not None
    devhost_cpu, azurite_cpu = cpu_seconds(s.host.process.pid), cpu_seconds(s.azurite_pid)
    bench_cpu = time.process_time()
    t0 = time.perf_counter()
    phases: dict[str, float] = {}

    def mark(name: str) -> None:
        phases[name] = time.perf_counter() - t0 - sum(phases.values())

    asyncio.run(_book_all(base, bookings, start, clients, calls))
    mark("book")
    settle(s.host)
    mark("settle after booking")
    clock_set = set_clock(s.host, start.astimezone(UTC) - timedelta(minutes=15))
    mark("clock into the join windows")
    asyncio.run(_meet_all(base, bookings, clients, calls))
    mark("join, code, verify, end")
    settle(s.host)
    completed = wait_completed(s.host, [b.code for b in bookings])
    mark("settle to Completed")
    seconds = time.perf_counter() - t0
    codes = {b.code for b in bookings}
    per_code: dict[str, int] = {}
    for m in s.graph.state.meetings.values():
        if m.get("externalId") in codes:
            per_code[m["externalId"]] = per_code.get(m["externalId"], 0) + 1
    faults = getattr(s.graph.state, "injected", 0)
    return Outcome(
        n=n,
        seconds=seconds,
        clock_set_seconds=clock_set,
        calls=calls,
        completed=completed,
        meetings=sum(per_code.values()),
        one_meeting_each=len(per_code) == n and set(per_code.values()) == {1},
        mails=len(s.graph.state.mail) - mails_before,
        duplicate_mails=len(s.graph.state.duplicate_mail()),
        audit_rows=count_rows(s.connection_string, AUDIT, AUDIT_ROW_PREFIX) - audit_before,
        graph_calls=len(s.graph.state.requests) - requests_before,
        graph_faults=faults,
        peak_rss_mb=peak_rss_mb(s.host.process.pid),
        devhost_cpu_s=cpu_seconds(s.host.process.pid) - devhost_cpu,
        azurite_cpu_s=cpu_seconds(s.azurite_pid) - azurite_cpu,
        bench_cpu_s=time.process_time() - bench_cpu,
        mails_by_code=_mails_by_code(s.graph.state.mail[mails_before:], codes),
        phases=phases,
    )


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")
