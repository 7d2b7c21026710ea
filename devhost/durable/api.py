"""The Durable management API, as the extension's ``HttpApiHandler`` serves it.

Paths are in Azure/azure-functions-durable-extension, ``src/WebJobs.Extensions.DurableTask/``:
the routes, status codes and bodies follow ``HttpApiHandler.cs``; the client binding follows
``Bindings/BindingHelper.cs`` (DurableOrchestrationClientToString).

Two prefixes serve the same handlers:

- ``/runtime/webhooks/durabletask/``: the public webhook. The Functions host requires a system
  key (``?code=`` or ``x-functions-key``) for it; the URLs the host hands out (check-status
  payloads, the binding's management URLs) carry ``code=``. The devhost has one key, printed at
  start (``DEVHOST_FUNCTION_KEY`` in tests), which it accepts as the master key is accepted.
- ``/durabletask/``: the extension's local RPC endpoint (``LocalHttpListener``, the binding's
  ``rpcBaseUrl``) that the SDK's client calls. It needs no key and answers loopback callers only.

Error bodies are what ``request.CreateErrorResponse`` writes (``{"Message": ...}``); a 404 for an
unknown instance has an empty body (``request.CreateResponse(HttpStatusCode.NotFound)``).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus as S
from dateutil import parser as dateparser

from .engine import (
    Engine,
    InstanceConflict,
    InstanceGone,
    InstanceNotFound,
    InvalidArgument,
)
from .model import TERMINAL_NAMES
from .store import escape_key, with_etag

PREFIX = "/runtime/webhooks/durabletask"
RPC_PREFIX = "/durabletask"
CONNECTION = "Storage"
DEFAULT_PAGE_SIZE = 100  # OrchestrationStatusQueryCondition.PageSize
ACCEPTED_STATUSES = frozenset({S.Running.value, S.Pending.value, S.ContinuedAsNew.value, S.Suspended.value})

REWIND_GONE = frozenset({S.Canceled.value, S.Terminated.value, S.Completed.value})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def binding_json(base_url: str, hub: str, system_key: str | None = None) -> str:
    """The durable client binding the extension hands to a ``durable_client_input``
    (BindingHelper.DurableOrchestrationClientToString, HttpApiHandler.GetInstanceCreationLinks
    and CreateHttpManagementPayload)."""
    base = f"{base_url}{PREFIX}"
    code = f"code={quote(system_key, safe='')}" if system_key else ""
    management_qs = "&".join(q for q in (f"taskHub={quote(hub)}&connection={CONNECTION}", code) if q)
    instance = f"{base}/instances/INSTANCEID"
    creation = f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]"
    return json.dumps(
        {
            "taskHubName": hub,
            "creationUrls": {
                "createNewInstancePostUri": f"{creation}?{code}",
                "createAndWaitOnNewInstancePostUri": f"{creation}?timeout={{timeoutInSeconds}}"
                f"&pollingInterval={{intervalInSeconds}}&{code}",
            },
            "managementUrls": {
                "id": "INSTANCEID",
                "statusQueryGetUri": f"{instance}?{management_qs}",
                "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{management_qs}",
                "terminatePostUri": f"{instance}/terminate?reason={{text}}&{management_qs}",
                "rewindPostUri": f"{instance}/rewind?reason={{text}}&{management_qs}",
                "purgeHistoryDeleteUri": f"{instance}?{management_qs}",
                "restartPostUri": f"{instance}/restart?{management_qs}",
                "suspendPostUri": f"{instance}/suspend?reason={{text}}&{management_qs}",
                "resumePostUri": f"{instance}/resume?reason={{text}}&{management_qs}",
            },
            "baseUrl": base,
            "requiredQueryStringParameters": code,
            "rpcBaseUrl": f"{base_url}{RPC_PREFIX}/",
        }
    )


def _error(status: int, message: str, exception: str | None = None) -> web.Response:
    body: dict[str, Any] = {"Message": message}
    if exception:
        body["ExceptionMessage"] = exception
    return web.json_response(body, status=status)


def _empty(status: int) -> web.Response:
    return web.Response(status=status)


def _parse_once(raw: bytes) -> tuple[bool, str | None]:
    """The body parsed once (``JsonConvert.DeserializeObject`` / ``ConvertToJToken``) and written
    back as compact JSON, as the extension serialises it into the message: (ok, JSON text)."""
    if not raw.strip():
        return True, None
    try:
        value = json.loads(raw)
    except ValueError:
        return False, None
    return True, json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _flag(request: web.Request, name: str, default: bool) -> bool:
    """``bool.TryParse``: "true"/"false" in any case, anything else leaves the default."""
    value = request.query.get(name, "").strip().lower()
    return {"true": True, "false": False}.get(value, default)


def _time(request: web.Request, name: str) -> datetime | None:
    """``DateTime.TryParse``: a value that does not parse is ignored, as the host ignores it."""
    text = request.query.get(name)
    if not text:
        return None
    try:
        when: datetime = dateparser.isoparse(text)
    except ValueError:
        try:
            when = dateparser.parse(text)
        except (ValueError, OverflowError):
            return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _seconds(request: web.Request, name: str) -> float | None:
    """``TryGetTimeSpanQueryParameterValue``: a number of seconds, or nothing."""
    try:
        return float(request.query.get(name, ""))
    except ValueError:
        return None


def _int(request: web.Request, name: str) -> int | None:
    try:
        return int(request.query.get(name, ""))
    except ValueError:
        return None


def _statuses(request: web.Request) -> list[str]:
    """``TryGetIEnumerableQueryParameterValue<OrchestrationRuntimeStatus>``: unknown names dropped."""
    out = []
    for part in request.query.getall("runtimeStatus", []):
        for name in part.split(","):
            match = next((s.value for s in S if s.value.lower() == name.strip().lower()), None)
            if match and match not in out:
                out.append(match)
    return out


def _is_loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


class ManagementApi:
    def __init__(self, engine: Engine, hub: str, system_key: str | None = None) -> None:
        self.engine = engine
        self.hub = hub
        self.system_key = system_key

    def binding_json(self, base_url: str) -> str:
        return binding_json(base_url, self.hub, self.system_key)

    def routes(self) -> list[web.RouteDef]:
        table: list[tuple[str, str, Handler]] = [
            ("POST", "/orchestrators/{name}", self.start),
            ("POST", "/orchestrators/{name}/{instance_id}", self.start),
            ("POST", "/instances/{instance_id}/raiseEvent/{event}", self.raise_event),
            ("POST", "/instances/{instance_id}/terminate", self.terminate),
            ("POST", "/instances/{instance_id}/suspend", self.suspend),
            ("POST", "/instances/{instance_id}/resume", self.resume),
            ("POST", "/instances/{instance_id}/rewind", self.rewind),
            ("POST", "/instances/{instance_id}/restart", self.restart),
            ("GET", "/instances/{instance_id}", self.status),
            ("GET", "/instances", self.query),
            ("GET", "/instances/", self.query),
            ("DELETE", "/instances/{instance_id}", self.purge),
            ("DELETE", "/instances", self.purge_by),
            ("DELETE", "/instances/", self.purge_by),
        ]
        routes = []
        for method, path, handler in table:
            routes.append(web.route(method, PREFIX + path, self._keyed(handler)))
            routes.append(web.route(method, RPC_PREFIX + path, self._local(handler)))
        return routes

    def _keyed(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if self.system_key is not None:
                given = request.query.get("code") or request.headers.get("x-functions-key") or ""
                if not hmac.compare_digest(given.encode(), self.system_key.encode()):
                    return _empty(401)
            return await handler(request)

        return guarded

    def _local(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not _is_loopback(request):
                return _empty(404)
            return await handler(request)

        return guarded

    def _payload(self, request: web.Request, instance_id: str) -> dict[str, str]:
        """CreateCheckStatusResponseMessage's body: the management URLs on the caller's origin."""
        base = f"{request.scheme}://{request.host}"
        urls = json.loads(self.binding_json(base))["managementUrls"]
        escaped = quote(instance_id, safe="")
        body = {"id": instance_id}
        for key in (
            "statusQueryGetUri",
            "sendEventPostUri",
            "terminatePostUri",
            "purgeHistoryDeleteUri",
            "restartPostUri",
            "suspendPostUri",
            "resumePostUri",
        ):
            body[key] = urls[key].replace("INSTANCEID", escaped)
        return body

    def _check_status(self, request: web.Request, instance_id: str) -> web.Response:
        payload = self._payload(request, instance_id)
        return web.json_response(
            payload, status=202, headers={"Location": payload["statusQueryGetUri"], "Retry-After": "10"}
        )

    async def _answer(self, request: web.Request, instance_id: str) -> web.Response:
        """CreateCheckStatusResponse, or with ``timeout`` and ``pollingInterval`` (seconds)
        WaitForCompletionOrCreateCheckStatusResponseAsync: the output (200) if the instance
        completes in time, its status if it fails or ends otherwise, else the 202 payload."""
        timeout, interval = _seconds(request, "timeout"), _seconds(request, "pollingInterval")
        if timeout is None or interval is None:
            return self._check_status(request, instance_id)
        if interval > timeout:
            return _error(
                400,
                "One or more of the arguments submitted is incorrect",
                f"Total timeout {timeout:g} should be bigger than retry timeout {interval:g}",
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            status = await self.engine.get_status(instance_id, show_input=False)
            runtime = status["runtimeStatus"] if status else None
            if runtime == S.Completed.value and status is not None:
                return web.json_response(status["output"])
            if runtime in TERMINAL_NAMES:
                return await self.status(request, instance_id)
            left = deadline - loop.time()
            if left <= 0:
                return self._check_status(request, instance_id)
            await asyncio.sleep(min(interval, left))

    async def start(self, request: web.Request) -> web.Response:
        ok, input_json = _parse_once(await request.read())
        if not ok:
            return _error(400, "Invalid JSON content")
        try:
            row = await self.engine.start_new(
                request.match_info["name"], request.match_info.get("instance_id"), input_json
            )
        except InvalidArgument as exc:
            return _error(400, "One or more of the arguments submitted is incorrect", str(exc))
        except InstanceConflict as exc:
            # OrchestrationAlreadyExistsException is not an ArgumentException: HandleRequestAsync's
            # catch-all answers 500.
            return _error(500, "Something went wrong while processing your request", str(exc))
        return await self._answer(request, row["PartitionKey"])

    async def _current(self, instance_id: str) -> str | None:
        rt = self.engine.runtimes.get(instance_id)
        if rt is not None and not rt.gone:
            # Loaded: its row is the last commit, and this engine is the instance's only writer.
            return str(rt.row.get("RuntimeStatus"))
        row = await self.engine.store.get_instance(instance_id)
        return None if row is None else str(row.get("RuntimeStatus"))

    async def _refusal(self, instance_id: str, gone: frozenset[str] = TERMINAL_NAMES) -> web.Response | None:
        """The host's first checks: 404 for an unknown instance, 410 for one in ``gone``."""
        status = await self._current(instance_id)
        if status is None:
            return _empty(404)
        if status in gone:
            return _empty(410)
        return None

    async def raise_event(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        if (refused := await self._refusal(instance_id)) is not None:
            return refused
        if request.content_type.lower() != "application/json":
            return _error(400, "Only application/json request content is supported")
        ok, data = _parse_once(await request.read())
        if not ok:
            return _error(400, "Invalid JSON content")
        try:
            await self.engine.raise_event(instance_id, request.match_info["event"], data)
        except InstanceNotFound:
            return _empty(404)
        except InstanceGone:
            return _empty(410)
        return _empty(202)

    async def _control(
        self, request: web.Request, op: Callable[[str, str | None], Awaitable[None]]
    ) -> web.Response:
        instance_id = request.match_info["instance_id"]
        if (refused := await self._refusal(instance_id)) is not None:
            return refused
        try:
            await op(instance_id, request.query.get("reason"))
        except InstanceNotFound:
            return _empty(404)
        except InstanceGone:
            return _empty(410)
        return _empty(202)

    async def terminate(self, request: web.Request) -> web.Response:
        return await self._control(request, self.engine.terminate)

    async def suspend(self, request: web.Request) -> web.Response:
        return await self._control(request, self.engine.suspend)

    async def resume(self, request: web.Request) -> web.Response:
        return await self._control(request, self.engine.resume)

    async def rewind(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        if (refused := await self._refusal(instance_id, REWIND_GONE)) is not None:
            return refused
        try:
            await self.engine.rewind(instance_id, request.query.get("reason"))
        except InvalidArgument as exc:
            return _error(400, "One or more of the arguments submitted is incorrect", str(exc))
        return _empty(202)

    async def restart(self, request: web.Request) -> web.Response:
        try:
            new_id = await self.engine.restart(
                request.match_info["instance_id"], _flag(request, "restartWithNewInstanceId", True)
            )
        except InvalidArgument as exc:
            return _error(400, "InstanceId does not match a valid orchestration instance.", str(exc))
        except InstanceConflict as exc:
            return _error(500, "Something went wrong while processing your request", str(exc))
        return await self._answer(request, new_id)

    async def status(self, request: web.Request, instance_id: str | None = None) -> web.Response:
        status = await self.engine.get_status(
            instance_id or request.match_info["instance_id"],
            show_history=_flag(request, "showHistory", False),
            show_history_output=_flag(request, "showHistoryOutput", False),
            show_input=_flag(request, "showInput", True),
        )
        if status is None:
            return _empty(404)
        runtime = status["runtimeStatus"]
        headers = {}
        code = 200
        if runtime in ACCEPTED_STATUSES:
            code = 202
            headers = {"Location": str(request.url), "Retry-After": "5"}
        elif runtime == S.Failed.value and _flag(request, "returnInternalServerErrorOnFailure", False):
            code = 500
        return web.json_response(status, status=code, headers=headers)

    def _filter(self, request: web.Request, statuses: list[str]) -> tuple[str, dict[str, Any]]:
        clauses: list[str] = ["RowKey eq ''"]
        params: dict[str, Any] = {}
        if statuses:
            parts = []
            for i, s in enumerate(statuses):
                params[f"s{i}"] = s
                parts.append(f"RuntimeStatus eq @s{i}")
            # Spaces around the parentheses: the SDK's @param substitution splits on whitespace.
            clauses.append("( " + " or ".join(parts) + " )")
        if (since := _time(request, "createdTimeFrom")) is not None:
            params["since"] = since
            clauses.append("CreatedTime ge @since")
        if (until := _time(request, "createdTimeTo")) is not None:
            params["until"] = until
            clauses.append("CreatedTime le @until")
        if prefix := request.query.get("instanceIdPrefix"):
            # Prefix match on the key: [prefix, prefix with its last character incremented).
            escaped = escape_key(prefix)
            params["p0"], params["p1"] = escaped, escaped[:-1] + chr(ord(escaped[-1]) + 1)
            clauses.append("PartitionKey ge @p0 and PartitionKey lt @p1")
        return " and ".join(clauses), params

    async def query(self, request: web.Request) -> web.Response:
        query_filter, params = self._filter(request, _statuses(request))
        top = _int(request, "top")
        page_size = top if top and top > 0 else DEFAULT_PAGE_SIZE
        token_text = request.headers.get("x-ms-continuation-token")
        token = None
        if token_text:
            try:
                token = json.loads(base64.b64decode(token_text))
            except ValueError:
                return _error(
                    400, "One or more of the arguments submitted is incorrect", "bad continuation token"
                )
        pages = self.engine.store.query_instances(query_filter, params, page_size=page_size).by_page(
            continuation_token=token
        )
        show_input = _flag(request, "showInput", True)
        result: list[dict[str, Any]] = []
        next_token = None
        async for page in pages:
            result = []
            async for row in page:
                result.append(await self.engine.status_json(with_etag(row), show_input))
            next_token = pages.continuation_token
            break
        encoded = base64.b64encode(json.dumps(next_token).encode()).decode() if next_token else ""
        # HandleGetStatusRequestAsync adds the header on every answer, empty on the last page.
        return web.json_response(result, headers={"x-ms-continuation-token": encoded})

    async def purge(self, request: web.Request) -> web.Response:
        deleted = await self.engine.purge(request.match_info["instance_id"])
        if not deleted:
            return _empty(404)
        return web.json_response({"instancesDeleted": deleted})

    async def purge_by(self, request: web.Request) -> web.Response:
        if _time(request, "createdTimeFrom") is None:
            return _error(400, "Please provide value for 'createdTimeFrom' parameter.")
        # AzureTableTrackingStore.PurgeInstanceHistoryAsync keeps only the terminal statuses asked for.
        statuses = [s for s in _statuses(request) if s in TERMINAL_NAMES]
        query_filter, params = self._filter(request, statuses)
        ids = [row["PartitionKey"] async for row in self.engine.store.all_instances(query_filter, params)]
        deleted = 0
        for instance_id in ids:
            deleted += await self.engine.purge(instance_id)
        if not deleted:
            return _empty(404)
        return web.json_response({"instancesDeleted": deleted})
