"""``make run``: the whole product on one machine, ready to click through.

Around the generic devhost this adds what the demo needs: dev mode, the Graph emulator
(unless real Graph credentials are configured), the seeded expert directory, the demo
portal, and one upcoming appointment for the demo customer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

log = logging.getLogger("devhost.demo")
GRAPH_EMULATOR_PORT = 7072
DEMO_CUSTOMER = "demo-customer"


@dataclass
class Demo:
    port: int
    emulator: Any | None = None

    def stop(self) -> None:
        if self.emulator is not None:
            with contextlib.suppress(Exception):
                self.emulator.stop()


def configure(port: int) -> Demo:
    """Set the app's settings for a local demo; start the Graph emulator unless Graph is configured."""
    os.environ.setdefault("DEV_MODE", "true")
    os.environ.setdefault("TASK_HUB_NAME", "AppointmentsHub")
    os.environ.setdefault("PORTAL_BASE_URL", f"http://localhost:{port}")
    demo = Demo(port)
    if not os.environ.get("GRAPH_TENANT_ID"):
        from devhost.graph_emulator import GraphEmulator

        emulator_port = int(os.environ.get("GRAPH_EMULATOR_PORT", GRAPH_EMULATOR_PORT))
        demo.emulator = GraphEmulator(port=emulator_port).start()
        os.environ.update(demo.emulator.app_settings())
    os.environ.setdefault("GRAPH_SENDER_MAILBOX", "neuvottelut@pankki.example")
    os.environ.setdefault("GRAPH_NOTIFICATION_URL", f"http://127.0.0.1:{port}/api/graph/notifications")
    os.environ.setdefault("GRAPH_CLIENT_STATE", secrets.token_urlsafe(32))
    if not os.environ.get("GRAPH_NOTIFICATION_CERTIFICATE"):
        # Rich call-event notifications need a certificate; a throwaway one (1 day, in memory)
        # is enough locally. Its id changes with each run, so no stale subscription matches.
        from devhost.graph_emulator.crypto import throwaway_certificate

        os.environ["GRAPH_NOTIFICATION_CERTIFICATE"] = throwaway_certificate()
        os.environ["GRAPH_NOTIFICATION_CERTIFICATE_ID"] = f"demo-{secrets.token_hex(4)}"
    return demo


def seed_experts() -> None:
    import bootstrap
    from devhost.seed import seed

    seed(bootstrap.services().repo)


def mount(host: Any) -> bool:
    """Serve the demo portal under /portal/ (and / redirects there)."""
    try:
        from devhost import portal
    except ImportError:
        return False
    host.add_routes(portal.routes())
    return True


DEMO_DAYS_AHEAD = 5  # past any clock jump of the README walk-through, which books from day 2 on


def book_demo_appointment(base_url: str) -> str | None:
    """One upcoming online meeting for the demo customer, unless they have one already: 10.00
    Helsinki time on the first weekday five days ahead, so that the README walk-through (which
    books from the day after tomorrow and moves the clock into its own meeting) leaves it
    upcoming; the dev clock's "+1 vrk" brings it near."""
    from datetime import UTC, datetime, time

    from appointments.localtime import HELSINKI
    from appointments.principal import encode_principal
    from devhost.seed import DEMO_EXPERTS

    headers = {"x-ms-client-principal": encode_principal(DEMO_CUSTOMER, name="Demo Asiakas")}
    with httpx.Client(base_url=base_url, timeout=30) as http:
        existing = http.get("/api/appointments", headers=headers).json().get("appointments", [])
        if existing:
            return None
        clock = http.get("/dev/clock")
        now = (
            datetime.fromisoformat(clock.json()["now"].replace("Z", "+00:00"))
            if clock.status_code == 200
            else datetime.now(UTC)
        )
        day = (now + timedelta(days=DEMO_DAYS_AHEAD)).astimezone(HELSINKI).date()
        while day.weekday() >= 5:
            day += timedelta(days=1)
        start = datetime.combine(day, time(10), tzinfo=HELSINKI).astimezone(UTC)
        body = {
            "expertId": DEMO_EXPERTS[0].expert_id,
            "topic": "loans.home-loan",
            "channel": "online",
            "start": start.isoformat(),
            "durationMinutes": 45,
            "language": "fi",
            "phone": "+358401234567",
            "extraInfo": "Demo: asuntolainan neuvottelu",
        }
        r = http.post("/api/appointments", headers={**headers, "Idempotency-Key": "demo-booking"}, json=body)
        if r.status_code not in (200, 201):
            log.warning("demo booking failed: %s %s", r.status_code, r.text[:200])
            return None
        return str(r.json()["bookingCode"])
