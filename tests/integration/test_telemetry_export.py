"""Azure Monitor switched on for real (azure-monitor-opentelemetry on Python 3.13), spans watched in memory.

In a child interpreter, because OpenTelemetry's providers are process-global: a trigger, an
activity and the Graph call inside it (httpx, instrumented by the distro) share the one trace
that the appointment's booking code names.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from adapters.telemetry import traceparent_for

ROOT = Path(__file__).resolve().parents[2]
CHILD = r"""
import asyncio, json, os, threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters import telemetry


class Graph(BaseHTTPRequestHandler):
    def do_POST(self):
        self.send_response(201)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Graph)
threading.Thread(target=server.serve_forever, daemon=True).start()
memory = InMemorySpanExporter()
switched_on = telemetry.configure(
    {"APPLICATIONINSIGHTS_CONNECTION_STRING":
        "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"},
    span_processors=[SimpleSpanProcessor(memory)],
)
url = f"http://127.0.0.1:{server.server_port}/v1.0/users/expert/onlineMeetings/createOrGet"


@telemetry.traced_activity
async def create_meeting(payload):
    async with httpx.AsyncClient() as client:
        await client.post(url, json={"externalId": payload["bookingCode"]})


async def main():
    with telemetry.span("book_appointment", "2KMEVE6X", operation="trigger.book_appointment"):
        pass
    await create_meeting({"bookingCode": "2KMEVE6X"})


asyncio.run(main())
spans = [
    {"name": s.name, "trace": f"{s.context.trace_id:032x}", "id": f"{s.context.span_id:016x}",
     "parent": f"{s.parent.span_id:016x}" if s.parent else None, "attributes": dict(s.attributes or {})}
    for s in memory.get_finished_spans()
]
print("RESULT " + json.dumps({"on": switched_on, "spans": spans}), flush=True)
os._exit(0)  # skip the exporter's shutdown flush to an ingestion endpoint that is not there
"""


def test_a_trigger_an_activity_and_its_graph_call_are_one_trace(tmp_path: Path) -> None:
    """The exporter's tracer provider records all three spans under the appointment's trace id."""
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(script)], cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, done.stdout + done.stderr
    result = json.loads(line.removeprefix("RESULT "))
    assert result["on"] is True
    _, trace_id, root_span, _ = traceparent_for("2KMEVE6X").split("-")
    by_name = {s["name"]: s for s in result["spans"]}
    trigger, activity = by_name["book_appointment"], by_name["create_meeting"]
    graph = next(s for s in result["spans"] if s["name"] not in ("book_appointment", "create_meeting"))
    assert {s["trace"] for s in result["spans"]} == {trace_id}
    assert trigger["parent"] == activity["parent"] == root_span
    assert graph["parent"] == activity["id"]  # the Graph call happened inside the activity
    assert activity["attributes"]["appointment.booking_code"] == "2KMEVE6X"
    assert activity["attributes"]["durable.instance_id"] == "appt-2KMEVE6X"
