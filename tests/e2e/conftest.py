"""The whole product on one machine: Azurite, the Graph emulator and the devhost running
``function_app`` in a subprocess with a frozen clock. One stack per test session (fast);
tests book their own appointments relative to the host's clock, so they never collide."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from adapters.tables import TableRepository
from appointments.principal import encode_principal
from appointments.timerules import parse_utc
from devhost.azurite import free_port
from devhost.graph_emulator import GraphEmulator
from devhost.graph_emulator.crypto import throwaway_certificate
from devhost.seed import DEMO_EXPERTS, seed
from devhost.testing import DevhostProcess

HELSINKI = ZoneInfo("Europe/Helsinki")
GRAPH_SECRET = "e2e-client-state-secret-0123456789"
MATLEENA, MAIJA, OLLI = DEMO_EXPERTS


def customer_headers(customer_id: str) -> dict[str, str]:
    return {"x-ms-client-principal": encode_principal(customer_id)}


def expert_headers(expert_id: str) -> dict[str, str]:
    return {"x-ms-client-principal": encode_principal(expert_id, ("Expert",))}


@dataclass
class Stack:
    host: DevhostProcess
    graph: GraphEmulator
    repo: TableRepository

    def now(self) -> datetime:
        return datetime.fromisoformat(self.host.now().replace("Z", "+00:00"))

    def slot(self, days: float = 2, hour: int = 10) -> datetime:
        """A start at ``hour`` o'clock Helsinki time on the first weekday at least ``days`` ahead
        (the seeded experts work weekdays, roughly 08–16 local)."""
        day = (self.now() + timedelta(days=days)).astimezone(HELSINKI).date()
        while day.weekday() >= 5:
            day += timedelta(days=1)
        return datetime.combine(day, time(hour), tzinfo=HELSINKI).astimezone(UTC)

    def book(
        self,
        customer: str,
        start: datetime | None = None,
        *,
        expert: str = MATLEENA.expert_id,
        channel: str = "online",
        duration: int = 45,
        **extra: Any,
    ) -> dict[str, Any]:
        candidates = (
            [start] if start else [self.slot(days=2 + d, hour=h) for d in range(5) for h in range(9, 15)]
        )
        for when in candidates:
            body = {
                "expertId": expert,
                "topic": "loans.home-loan",
                "channel": channel,
                "start": when.isoformat(),
                "durationMinutes": duration,
                "language": "fi",
                "phone": "+358401234567",
                **extra,
            }
            r = self.host.post("/api/appointments", headers=customer_headers(customer), json=body)
            if r.status_code != 409 or start:
                break  # without a given start, a taken slot just means: try the next one
        assert r.status_code == 201, r.text
        self.host.wait_idle()
        return dict(r.json())

    def as_customer(
        self, customer: str, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        return self.host.request(
            method, path, headers={**customer_headers(customer), **(headers or {})}, **kw
        )

    def as_expert(
        self, expert: str, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        return self.host.request(method, path, headers={**expert_headers(expert), **(headers or {})}, **kw)

    def phase(self, code: str) -> str:
        """The Durable custom status phase, after checking it matches the Appointments record."""
        self.host.wait_idle()
        status = self.host.status(f"appt-{code}")
        record = self.repo.get_by_code(code)
        assert record is not None
        durable_phase = status["customStatus"]["phase"]
        assert durable_phase == record.phase.value, (durable_phase, record.phase.value)
        return str(durable_phase)

    def runtime_status(self, code: str) -> str:
        self.host.wait_idle()
        return str(self.host.status(f"appt-{code}")["runtimeStatus"])


@contextmanager
def running_stack(storage: str, **extra_env: str) -> Iterator[Stack]:
    """Seeded experts, a Graph emulator and the devhost on ``storage``; ``extra_env`` on top."""
    repo = TableRepository.from_connection_string(storage)
    seed(repo)
    port = free_port()
    with GraphEmulator() as graph:
        env = {
            "DEV_MODE": "true",
            "DEVHOST_PORTAL": "1",  # the demo portal, for the browser tests
            "CHANGE_NOTICE_HOURS": "0",  # lets the tests cancel inside the join window
            **graph.app_settings(),  # base URL, tenant, app id and the test JWKS for validationTokens
            "GRAPH_SCHEDULE_CACHE_SECONDS": "0",  # tests change calendars and inject faults between calls
            "GRAPH_SENDER_MAILBOX": "neuvottelut@pankki.example",
            "GRAPH_NOTIFICATION_URL": f"http://127.0.0.1:{port}/api/graph/notifications",
            "GRAPH_CLIENT_STATE": GRAPH_SECRET,
            # Rich (encrypted) call-event notifications, as in production.
            "GRAPH_NOTIFICATION_CERTIFICATE": throwaway_certificate(),
            "GRAPH_NOTIFICATION_CERTIFICATE_ID": "e2e-notifications",
            **extra_env,
        }
        with DevhostProcess(storage=storage, port=port, env=env) as host:
            # Call events happen on the meeting's clock: the devhost's virtual one.
            graph.state.event_clock = lambda: parse_utc(host.now())
            yield Stack(host, graph, repo)


@pytest.fixture(scope="session")
def stack(storage_connection_string: str) -> Iterator[Stack]:
    with running_stack(storage_connection_string) as running:
        yield running
