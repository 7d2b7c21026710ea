"""Shared pieces of the Graph integration tests: the emulator, real SDK clients, a webhook endpoint.

Test modules import the fixtures from here (pytest registers imported fixtures; each is
defined as ``<name>_fixture`` with ``name=`` so a test's parameter does not shadow an import). Nothing is
mocked: the gateway talks to the emulator through msgraph-sdk over loopback HTTP.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from adapters.graph import GraphMailSender, GraphMeetingGateway, RetryPolicy, build_graph_client
from adapters.graph_webhook import CallEventBatch, MalformedNotification, parse_call_ended, validation_token
from appointments.ports import MeetingRequest
from appointments.settings import Settings
from devhost.graph_emulator import GraphEmulator

ORGANIZER = "maija.suomalainen@pankki.example"
SENDER = "ajanvaraus@pankki.example"
WEBHOOK_SECRET = "test-client-state-secret-0123456789"
START = datetime(2030, 3, 4, 10, 30, tzinfo=UTC)
# Tests keep retries short; the policy's shape (bounded, Retry-After honoured) is what is tested.
FAST = RetryPolicy(max_retries=2, backoff=0.05, max_retry_after=5.0, timeout=5.0)


def meeting_request(code: str = "K7Q2MX", *, organizer: str = ORGANIZER, minutes: int = 30) -> MeetingRequest:
    return MeetingRequest(
        booking_code=code,
        organizer_id=organizer,
        subject="Lainat, Asuntolainaneuvottelu",
        start=START,
        end=START + timedelta(minutes=minutes),
    )


@dataclass
class GraphPorts:
    meetings: GraphMeetingGateway
    mail: GraphMailSender


@asynccontextmanager
async def graph_ports(base_url: str, policy: RetryPolicy = FAST) -> AsyncIterator[GraphPorts]:
    """The real adapters on a real msgraph-sdk client, its connections closed afterwards."""
    async with httpx.AsyncClient() as http:
        client = build_graph_client(Settings(graph_base_url=base_url), http_client=http, policy=policy)
        yield GraphPorts(GraphMeetingGateway(client), GraphMailSender(client, SENDER))


@pytest.fixture(scope="module", name="graph_server")
def graph_server_fixture() -> Iterator[GraphEmulator]:
    with GraphEmulator() as emulator:
        yield emulator


@pytest.fixture(name="graph")
def graph_fixture(graph_server: GraphEmulator) -> GraphEmulator:
    """The module's emulator, emptied for this test."""
    graph_server.state.reset()
    graph_server.state.validation_timeout = 10.0
    return graph_server


@dataclass
class WebhookEndpoint:
    """Our side of the webhook, as the HTTP trigger will be: handshake, then parse_call_ended."""

    url: str
    mode: str = "echo"  # echo | wrong-token | slow
    slow_seconds: float = 2.0
    validations: list[str] = field(default_factory=list)
    batches: list[CallEventBatch] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def notification_url(self, booking_code: str) -> str:
        from adapters.graph_webhook import notification_url_for

        return notification_url_for(self.url, booking_code)

    def handle(self, query: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        reply = validation_token(query)
        if reply is not None:
            with self.lock:
                self.validations.append(reply.body)
            if self.mode == "slow":
                time.sleep(self.slow_seconds)
            text = reply.body if self.mode != "wrong-token" else "not the token"
            return reply.status, reply.content_type, text.encode()
        try:
            batch = parse_call_ended(body, booking_code=query.get("appointment", ""), secret=WEBHOOK_SECRET)
        except MalformedNotification:
            return 400, "text/plain", b""
        with self.lock:
            self.batches.append(batch)
        return 202, "text/plain", b""  # also for forgeries: an attacker learns nothing


@pytest.fixture(name="webhook")
def webhook_fixture() -> Iterator[WebhookEndpoint]:
    """A stdlib HTTP server on loopback playing the app's notification endpoint."""
    endpoint = WebhookEndpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            status, content_type, payload = endpoint.handle(
                dict(parse_qsl(parts.query)), self.rfile.read(length)
            )
            with endpoint.lock:
                endpoint.statuses.append(status)
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the slow mode's caller gave up
                pass

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/api/graph/notifications"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def post_json(url: str, payload: Any) -> int:
    """POST like Graph would, from the test's own thread."""
    with httpx.Client() as http:
        return http.post(
            url, content=json.dumps(payload), headers={"Content-Type": "application/json"}
        ).status_code
