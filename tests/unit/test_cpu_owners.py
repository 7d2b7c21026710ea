"""The benchmark's attribution of the devhost's CPU samples to the real components or the project.

The stacks are shaped as ``py-spy record --format raw --subprocesses --threads --full-filenames``
writes them: the host's process (its command line may hold ';'), for a worker the worker's
process, then the thread, then the frames outermost first, then the count.
"""

from __future__ import annotations

from bench import cpu_owners
from bench.cpu_owners import APP, DEVHOST, DURABLE_SDK, GRAPH_CLIENT, TABLE_CLIENT, WORKER_RUNTIME

ROOT = str(cpu_owners.ROOT)
SITE = f"{ROOT}/.venv/lib/python3.13/site-packages"
STDLIB = "/usr/lib/python3.13"
HOST = 'process 11:"python -m devhost --storage AccountName=x;AccountKey=y;TableEndpoint=z"'
WORKER = 'process 12:"python -m devhost.worker_processes /app function_app.py {}"'


def sample(*frames: str, worker: bool = True, count: int = 1) -> str:
    head = (
        [HOST, WORKER, "thread (12): ThreadPoolExecutor-0_1"] if worker else [HOST, "thread (11): MainThread"]
    )
    return ";".join([*head, *frames]) + f" {count}"


def frame(name: str, path: str, line: int = 1) -> str:
    return f"{name} ({path}:{line})"


APP_FRAME = frame("apply_phase", f"{ROOT}/activities/lifecycle.py")
WORKER_GLUE = frame("_serve", f"{ROOT}/devhost/worker_processes.py")
RUNTIME = frame("invocation_request", f"{SITE}/azure_functions_runtime/handle_event.py")
GET_ENTITY = frame("get_entity", f"{SITE}/azure/data/tables/_table_client.py")
RECV = frame("readinto", f"{STDLIB}/socket.py")


def test_a_sample_is_the_innermost_known_owners_and_the_stdlib_counts_for_its_caller() -> None:
    raw = "\n".join(
        [
            # the app's point read, waiting in the standard library's socket code
            sample(WORKER_GLUE, RUNTIME, APP_FRAME, GET_ENTITY, RECV, count=5),
            # the app's own code, called by the worker runtime
            sample(WORKER_GLUE, RUNTIME, APP_FRAME, frame("dumps", f"{STDLIB}/json/__init__.py"), count=3),
            # the runtime itself, before the function
            sample(WORKER_GLUE, RUNTIME, count=2),
            # the SDK parsing a history's timestamps
            sample(
                WORKER_GLUE,
                RUNTIME,
                frame("handle", f"{SITE}/azure/durable_functions/orchestrator.py"),
                frame("parse", f"{SITE}/dateutil/parser/_parser.py"),
                count=7,
            ),
            # a mail through kiota and httpx
            sample(WORKER_GLUE, APP_FRAME, frame("send", f"{SITE}/httpx/_client.py"), count=4),
        ]
    )
    assert cpu_owners.owners(raw) == {
        TABLE_CLIENT: 5,
        APP: 3,
        WORKER_RUNTIME: 2,
        DURABLE_SDK: 7,
        GRAPH_CLIENT: 4,
    }


def test_what_is_in_doubt_is_the_projects_so_the_real_components_floor_is_a_lower_bound() -> None:
    multipart = frame("write_body", f"{ROOT}/adapters/tables/multipart.py")
    other_library = frame("render", f"{SITE}/jinja2/environment.py")
    raw = "\n".join(
        [
            # the project's own transaction writer, though it does azure-core's steps
            sample(WORKER_GLUE, RUNTIME, APP_FRAME, multipart, count=2),
            # a library that is not a real component counts for the project code that called it
            sample(WORKER_GLUE, RUNTIME, APP_FRAME, other_library, count=3),
            # the worker process's event loop, the devhost's glue
            sample(WORKER_GLUE, frame("_run_once", f"{STDLIB}/asyncio/base_events.py"), count=4),
            # everything in the host's process is the stand-ins', its Table client included
            sample(frame("_commit", f"{ROOT}/devhost/durable/engine.py"), GET_ENTITY, worker=False, count=6),
        ]
    )
    assert cpu_owners.owners(raw) == {APP: 5, DEVHOST: 10}


def test_lines_that_are_not_samples_are_skipped() -> None:
    assert cpu_owners.owners("\n\nnot a sample\n" + sample(APP_FRAME, count=2)) == {APP: 2}
