"""The real Azure Functions Python worker, driven in-process as the Functions host drives it.

On Python 3.13+ the Functions host starts a *proxy worker* that imports the worker library
(``azure_functions_runtime``, pinned in requirements.txt) and calls its handlers with the host's
``StreamingMessage`` protobufs: ``worker_init_request`` (which indexes the app and validates every
function, annotations included), ``functions_metadata_request``, ``function_load_request`` and,
per call, ``invocation_request``. The devhost does exactly that, in the same process, so the
code that converts HTTP requests and responses, route parameters, headers, durable client
bindings, orchestration contexts, activity inputs/outputs and timer payloads is the worker's own.

Why in-process and not the host's side of a gRPC stream: on 3.13 the production path *is*
in-process (the proxy worker and the library share a process; only the proxy speaks gRPC to the
host), the handlers are public API of the library, and it costs no serialisation round trip per
call. The messages are still real protobufs, built from the protocol's generated module.

What the devhost sends is what the host sends (Azure/azure-functions-host):
- HTTP: ``GrpcMessageConversionExtensions.ToRpcHttp`` — lower-cased header names, query values
  only when non-empty, route data as ``params``, and with the worker's ``RawHttpBodyBytes`` and
  ``RpcHttpBodyOnly`` capabilities the body as ``bytes`` only, and only when there is one.
- Orchestration trigger: the context JSON as a string (durable extension,
  ``OrchestrationTriggerAttributeBindingProvider.OrchestrationContextToString``).
- Activity trigger: the input as JSON (``ActivityTriggerAttributeBindingProvider``:
  ``GetInputAsJson``).
- Durable client input: the client's binding JSON as a string.
- Timer trigger: ``{"Schedule", "ScheduleStatus", "IsPastDue"}`` as JSON (what
  ``azure.functions.timer.TimerRequestConverter`` reads).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import sys
import types
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import azure_functions_runtime as runtime

from .durable.registry import FunctionFailed

if TYPE_CHECKING:
    from .worker_processes import WorkerProcesses

PROTOCOL_DIST = "azure-functions-runtime-v1"  # ships the generated FunctionRpc_pb2 module
PROTOCOL_PACKAGE = "_devhost_function_rpc"  # a private name: the wheel puts it under "tests/protos"


def runtime_version() -> str:
    return importlib.metadata.version("azure-functions-runtime")


class WorkerRefused(Exception):
    """The worker would not load the app; ``str()`` is the worker's own message."""


def load_protos() -> types.ModuleType:
    """The protocol's generated module, loaded by file path.

    The wheel installs it as ``tests/protos`` in site-packages, which a project's own ``tests``
    package shadows, and its ``__init__`` imports grpc, which the protocol messages do not need.
    So it is mounted under a private package name and only the message modules are imported.
    """
    cached = sys.modules.get(f"{PROTOCOL_PACKAGE}.FunctionRpc_pb2")
    if cached is not None:
        return cached
    dist = importlib.metadata.distribution(PROTOCOL_DIST)
    marker = next((f for f in dist.files or [] if str(f).endswith("protos/FunctionRpc_pb2.py")), None)
    if marker is None:
        raise WorkerRefused(f"{PROTOCOL_DIST} is installed without FunctionRpc_pb2.py")
    package = types.ModuleType(PROTOCOL_PACKAGE)
    package.__path__ = [str(Path(str(dist.locate_file(marker))).parent)]
    sys.modules[PROTOCOL_PACKAGE] = package
    return importlib.import_module(f"{PROTOCOL_PACKAGE}.FunctionRpc_pb2")


@dataclass(frozen=True)
class Request:
    """What the worker's handlers receive: the message and the host's properties."""

    request: Any
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionInfo:
    """One function as the worker reported it in its metadata."""

    name: str
    function_id: str
    bindings: list[dict[str, Any]]
    is_async_hint: bool = False

    @property
    def trigger(self) -> dict[str, Any]:
        return next(b for b in self.bindings if str(b.get("type", "")).lower().endswith("trigger"))

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [b for b in self.bindings if b.get("type") == kind]


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str]


class Worker:
    """One app loaded by the real worker. ``await start()`` indexes it; then invoke its functions.

    It implements the durable engine's ``FunctionRunner``: orchestrations, activities and timers
    all run through ``invocation_request``.
    """

    def __init__(self, app_dir: Path, script_file: str = "function_app.py") -> None:
        self.app_dir = app_dir.resolve()
        self.script_file = script_file
        self.protos = load_protos()
        self.functions: dict[str, FunctionInfo] = {}
        self._by_lower: dict[str, str] = {}
        self.orchestrators: frozenset[str] = frozenset()
        self.activities: frozenset[str] = frozenset()
        self.entities: frozenset[str] = frozenset()
        self.timers: dict[str, str] = {}
        self.run_on_startup: frozenset[str] = frozenset()
        self.bindings: dict[str, list[dict[str, Any]]] = {}
        # The durable client binding JSON for non-HTTP triggers (the host sets it): the Functions
        # host binds a durableClient input to any trigger, a timer's included.
        self.client_binding: Callable[[], str] | None = None
        # FUNCTIONS_WORKER_PROCESS_COUNT > 1: invocations run in worker processes of their own
        # (devhost.worker_processes); this process still indexes the app, as each of them does.
        self.processes: WorkerProcesses | None = None

    # -- loading -----------------------------------------------------------------------------
    async def start(self) -> list[FunctionInfo]:
        p = self.protos
        # The worker imports the script by its stem from the app directory, as on Azure, where
        # the app root is on sys.path; PYTHON_SCRIPT_FILE_NAME is the host's setting for it.
        os.environ["PYTHON_SCRIPT_FILE_NAME"] = self.script_file
        if str(self.app_dir) not in sys.path:
            sys.path.insert(0, str(self.app_dir))
        runtime.start_threadpool_executor()
        init = await runtime.worker_init_request(
            Request(
                p.StreamingMessage(
                    worker_init_request=p.WorkerInitRequest(
                        host_version="4.1044.0",
                        function_app_directory=str(self.app_dir),
                        capabilities={},
                    )
                ),
                {"protos": p, "host": "127.0.0.1"},
            )
        )
        self._check(init.result, "worker init")
        meta = await runtime.functions_metadata_request(
            Request(
                p.StreamingMessage(
                    functions_metadata_request=p.FunctionsMetadataRequest(
                        function_app_directory=str(self.app_dir)
                    )
                )
            )
        )
        self._check(meta.result, "functions metadata")
        if not meta.function_metadata_results:
            raise WorkerRefused(
                f"the worker found no functions in {self.app_dir / self.script_file} "
                "(the host would report: No job functions found)"
            )
        for fm in meta.function_metadata_results:
            bindings = [json.loads(raw) for raw in fm.raw_bindings]
            info = FunctionInfo(name=fm.name, function_id=fm.function_id, bindings=bindings)
            loaded = await runtime.function_load_request(
                Request(
                    p.StreamingMessage(
                        function_load_request=p.FunctionLoadRequest(function_id=fm.function_id, metadata=fm)
                    )
                )
            )
            self._check(loaded.result, f"load of {fm.name}")
            self.functions[fm.name] = info
            # Function names are case-insensitive in the host (FunctionMetadataManager and the
            # durable extension's FunctionName compare with OrdinalIgnoreCase).
            self._by_lower[fm.name.lower()] = fm.name
            self.bindings[fm.name] = bindings
        self._classify()
        if self.processes is not None:
            await self.processes.start()
        return list(self.functions.values())

    async def stop(self) -> None:
        if self.processes is not None:
            await self.processes.stop()

    def _classify(self) -> None:
        kinds: dict[str, set[str]] = {}
        for info in self.functions.values():
            kinds.setdefault(info.trigger_type, set()).add(info.name)
        self.orchestrators = frozenset(kinds.get("orchestrationTrigger", set()))
        self.activities = frozenset(kinds.get("activityTrigger", set()))
        self.entities = frozenset(kinds.get("entityTrigger", set()))
        self.timers = {
            n: _resolve_setting(str(self.functions[n].trigger.get("schedule", "")))
            for n in kinds.get("timerTrigger", set())
        }
        self.run_on_startup = frozenset(
            n for n in self.timers if _truthy(self.functions[n].trigger.get("runOnStartup"))
        )

    @staticmethod
    def _check(result: Any, what: str) -> None:
        if result.status != result.Success:
            message = result.exception.message or f"{what} failed"
            raise WorkerRefused(message)

    # -- invocation --------------------------------------------------------------------------
    def canonical(self, name: str) -> str | None:
        return self._by_lower.get(name.lower())

    async def invoke(
        self, name: str, inputs: Mapping[str, Any], trigger_metadata: Mapping[str, Any] | None = None
    ) -> Any:
        """One ``InvocationRequest``; the worker's ``InvocationResponse`` (failures included)."""
        p = self.protos
        info = self.functions[name]
        request = p.InvocationRequest(
            invocation_id=str(uuid.uuid4()),
            function_id=info.function_id,
            input_data=[p.ParameterBinding(name=k, data=v) for k, v in inputs.items()],
            trigger_metadata=dict(trigger_metadata or {}),
        )
        message = p.StreamingMessage(invocation_request=request)
        if self.processes is not None:
            answer = await self.processes.execute(request.invocation_id, message.SerializeToString())
            return p.StreamingMessage.FromString(answer).invocation_response
        return await runtime.invocation_request(Request(message))

    async def _call(self, name: str, inputs: Mapping[str, Any]) -> Any:
        response = await self.invoke(name, inputs)
        if response.result.status != response.result.Success:
            raise FunctionFailed(response.result.exception.message)
        return response

    def _trigger_param(self, name: str) -> str:
        return str(self.functions[name].trigger["name"])

    async def run_orchestrator(self, name: str, context_json: str) -> str:
        response = await self._call(
            name, {self._trigger_param(name): self.protos.TypedData(string=context_json)}
        )
        return _text(response.return_value)

    async def run_activity(self, name: str, input_json: str | None) -> str | None:
        p = self.protos
        data = p.TypedData(json=input_json if input_json is not None else "null")
        response = await self._call(name, {self._trigger_param(name): data})
        if not response.HasField("return_value") or response.return_value.WhichOneof("data") is None:
            return None
        return _text(response.return_value)

    async def run_timer(self, name: str, *, past_due: bool, schedule_status: dict[str, Any] | None) -> None:
        payload = {
            "Schedule": {"AdjustForDST": True},
            "ScheduleStatus": schedule_status,
            "IsPastDue": past_due,
        }
        inputs = {self._trigger_param(name): self.protos.TypedData(json=json.dumps(payload))}
        for binding in self.bindings.get(name, []):
            if str(binding.get("type", "")).lower() == "durableclient" and self.client_binding is not None:
                inputs[str(binding["name"])] = self.protos.TypedData(string=self.client_binding())
        await self._call(name, inputs)

    async def run_http(
        self,
        name: str,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        route_params: Mapping[str, str],
        body: bytes,
        client_bindings: Mapping[str, str],
    ) -> HttpAnswer:
        p = self.protos
        http = p.RpcHttp(
            method=method,
            url=url,
            headers={k.lower(): v for k, v in headers.items()},
            query={k: v for k, v in query.items() if v},
            params=dict(route_params),
        )
        if body:
            http.body.CopyFrom(p.TypedData(bytes=body))
        inputs: dict[str, Any] = {self._trigger_param(name): p.TypedData(http=http)}
        for param, binding_json in client_bindings.items():
            inputs[param] = p.TypedData(string=binding_json)
        response = await self._call(name, inputs)
        return _http_answer(response)


def _http_answer(response: Any) -> HttpAnswer:
    """The HTTP response as the host reads it from the ``$return`` (or an ``http`` output) binding."""
    candidates = [response.return_value] if response.HasField("return_value") else []
    candidates += [o.data for o in response.output_data]
    for data in candidates:
        kind = data.WhichOneof("data")
        if kind == "http":
            http = data.http
            status = int(http.status_code or 200)
            return HttpAnswer(
                status=status,
                headers=dict(http.headers),
                body=_body_bytes(http.body),
                cookies=[_cookie(c) for c in http.cookies_list] if hasattr(http, "cookies_list") else [],
            )
        if kind in ("string", "bytes", "json"):
            # A function that returns a plain str: the host answers 200 with it as the body.
            raw = getattr(data, kind)
            return HttpAnswer(200, {}, raw if isinstance(raw, bytes) else raw.encode(), [])
    return HttpAnswer(204, {}, b"", [])


def _body_bytes(data: Any) -> bytes:
    kind = data.WhichOneof("data")
    if kind is None:
        return b""
    value = getattr(data, kind)
    return value if isinstance(value, bytes) else str(value).encode()


def _cookie(c: Any) -> str:
    return f"{c.name}={c.value}"


def _text(data: Any) -> str:
    kind = data.WhichOneof("data")
    if kind in ("string", "json"):
        return str(getattr(data, kind))
    if kind == "bytes":
        return bytes(data.bytes).decode()
    raise FunctionFailed(f"the worker returned {kind or 'nothing'} where JSON was expected")


def _resolve_setting(value: str) -> str:
    """``%Name%`` in a binding names an app setting, as the host resolves it."""
    if len(value) > 2 and value.startswith("%") and value.endswith("%"):
        return os.environ.get(value[1:-1], "")
    return value


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def describe(functions: list[FunctionInfo]) -> list[dict[str, Any]]:
    """What the host learns of each function: name, trigger type, and for HTTP route, methods, auth."""
    out = []
    for f in sorted(functions, key=lambda f: f.name):
        trigger = f.trigger
        row: dict[str, Any] = {"name": f.name, "trigger": trigger["type"]}
        if trigger["type"] == "httpTrigger":
            row["route"] = trigger.get("route") or f.name
            row["methods"] = sorted(str(m).upper() for m in trigger.get("methods") or [])
            row["authLevel"] = str(trigger.get("authLevel", "function")).lower()
        if trigger["type"] == "timerTrigger":
            row["schedule"] = trigger.get("schedule")
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m devhost.worker [SCRIPT]``: index an app with the real worker and list what it
    loaded as JSON, or print the worker's refusal and exit 3."""
    import argparse
    import asyncio

    parser = argparse.ArgumentParser(prog="python -m devhost.worker", description=main.__doc__)
    parser.add_argument("script", nargs="?", default="function_app.py", type=Path)
    args = parser.parse_args(argv)
    script: Path = args.script.resolve()
    try:
        functions = asyncio.run(Worker(script.parent, script.name).start())
    except WorkerRefused as exc:
        print(f"the Python worker refused the app: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(describe(functions), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
