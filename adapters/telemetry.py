"""Structured logs and traces: every record says which appointment, instance and operation it is about.

- ``bind(...)`` sets the booking code, Durable instance id and operation for the code it wraps
  (contextvars, so concurrent invocations on one event loop do not mix). A log record factory
  copies them onto every record as ``booking_code``, ``instance_id`` and ``operation``; Azure
  Monitor's log exporter sends record attributes as custom dimensions. (So never pass those
  three names in ``extra=``: logging refuses to overwrite an attribute a record already has.)
- One trace per appointment: its W3C trace id is derived from the booking code
  (``traceparent_for``), so the booking trigger, the orchestration input, each activity, the
  Graph calls inside them (httpx instrumentation) and Graph's webhook all land in the same
  trace without any of them carrying more than the code they already have. The traceparent
  is a hash: no personal data, and it cannot be turned back into a booking code.
- ``configure()`` switches Azure Monitor on only when ``APPLICATIONINSIGHTS_CONNECTION_STRING``
  is set (azure-monitor-opentelemetry costs ~0.5 s of imports, so a cold start without it
  pays nothing), authenticating with the managed identity that
  ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` names: the component has local auth disabled.
- ``JsonFormatter``: the same records as one JSON object per line (the devhost's ``LOG_FORMAT=json``).

Nothing here logs a payload: callers pass booking codes, never names, phones or e-mails.
"""

import contextlib
import contextvars
import functools
import hashlib
import inspect
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

ATTRIBUTES = ("booking_code", "instance_id", "operation")
INSTANCE_PREFIX = "appt-"  # orchestrators/appointment_lifecycle.py's instance ids
_INSTANCE = re.compile(r"\bappt-([0-9A-Z]{8})\b")
TRACER = "verkkoneuvottelu"

_booking_code: contextvars.ContextVar[str | None] = contextvars.ContextVar("booking_code", default=None)
_instance_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("instance_id", default=None)
_operation: contextvars.ContextVar[str | None] = contextvars.ContextVar("operation", default=None)
_configured = False
log = logging.getLogger(__name__)


# --- the context every record carries -----------------------------------------------------


@contextlib.contextmanager
def bind(booking_code: str | None = None, *, operation: str | None = None) -> Iterator[None]:
    """Within the block, every log record names this appointment, its instance and the operation."""
    tokens = [
        _operation.set(operation or _operation.get()),
        _booking_code.set(booking_code or _booking_code.get()),
        _instance_id.set(INSTANCE_PREFIX + booking_code if booking_code else _instance_id.get()),
    ]
    try:
        yield
    finally:
        for token in reversed(tokens):
            token.var.reset(token)


def name_appointment(booking_code: str) -> None:
    """The invocation turned out to be about this appointment (a booking learns its code late):
    name it on the rest of the invocation's records and on its span. ``bind`` around the
    invocation restores the previous context afterwards."""
    from opentelemetry import trace

    _booking_code.set(booking_code)
    _instance_id.set(INSTANCE_PREFIX + booking_code)
    trace.get_current_span().set_attribute("appointment.booking_code", booking_code)


def _enrich(record: logging.LogRecord) -> logging.LogRecord:
    code = _booking_code.get()
    if code is None:
        # The orchestrator logs only when not replaying and cannot bind (it is a generator the
        # SDK resumes); its messages name the instance id, which names the appointment.
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            text = str(record.msg)
        if m := _INSTANCE.search(text):
            code = m.group(1)
    for name, value in (
        ("booking_code", code),
        ("instance_id", _instance_id.get() or (INSTANCE_PREFIX + code if code else None)),
        ("operation", _operation.get() or _operation_from_logger(record.name)),
    ):
        if getattr(record, name, None) is None:
            setattr(record, name, value)
    return record


def _operation_from_logger(name: str) -> str | None:
    for prefix, operation in (
        ("orchestrators.", "orchestration"),
        ("activities.", "activity"),
        ("http_triggers.", "trigger"),
        ("timer_triggers.", "timer"),
        ("adapters.graph", "graph"),
    ):
        if name.startswith(prefix):
            return operation
    return None


def install_record_factory() -> None:
    """Make every record (any logger, any handler) carry the bound attributes. Idempotent."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_adds_appointment_context", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return _enrich(current(*args, **kwargs))

    factory._adds_appointment_context = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


_CODE = re.compile(r"^[0-9A-Z]{8}$")


def booking_code_of(req: Any) -> str | None:
    """The booking code an HTTP request is about (route ``{code}``, or Graph's ``?appointment=``),
    only when it looks like one: a caller's arbitrary text never becomes a log attribute."""
    if req is None:
        return None
    raw = (getattr(req, "route_params", None) or {}).get("code") or (getattr(req, "params", None) or {}).get(
        "appointment"
    )
    code = raw.strip().upper() if isinstance(raw, str) else ""
    return code if _CODE.match(code) else None


# --- traces -------------------------------------------------------------------------------


def traceparent_for(booking_code: str) -> str:
    """The W3C traceparent every part of one appointment's trace descends from."""
    digest = hashlib.sha256(b"appointment-trace:" + booking_code.encode()).digest()
    trace_id, span_id = digest[:16].hex(), digest[16:24].hex()
    return f"00-{trace_id}-{span_id}-01"


@contextlib.contextmanager
def span(
    name: str, booking_code: str | None, *, operation: str, traceparent: str | None = None
) -> Iterator[None]:
    """Bind the log context and run the block in a span of the appointment's trace.

    Without a configured tracer provider (no connection string) the span is OpenTelemetry's
    no-op one, so this costs next to nothing locally.
    """
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = None
    if traceparent or booking_code:
        carrier = {"traceparent": traceparent or traceparent_for(booking_code or "")}
        parent = TraceContextTextMapPropagator().extract(carrier)
    attributes = {"appointment.operation": operation}
    if booking_code:
        attributes |= {
            "appointment.booking_code": booking_code,
            "durable.instance_id": INSTANCE_PREFIX + booking_code,
        }
    tracer = trace.get_tracer(TRACER)
    started = time.perf_counter()
    outcome = "failed"
    with (
        bind(booking_code, operation=operation),
        tracer.start_as_current_span(name, context=parent, attributes=attributes),
    ):
        try:
            yield
            outcome = "done"
        finally:
            # What the host's "Executed ..." line says, plus the appointment it was about.
            log.info("%s %s in %.0f ms", operation, outcome, (time.perf_counter() - started) * 1000)


def traced_activity[F: Callable[..., Any]](fn: F) -> F:
    """An activity's span and log context from its payload's ``bookingCode`` (and ``traceparent``).

    ``functools.wraps`` keeps the signature and annotations the worker checks at load.
    """

    def context_of(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[str | None, str | None]:
        payload = kwargs.get("payload", args[0] if args else None)
        if not isinstance(payload, dict):
            return None, None
        code = payload.get("bookingCode")
        tp = payload.get("traceparent")
        return (code if isinstance(code, str) else None), (tp if isinstance(tp, str) else None)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            code, tp = context_of(args, kwargs)
            with span(fn.__name__, code, operation="activity." + fn.__name__, traceparent=tp):
                return await fn(*args, **kwargs)

        return run_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        code, tp = context_of(args, kwargs)
        with span(fn.__name__, code, operation="activity." + fn.__name__, traceparent=tp):
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]


# --- Azure Monitor ------------------------------------------------------------------------


def _credential(auth: str) -> Any:
    """``Authorization=AAD;ClientId=<uami>`` (what the Bicep sets) as a managed identity credential."""
    parts = dict(p.split("=", 1) for p in auth.split(";") if "=" in p)
    if parts.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    client_id = parts.get("ClientId")
    return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()


def configure(env: Mapping[str, str] | None = None, *, span_processors: list[Any] | None = None) -> bool:
    """Install the record factory; export to Application Insights when the connection string is set.

    True when Azure Monitor was switched on (once per process). ``span_processors`` are added to
    the exporter's (tests watch the spans with an in-memory exporter).
    """
    global _configured
    env = os.environ if env is None else env
    install_record_factory()
    connection = env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
    if not connection or _configured:
        return _configured
    from azure.monitor.opentelemetry import configure_azure_monitor

    # The distro samples at 5 traces/s unless told otherwise, which would drop whole appointments
    # (errors included) at a busy moment. Keep every span: a few per invocation at a bank's
    # volume. OTEL_TRACES_SAMPLER, when an operator sets it, still decides.
    sampling = {} if env.get("OTEL_TRACES_SAMPLER") else {"sampling_ratio": 1.0}
    configure_azure_monitor(
        **sampling,
        connection_string=connection,
        credential=_credential(env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "")),
        logger_name="",  # the root logger: the app's and the SDKs' records alike
        span_processors=span_processors or [],
        # Only what the app uses: httpx carries the Graph calls, azure_sdk the Table calls.
        instrumentation_options={
            name: {"enabled": False}
            for name in ("django", "fastapi", "flask", "psycopg2", "requests", "urllib")
        },
    )
    # The Azure SDKs log every HTTP request at INFO; their warnings and errors are what matters.
    logging.getLogger("azure").setLevel(logging.WARNING)
    _configured = True
    return True


# --- JSON lines -------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, appointment context, trace ids."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ATTRIBUTES:
            if (value := getattr(record, name, None)) is not None:
                out[name] = value
        if (retention := getattr(record, "retention", None)) is not None:
            out["retention"] = retention
        trace_id, span_id = _current_ids()
        if trace_id:
            out["trace_id"], out["span_id"] = trace_id, span_id
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def _current_ids() -> tuple[str | None, str | None]:
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
