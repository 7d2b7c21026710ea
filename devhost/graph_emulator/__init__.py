"""A loopback stand-in for the parts of Microsoft Graph this app uses.

It answers with Graph's JSON shapes so the real msgraph-sdk parses every response:
onlineMeetings createOrGet (201, then 200 for the same organizer + externalId), PATCH and
DELETE; calendar getSchedule; sendMail (every mail recorded with its X-Idempotency-Key);
subscriptions on meetingCallEvents (validated like Graph: the notificationUrl must echo
``validationToken`` within 10 s) and call-event notifications on demand: encrypted rich
ones (``encryptedContent``, exactly Graph's scheme, see ``crypto``) for a subscription with
``includeResourceData`` and a certificate (required then: 400 without), and basic ones
without event details otherwise, so basic mode cannot end a meeting, as with Graph. Faults (429 with
Retry-After, 5xx, latency) can be injected per path. Graph routes require a bearer token
(any value), like Graph.

Control API (no token): ``GET /_emulator/meetings|mail|subscriptions|requests``,
``PUT /_emulator/busy/{user}`` (a list of ``{start, end, status}``),
``POST /_emulator/faults`` (``{path, count, status, retryAfter, delayMs, method, code, body}``;
``body`` a regex the request body must match),
``POST /_emulator/meetings/{id}/end|start|admit`` (end/start take ``{"at": time}``),
``POST /_emulator/subscriptions/{id}/lifecycle`` (``{"event": …}``), ``GET /_emulator/keys``
(the test JWKS for validationTokens), ``POST /_emulator/unreadable/{user}``,
``POST /_emulator/reset``, and the stand-in Teams join page ``GET /_emulator/join/{id}``.

Strict like Graph: only the dev token passes (401 otherwise); createOrGet/PATCH refuse
bad meeting times; getSchedule refuses more than 20 schedules, 62 days or a bad interval
and answers an unreadable or unknown mailbox with an error item; sendMail refuses 4 MB,
invalid recipients and unknown senders, and keeps Sent Items; 4 concurrent requests per
mailbox (429 beyond); both validation requests; notifications with a 3 s timeout,
retried, with ``validationTokens`` when rich; faults can answer *after* the work
(``after``: a 503 after the mail is recorded).

Run it with ``python -m devhost.graph_emulator --port 7072`` and set
``GRAPH_BASE_URL=http://127.0.0.1:7072/v1.0``; tests use :class:`GraphEmulator`.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

from aiohttp import web

from devhost.graph_emulator.app import create_app
from devhost.graph_emulator.crypto import TestSigningKey
from devhost.graph_emulator.state import APP_ID, TENANT_ID, EmulatorState, Fault, RecordedRequest

__all__ = ["APP_ID", "TENANT_ID", "EmulatorState", "Fault", "GraphEmulator", "RecordedRequest", "create_app"]


class GraphEmulator:
    """The emulator on a free loopback port, served from a background thread.

    ``with GraphEmulator() as graph:`` starts it; ``graph.base_url`` is the v1.0 root and
    ``graph.state`` the live state (thread-safe accessors).
    """

    def __init__(self, state: EmulatorState | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state if state is not None else EmulatorState()
        self.signing = TestSigningKey()
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def origin(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1.0"

    @property
    def beta_url(self) -> str:
        return f"{self.origin}/beta"

    def start(self, timeout: float = 10.0) -> GraphEmulator:
        self._thread = threading.Thread(target=self._serve, name="graph-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the Graph emulator did not start in time")
        if self._error is not None:
            raise RuntimeError("the Graph emulator failed to start") from self._error
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._start_site())
        except BaseException as exc:  # reported to start(), which raises it in the caller's thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _start_site(self) -> None:
        self._runner = web.AppRunner(create_app(self.state, self.signing), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self._port = int(sockets[0].getsockname()[1])

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine on the emulator's loop (for helpers that must share it)."""
        if self._loop is None:
            raise RuntimeError("the emulator is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def app_settings(self) -> dict[str, str]:
        """What the app needs to talk to this emulator and to check its validationTokens."""
        return {
            "GRAPH_BASE_URL": self.base_url,
            "GRAPH_TENANT_ID": TENANT_ID,
            "GRAPH_CLIENT_ID": APP_ID,
            "GRAPH_NOTIFICATION_JWKS": self.signing.jwks_json(),
        }

    def end_meeting(self, meeting_id: str, at: Any = None) -> list[int]:
        """Send callEnded to every subscription on the meeting; the endpoints' status codes."""
        from devhost.graph_emulator.app import notify_call_event

        return list(self.run(notify_call_event(self.state, meeting_id, "callEnded", self.signing, at)))

    def start_meeting(self, meeting_id: str, at: Any = None) -> list[int]:
        from devhost.graph_emulator.app import notify_call_event

        return list(self.run(notify_call_event(self.state, meeting_id, "callStarted", self.signing, at)))

    def lifecycle(self, subscription_id: str, event: str) -> int:
        """Send a lifecycle notification (reauthorizationRequired, subscriptionRemoved, missed)."""
        from devhost.graph_emulator.app import notify_lifecycle

        return int(self.run(notify_lifecycle(self.state, subscription_id, event, self.signing)))

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            self.run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> GraphEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
