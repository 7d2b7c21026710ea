"""The devhost's HTTP side: the app's HTTP functions, the Durable management API, dev endpoints.

Routes, methods, auth levels and binding names come from the metadata the real Python worker
reports after indexing the app (there is no second route table). Every call, HTTP or durable,
is an ``InvocationRequest`` to that worker (``devhost.worker``): the devhost never calls an app
function itself.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from .clock import Clock, ClockError, ClockMode, PersistedClock
from .durable.api import ManagementApi
from .durable.engine import DEFAULT_CONCURRENCY, Engine
from .durable.registry import FunctionFailed, WorkerCrashed
from .durable.store import TaskHubStore
from .worker import FunctionInfo, HttpAnswer, Worker

log = logging.getLogger("devhost")

DEFAULT_HUB = "TestHubName"  # what the Functions host uses locally when host.json names none
SETTLE_TIMEOUT = 30.0
MAX_REQUEST_BODY = 100 * 1024 * 1024  # the host's default FUNCTIONS_REQUEST_BODY_SIZE_LIMIT


def problem(
    status: int, title: str, detail: str | None = None, *, headers: dict[str, str] | None = None
) -> web.Response:
    """An RFC 9457 problem document."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return web.json_response(body, status=status, content_type="application/problem+json", headers=headers)


@dataclass(frozen=True)
class HostSettings:
    """What host.json says about us (route prefix, task hub name, Durable's concurrency limits)."""

    route_prefix: str = "api"
    hub: str = DEFAULT_HUB
    max_activities: int = DEFAULT_CONCURRENCY
    max_orchestrators: int = DEFAULT_CONCURRENCY

    @classmethod
    def from_host_json(cls, path: Path, environ: Mapping[str, str] | None = None) -> HostSettings:
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        data = with_app_setting_overrides(data, os.environ if environ is None else environ)
        ext = data.get("extensions", {})
        prefix = ext.get("http", {}).get("routePrefix", "api")
        hub = ext.get("durableTask", {}).get("hubName") or DEFAULT_HUB
        # "%Setting%" names an app setting, as on Azure; unset, the local default applies.
        if m := re.fullmatch(r"%(\w+)%", hub):
            hub = os.environ.get(m.group(1)) or DEFAULT_HUB
        durable = ext.get("durableTask", {})
        return cls(
            route_prefix=prefix.strip("/"),
            hub=re.sub(r"[^A-Za-z0-9]", "", hub) or DEFAULT_HUB,
            max_activities=_count(durable, "maxConcurrentActivityFunctions"),
            max_orchestrators=_count(durable, "maxConcurrentOrchestratorFunctions"),
        )


OVERRIDE_PREFIX = "AzureFunctionsJobHost__"


def with_app_setting_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """host.json with the app settings that override it applied, as the Functions host does: a
    setting ``AzureFunctionsJobHost__extensions__durableTask__maxConcurrentActivityFunctions``
    replaces that value ("Override host.json values" in the host.json reference; ``__`` is the
    hierarchy delimiter, and configuration keys match without regard to case)."""
    out: dict[str, Any] = json.loads(json.dumps(data))
    for name, value in sorted(environ.items()):
        if not name.lower().startswith(OVERRIDE_PREFIX.lower()):
            continue
        *parents, leaf = name[len(OVERRIDE_PREFIX) :].split("__")
        node = out
        for part in parents:
            key = next((k for k in node if k.lower() == part.lower()), part)
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[next((k for k in node if k.lower() == leaf.lower()), leaf)] = value
    return out


def _count(section: dict[str, Any], name: str) -> int:
    """A concurrency limit: a JSON number, or an app setting's text (the host binds both); the
    engine refuses one that is not positive, as the extension does at start."""
    value = next((v for k, v in section.items() if k.lower() == name.lower()), DEFAULT_CONCURRENCY)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"{name} must be a positive integer value, not {value!r}.")


@dataclass
class HttpFunction:
    """An HTTP-triggered function as the worker's metadata describes it."""

    name: str
    trigger_param: str
    client_params: list[str]
    auth_level: str
    methods: frozenset[str] | None
    route: str


def http_functions(functions: Iterable[FunctionInfo]) -> list[HttpFunction]:
    out = []
    for f in functions:
        trigger = next((b for b in f.bindings if b.get("type") == "httpTrigger"), None)
        if trigger is None:
            continue
        methods = trigger.get("methods")
        out.append(
            HttpFunction(
                name=f.name,
                trigger_param=trigger["name"],
                client_params=[b["name"] for b in f.bindings if b.get("type") == "durableClient"],
                auth_level=str(trigger.get("authLevel", "function")).lower(),
                methods=frozenset(str(m).upper() for m in methods) if methods else None,
                route=trigger.get("route") or f.name,
            )
        )
    return out


class Host:
    """One devhost: ``await start()``, then ``base_url`` serves; ``await stop()`` ends it.

    ``web_app`` is the aiohttp application: add routes to it (or call ``add_routes``) before
    ``start()``, e.g. a demo portal under ``/portal/`` or the Graph emulator.
    """

    def __init__(
        self,
        worker: Worker,
        *,
        storage: str,
        port: int = 7071,
        clock: Clock | None = None,
        hub: str | None = None,
        function_key: str | None = None,
        settings: HostSettings | None = None,
        bind: str = "127.0.0.1",
        dev_mode: bool = False,
    ) -> None:
        self.settings = settings or HostSettings.from_host_json(Path.cwd() / "host.json")
        self.hub = hub or self.settings.hub
        self.port = port
        self.bind = bind
        self.clock = clock or Clock(ClockMode.REAL)
        env_key = os.environ.get("DEVHOST_FUNCTION_KEY")
        self.function_key_generated = not (function_key or env_key)
        self.function_key = function_key or env_key or secrets.token_urlsafe(24)
        self.worker = worker
        self.functions: list[HttpFunction] = []
        if self.clock.adjustable:
            PersistedClock(self.clock, storage, self.hub).restore()  # before the engine reads the time
        self.engine = Engine(
            TaskHubStore(storage, self.hub),
            worker,
            self.clock,
            max_activities=self.settings.max_activities,
            max_orchestrators=self.settings.max_orchestrators,
        )
        self.management = ManagementApi(self.engine, self.hub, system_key=self.function_key)
        worker.client_binding = lambda: self.management.binding_json(self.base_url)  # timers' clients
        self._table = RouteTable()
        self.web_app = web.Application(client_max_size=MAX_REQUEST_BODY)
        self.web_app.add_routes(self.management.routes())
        self.dev_mode = dev_mode
        self.web_app.add_routes([web.get("/dev/health", self._health)])
        # The dev endpoints move time and wait on the engine: they exist only in dev mode, never
        # on a host that might be left running with real data (DEV_MODE as the app reads it).
        if dev_mode:
            self.web_app.add_routes([web.post("/dev/idle", self._idle)])
        if dev_mode and self.clock.adjustable:
            self.web_app.add_routes(
                [
                    web.get("/dev/clock", self._clock_now),
                    web.post("/dev/clock/advance", self._clock_advance),
                    web.post("/dev/clock/set", self._clock_set),
                ]
            )
        prefix = f"/{self.settings.route_prefix}" if self.settings.route_prefix else ""
        self._prefix = prefix
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        self.web_app.add_routes(routes)

    async def load(self) -> list[FunctionInfo]:
        """Index the app through the worker; ``WorkerRefused`` carries the worker's message."""
        functions = await self.worker.start()
        self.functions = http_functions(functions)
        for f in self.functions:
            self._table.add(compile_route(f.route, f.methods, f))
        return functions

    async def start(self) -> None:
        if not self.worker.functions:
            await self.load()
        # The app's catch-all goes last so that routes added by callers win.
        self.web_app.router.add_route(
            # [\s\S]: a decoded %0A is part of the path too (".*" stopped there, and aiohttp's own
            # text/plain 404 answered instead of the function).
            "*",
            self._prefix + r"/{tail:[\s\S]*}" if self._prefix else r"/{tail:[\s\S]*}",
            self._dispatch,
        )
        await self.engine.start()
        self._runner = web.AppRunner(self.web_app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self.engine.stop()
        await self.worker.stop()

    # -- the app's HTTP functions ----------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail", "")
        route, params, _allowed = self._table.match(tail, request.method)
        if route is None:
            # The host answers a path no function serves, and a method a route does not take,
            # with a bare 404 (its routing finds no endpoint; a 405 is not sent:
            # azure-functions-host#10098). An app that wants 405 registers the methods itself.
            return web.Response(status=404)
        target: HttpFunction = route.target
        if target.auth_level != "anonymous" and not self._authorised(request):
            # A missing or wrong function key is a bare 401 from the host's auth handler.
            return web.Response(status=401)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            # The host refuses a body over its limit (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, 100 MB by
            # default) with 413 before any function runs.
            return problem(413, "Payload Too Large", f"The request body is over {MAX_REQUEST_BODY} bytes.")
        try:
            answer = await self.worker.run_http(
                target.name,
                method=request.method,
                url=str(request.url),
                headers=_joined(request.headers),
                query=_joined(request.query),
                route_params=params,
                body=body,
                client_bindings={
                    n: self.management.binding_json(self.base_url) for n in target.client_params
                },
            )
        except (FunctionFailed, WorkerCrashed) as exc:
            # The host answers a failed invocation with a bare 500 and logs the worker's message
            # (azure-functions-host: WebJobs.Script.WebHost/Middleware/ExceptionMiddleware.cs).
            log.error("function %s failed: %s", target.name, exc)
            return web.Response(status=500)
        return to_web_response(answer)

    def _authorised(self, request: web.Request) -> bool:
        given = request.headers.get("x-functions-key") or request.query.get("code") or ""
        return hmac.compare_digest(given.encode(), self.function_key.encode())

    # -- dev endpoints ---------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "clock": self.clock.mode.value})

    async def _idle(self, request: web.Request) -> web.Response:
        settled = await self.engine.wait_idle(SETTLE_TIMEOUT)
        return web.json_response({"settled": settled, "now": self.clock.now().isoformat()})

    async def _clock_now(self, request: web.Request) -> web.Response:
        return web.json_response({"now": self.clock.now().isoformat(), "mode": self.clock.mode.value})

    async def _settle(self) -> web.Response:
        self.engine.timers.fire_due()
        settled = await self.engine.wait_idle(SETTLE_TIMEOUT)
        return web.json_response({"now": self.clock.now().isoformat(), "settled": settled})

    async def _clock_advance(self, request: web.Request) -> web.Response:
        data = await _json_body(request)
        units = {"seconds", "minutes", "hours", "days"}
        if not isinstance(data, dict) or not units & data.keys():
            return problem(400, "Bad Request", "Give seconds, minutes, hours or days.")
        try:
            delta = timedelta(**{k: float(v) for k, v in data.items() if k in units})
            self.clock.advance(delta)
        except (ClockError, TypeError, ValueError) as exc:
            return problem(400, "Bad Request", str(exc))
        return await self._settle()

    async def _clock_set(self, request: web.Request) -> web.Response:
        data = await _json_body(request)
        try:
            when = datetime.fromisoformat(str((data or {}).get("now", "")).replace("Z", "+00:00"))
            self.clock.set(when)
        except (ClockError, ValueError) as exc:
            return problem(400, "Bad Request", str(exc))
        return await self._settle()


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return None
    with contextlib.suppress(ValueError):
        return json.loads(raw)
    return None


def _joined(pairs: Any) -> dict[str, str]:
    """A multi-dict as the host flattens it: repeated keys joined with "," (StringValues)."""
    out: dict[str, str] = {}
    for key in pairs:
        if key not in out:
            out[key] = ",".join(pairs.getall(key))
    return out


def to_web_response(answer: HttpAnswer) -> web.StreamResponse:
    """The worker's ``RpcHttp`` answer as an aiohttp response."""
    response = web.Response(status=answer.status, body=answer.body)
    for key, value in answer.headers.items():
        response.headers[key] = value
    for cookie in answer.cookies:
        response.headers.add("Set-Cookie", cookie)
    return response


# -- route templates ------------------------------------------------------------------------
# Functions-style templates: ``{name}``, ``{name:int}``, ``{name?}``, ``{*rest}``.
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "guid": r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}",
    "bool": r"(?:true|false|True|False)",
}
_PARAM = re.compile(r"^\{(\*)?([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+)(?:\([^)]*\))?)?(\?)?\}$")


@dataclass
class Route:
    template: str
    pattern: re.Pattern[str]
    # Sort key: literal segments before parameters, catch-alls last (as ASP.NET ranks them).
    rank: tuple[int, ...]
    methods: frozenset[str] | None
    target: Any = field(compare=False)


def compile_route(template: str, methods: frozenset[str] | None, target: Any) -> Route:
    regex, rank = "", []
    for segment in [s for s in template.strip("/").split("/") if s]:
        m = _PARAM.match(segment)
        if m is None:
            regex += "/" + re.escape(segment)
            rank.append(0)
            continue
        catch_all, name, constraint, optional = m.groups()
        if catch_all:
            regex += f"(?:/(?P<{name}>.*))?"
            rank.append(4)
            continue
        inner = _CONSTRAINTS.get((constraint or "").lower(), r"[^/]+")
        if optional:
            regex += f"(?:/(?P<{name}>{inner}))?"
            rank.append(3)
        else:
            regex += f"/(?P<{name}>{inner})"
            rank.append(1 if constraint else 2)
    return Route(template, re.compile(f"^{regex}/?$", re.IGNORECASE), tuple(rank), methods, target)


class RouteTable:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, route: Route) -> None:
        self.routes.append(route)
        self.routes.sort(key=lambda r: r.rank)

    def match(self, path: str, method: str) -> tuple[Route | None, dict[str, str], set[str]]:
        """The route for ``path`` and ``method``, its parameters, and the methods the path allows."""
        allowed: set[str] = set()
        for route in self.routes:
            m = route.pattern.match("/" + path.strip("/") if path.strip("/") else "")
            if m is None:
                continue
            if route.methods is None or method in route.methods:
                return route, {k: v for k, v in m.groupdict().items() if v is not None}, allowed
            allowed |= route.methods
        return None, {}, allowed
