"""What the telemetry costs: per invocation (span + log context + the invocation's record), and the
import that switching Azure Monitor on adds to a cold start.

1. Per invocation: an activity wrapped by ``traced_activity`` against the bare function, both
   logging one record to a handler that drops it; Azure Monitor off (the local and default path).
2. Cold import: ``import function_app`` against ``import function_app`` plus
   ``azure.monitor.opentelemetry`` (what ``APPLICATIONINSIGHTS_CONNECTION_STRING`` makes it load),
   each in a fresh interpreter, median of 5.

Run: ``python bench/bench_telemetry.py``.
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import time
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters import telemetry  # noqa: E402

CALLS = 20_000
STARTS = 5
log = logging.getLogger("activities.bench")


def bare(payload: typing.Dict[str, str]) -> str:  # noqa: UP006 - as the app's activities are annotated
    log.info("working on %s", payload["bookingCode"])
    return payload["bookingCode"]


traced = telemetry.traced_activity(bare)


def per_call_us(fn: typing.Callable[[typing.Dict[str, str]], str]) -> float:  # noqa: UP006
    payload = {"bookingCode": "2KMEVE6X"}
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(CALLS):
            fn(payload)
        runs.append((time.perf_counter() - t) / CALLS * 1e6)
    return statistics.median(runs)


def cold(statement: str) -> float:
    times = []
    for _ in range(STARTS):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], cwd=ROOT, check=True)  # noqa: S603
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    logging.basicConfig(level=logging.INFO, handlers=[logging.NullHandler()])
    telemetry.install_record_factory()
    base, wrapped = per_call_us(bare), per_call_us(traced)
    print(f"activity call, bare            {base:8.1f} us")
    print(f"activity call, traced          {wrapped:8.1f} us   (+{wrapped - base:.1f} us each)")
    app = cold("import function_app")
    monitor = cold("import function_app, azure.monitor.opentelemetry")
    print(f"cold import function_app       {app:8.0f} ms")
    print(f"  + azure.monitor.opentelemetry{monitor:8.0f} ms   (+{monitor - app:.0f} ms, only when on)")


if __name__ == "__main__":
    main()
