"""The real Python worker in the devhost: start-up, and the cost of invoking through it.

1. Start to first answer: ``python -m devhost`` started until ``GET /api/topics`` answers 200,
   against the baseline of the same interpreter importing the app's packages and exiting
   (``import function_app`` in a fresh process).
2. Per-request overhead: the same HTTP function (``list_topics``: no storage, so the figure is
   the invocation path alone) called through the worker's ``invocation_request`` (protobuf
   request in, ``RpcHttp`` out, the worker's converters both ways) against a bare call of that
   Python function with an ``HttpRequest`` built by hand. Both in one process, one run.

Run: ``python bench/bench_worker.py``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import azure.functions as func  # noqa: E402
import httpx  # noqa: E402

from devhost import azurite  # noqa: E402
from devhost.testing import DevhostProcess  # noqa: E402
from devhost.worker import Worker  # noqa: E402

STARTS = 5
CALLS = 2000


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def cold_import() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import function_app"], cwd=ROOT, check=True)
    return time.perf_counter() - t


def start_to_first_answer(storage: str) -> float:
    host = DevhostProcess(storage=storage, clock="real", env={"DEV_MODE": "true"})
    t = time.perf_counter()
    host.start()
    try:
        while True:
            try:
                if httpx.get(f"{host.base_url}/api/topics", timeout=5).status_code == 200:
                    return time.perf_counter() - t
            except httpx.TransportError:
                pass
            time.sleep(0.01)
    finally:
        host.close()


async def invocation_overhead() -> tuple[float, float]:
    worker = Worker(ROOT, "function_app.py")
    await worker.start()
    # The baseline needs the Python function itself: take it from the worker's own registry
    # (bench code only; the devhost never does this).
    from azure_functions_runtime import handle_event

    info = worker.functions["list_topics"]
    bare = handle_event._functions.get_function(info.function_id).func

    async def bare_call() -> None:
        req = func.HttpRequest(
            method="GET",
            url="http://127.0.0.1/api/topics",
            headers={"accept-language": "fi"},
            params={},
            route_params={},
            body=b"",
        )
        response = await bare(req=req)
        assert response.status_code == 200

    async def worker_call() -> None:
        answer = await worker.run_http(
            "list_topics",
            method="GET",
            url="http://127.0.0.1/api/topics",
            headers={"accept-language": "fi"},
            query={},
            route_params={},
            body=b"",
            client_bindings={},
        )
        assert answer.status == 200

    for _ in range(50):  # warm both paths
        await bare_call()
        await worker_call()
    bare_times, worker_times = [], []
    for _ in range(CALLS):
        t = time.perf_counter()
        await bare_call()
        bare_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        await worker_call()
        worker_times.append(time.perf_counter() - t)
    return statistics.median(bare_times), statistics.median(worker_times)


def main() -> None:
    os.environ.setdefault("DEV_MODE", "true")
    port = azurite.free_port()
    server = azurite.start(port)
    try:
        storage = server.connection_string
        imports = [cold_import() for _ in range(STARTS)]
        starts = [start_to_first_answer(storage) for _ in range(STARTS)]
    finally:
        server.stop()
    bare, through = asyncio.run(invocation_overhead())
    print(f"cold import of function_app (baseline)   median {median_ms(imports):8.1f} ms  ({STARTS} runs)")
    print(f"devhost start to first answered request median {median_ms(starts):8.1f} ms  ({STARTS} runs)")
    print(f"  ratio start / cold import: {statistics.median(starts) / statistics.median(imports):.2f}x")
    print(f"bare call of list_topics                 median {bare * 1e6:8.1f} us  ({CALLS} calls)")
    print(f"through the worker (invocation_request)  median {through * 1e6:8.1f} us  ({CALLS} calls)")
    print(f"  ratio worker / bare: {through / bare:.2f}x, overhead {(through - bare) * 1e6:.1f} us per call")


if __name__ == "__main__":
    main()
