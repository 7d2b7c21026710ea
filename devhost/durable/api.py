"""The Durable management API under ``/runtime/webhooks/durabletask/``.

What ``DurableOrchestrationClient`` calls at its ``rpcBaseUrl`` and what the check-status URLs
point at, answering with the status codes and bodies that client parses. Bound to loopback
only, so it asks for no system key.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .engine import (
    ACTIVE,
    TERMINAL,
    Engine,
    InstanceConflict,
    InstanceGone,
    InstanceNotFound,
    UnknownOrchestrator,
)

PREFIX = "/runtime/webhooks/durabletask"
CONNECTION = "Storage"


def binding_json(base_url: str, hub: str) -> str:
    """The durable client binding the Functions host would hand to a ``durable_client_input``."""
    rpc = f"{base_url}{PREFIX}/"
    qs = f"taskHub={quote(hub)}&connection={CONNECTION}"
    instance = f"{rpc}instances/INSTANCEID"
    return json.dumps(
        {
            "taskHubName": hub,
            "creationUrls": {
                "createNewInstancePostUri": f"{rpc}orchestrators/{{functionName}}[/{{instanceId}}]?{qs}",
                "createAndWaitOnNewInstancePostUri": f"{rpc}orchestrators/{{functionName}}[/{{instanceId}}]"
                f"?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{qs}",
            },
            "managementUrls": {
                "id": "INSTANCEID",
                "statusQueryGetUri": f"{instance}?{qs}",
                "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{qs}",
                "terminatePostUri": f"{instance}/terminate?reason={{text}}&{qs}",
                "rewindPostUri": f"{instance}/rewind?reason={{text}}&{qs}",
                "purgeHistoryDeleteUri": f"{instance}?{qs}",
                "restartPostUri": f"{instance}/restart?{qs}",
                "suspendPostUri": f"{instance}/suspend?reason={{text}}&{qs}",
                "resumePostUri": f"{instance}/resume?reason={{text}}&{qs}",
            },
            "baseUrl": rpc,
            "requiredQueryStringParameters": qs,
            "rpcBaseUrl": rpc,
            "httpBaseUrl": "",
            "maxGrpcMessageSizeInBytes": 0,
            "grpcHttpClientTimeout": "00:01:40",
        }
    )


def _decode_body(raw: bytes) -> Any:
    """The Python client posts ``json=json.dumps(value)``: a JSON string holding JSON. Undo both
    layers; a plain JSON body (curl) is taken as it is."""
    if not raw.strip():
        return None
    value = json.loads(raw)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _message(status: int, text: str) -> web.Response:
    return web.json_response({"Message": text}, status=status)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class ManagementApi:
    def __init__(self, engine: Engine, hub: str) -> None:
        self.engine = engine
        self.hub = hub

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(PREFIX + "/orchestrators/{name}", self.start),
            web.post(PREFIX + "/orchestrators/{name}/{instance_id}", self.start),
            web.post(PREFIX + "/instances/{instance_id}/raiseEvent/{event}", self.raise_event),
            web.post(PREFIX + "/instances/{instance_id}/terminate", self.terminate),
            web.get(PREFIX + "/instances/{instance_id}", self.status),
            web.get(PREFIX + "/instances", self.query),
            web.get(PREFIX + "/instances/", self.query),
            web.delete(PREFIX + "/instances/{instance_id}", self.purge),
            web.delete(PREFIX + "/instances", self.purge_by),
            web.delete(PREFIX + "/instances/", self.purge_by),
        ]

    def _payload(self, request: web.Request, instance_id: str) -> dict[str, str]:
        base = f"{request.scheme}://{request.host}"
        urls = json.loads(binding_json(base, self.hub))["managementUrls"]
        return {key: value.replace("INSTANCEID", quote(instance_id, safe="")) for key, value in urls.items()}

    async def start(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            data = _decode_body(await request.read())
        except ValueError:
            return _message(400, "The request body is not valid JSON.")
        input_json = json.dumps(data) if data is not None else None
        try:
            row = await self.engine.start_new(name, request.match_info.get("instance_id"), input_json)
        except UnknownOrchestrator as exc:
            return _message(400, str(exc))
        except InstanceConflict as exc:
            return _message(409, str(exc))
        payload = self._payload(request, row["PartitionKey"])
        return web.json_response(payload, status=202, headers={"Location": payload["statusQueryGetUri"]})

    async def raise_event(self, request: web.Request) -> web.Response:
        try:
            data = _decode_body(await request.read())
        except ValueError:
            return _message(400, "Only application/json request content is supported")
        try:
            await self.engine.raise_event(
                request.match_info["instance_id"], request.match_info["event"], data
            )
        except InstanceNotFound as exc:
            return _message(404, str(exc))
        except InstanceGone as exc:
            return _message(410, str(exc))
        return web.json_response(None, status=202)

    async def terminate(self, request: web.Request) -> web.Response:
        try:
            await self.engine.terminate(request.match_info["instance_id"], request.query.get("reason", ""))
        except InstanceNotFound as exc:
            return _message(404, str(exc))
        except InstanceGone as exc:
            return _message(410, str(exc))
        return web.json_response(None, status=202)

    async def status(self, request: web.Request) -> web.Response:
        q = request.query
        flag = lambda name, default: q.get(name, default).lower() == "true"  # noqa: E731
        instance_id = request.match_info["instance_id"]
        status = await self.engine.get_status(
            instance_id,
            show_history=flag("showHistory", "false"),
            show_history_output=flag("showHistoryOutput", "false"),
            show_input=flag("showInput", "true"),
        )
        if status is None:
            # A JSON string: the client turns it into a falsy DurableOrchestrationStatus.
            return web.json_response(f"No instance with ID '{instance_id}' found.", status=404)
        code = 202 if status["runtimeStatus"] in ACTIVE else 200
        if status["runtimeStatus"] == "Failed" and flag("returnInternalServerErrorOnFailure", "false"):
            code = 500
        headers = {}
        if code == 202:
            headers = {"Location": str(request.url), "Retry-After": "1"}
        return web.json_response(status, status=code, headers=headers)

    def _filter(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        q = request.query
        clauses, params = [], {}
        statuses = [s for s in q.get("runtimeStatus", "").split(",") if s]
        if statuses:
            parts = []
            for i, s in enumerate(statuses):
                params[f"s{i}"] = s
                parts.append(f"RuntimeStatus eq @s{i}")
            # Spaces around the parentheses: the SDK's @param substitution splits on whitespace.
            clauses.append("( " + " or ".join(parts) + " )")
        if (since := _parse_time(q.get("createdTimeFrom"))) is not None:
            params["since"] = since
            clauses.append("CreatedTime ge @since")
        if (until := _parse_time(q.get("createdTimeTo"))) is not None:
            params["until"] = until
            clauses.append("CreatedTime le @until")
        if prefix := q.get("instanceIdPrefix"):
            # Prefix match on the key: [prefix, prefix + the highest char).
            params["p0"], params["p1"] = prefix, prefix + "\uffff"
            clauses.append("PartitionKey ge @p0 and PartitionKey lt @p1")
        return " and ".join(clauses) or "RowKey eq ''", params

    async def query(self, request: web.Request) -> web.Response:
        query_filter, params = self._filter(request)
        top = int(request.query.get("top", "0") or 0) or None
        token = request.headers.get("x-ms-continuation-token")
        pages = self.engine.store.query_instances(query_filter, params, page_size=top).by_page(
            continuation_token=json.loads(base64.b64decode(token)) if token else None
        )
        show_input = request.query.get("showInput", "false").lower() == "true"
        result: list[dict[str, Any]] = []
        next_token = None
        async for page in pages:
            result = [self.engine.status_json(dict(row), show_input) async for row in page]
            next_token = pages.continuation_token
            break
        headers = {}
        if top and next_token:
            headers["x-ms-continuation-token"] = base64.b64encode(json.dumps(next_token).encode()).decode()
        return web.json_response(result, headers=headers)

    async def purge(self, request: web.Request) -> web.Response:
        deleted = await self.engine.purge(request.match_info["instance_id"])
        if not deleted:
            return _message(404, "No instance found.")
        return web.json_response({"instancesDeleted": deleted})

    async def purge_by(self, request: web.Request) -> web.Response:
        query_filter, params = self._filter(request)
        ids = [
            row["PartitionKey"]
            async for row in self.engine.store.all_instances(query_filter, params)
            if row.get("RuntimeStatus") in TERMINAL
        ]
        for instance_id in ids:
            await self.engine.purge(instance_id)
        if not ids:
            return _message(404, "No instances matched.")
        return web.json_response({"instancesDeleted": len(ids)})
