"""Whose code the devhost's CPU runs: the real components (the app's Table client, the Durable
SDK, the Python worker runtime, the Graph client) or the project's own (the devhost's host and
engine, the app).

py-spy samples the thread holding the GIL in the devhost and its worker processes
(``record``); ``owners`` reads its collapsed stacks and files each sample under the innermost
frame that belongs to a known owner, so that the standard library and small helpers count for
whoever called them (``json.dumps`` under azure-core is the Table client's, under the engine
the devhost's). Where in doubt a sample is the project's, so that what the real components
are charged is a lower bound: ``adapters/tables/multipart.py``, which does azure-core's own steps
for a transaction, counts as the app's, and the worker process's own glue
(``devhost/worker_processes.py``) as the devhost's. In the host's process everything is the
devhost's: the engine and HTTP front end stand in for the Functions host and the Durable
extension, and the Table client it uses there is the stand-in's, not the app's.

Used by ``bench_lifecycles.py`` (``--profile``: what the real components alone cost per
lifecycle, against what 10× the issue's build would leave).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = "/site-packages/"
TABLE_CLIENT = "the app's Table client (azure-data-tables, azure-core, requests, urllib3)"
DURABLE_SDK = "the Durable SDK (azure-functions-durable: replay, history parsing)"
WORKER_RUNTIME = "the Python worker runtime (azure-functions-runtime, azure-functions)"
GRAPH_CLIENT = "the Graph client (msgraph-sdk, kiota, httpx, azure-identity)"
REAL_COMPONENTS = (TABLE_CLIENT, DURABLE_SDK, WORKER_RUNTIME, GRAPH_CLIENT)
APP = "the app's own code (its functions, services, adapters)"
DEVHOST = "the devhost's host and engine (the stand-ins for the Functions host and Durable)"
# By the file's path inside site-packages (py-spy's --full-filenames).
_REAL = (
    (TABLE_CLIENT, ("azure/core/", "azure/data/tables/", "requests/", "urllib3/")),
    (DURABLE_SDK, ("azure/durable_functions/", "dateutil/")),
    (WORKER_RUNTIME, ("azure_functions_runtime", "azure/functions/", "google/protobuf/", "grpc/")),
    (GRAPH_CLIENT, ("msgraph", "kiota", "httpx/", "httpcore/", "h11/", "azure/identity/", "msal/")),
)
_PATH = re.compile(r"\(([^()]+):\d+\)$")


def _path(frame: str) -> str | None:
    m = _PATH.search(frame)
    return m.group(1) if m else None


def owner(frames: Iterable[str], in_worker: bool, root: Path = ROOT) -> str:
    """The owner of one sample, its frames outermost first, their files' full paths."""
    if not in_worker:
        return DEVHOST
    project = f"{root}/"
    for frame in reversed(list(frames)):
        path = _path(frame)
        if path is None:
            continue
        if SITE in path:
            package = path.split(SITE, 1)[1]
            for name, prefixes in _REAL:
                if package.startswith(prefixes):
                    return name
            continue  # another library: its caller's
        if path.startswith(project):
            # The worker process's own glue (devhost/worker_processes.py) is the devhost's.
            return DEVHOST if path.startswith(f"{project}devhost/") else APP
    return APP  # the interpreter alone (a collection, an import): the app's process


def owners(raw: str) -> Counter[str]:
    """Samples per owner in py-spy's ``--format raw`` output (``frame;frame;... count`` lines;
    ``--subprocesses`` puts the process, its command line included, first)."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        # The command line of the process may itself hold ';' (a connection string): a worker's
        # sample names the worker's module before its first thread frame.
        head = next((i for i, f in enumerate(frames) if f.startswith("thread (")), len(frames))
        in_worker = any("devhost.worker_processes" in f for f in frames[:head])
        counts[owner(frames[head + 1 :], in_worker)] += int(count)
    return counts


def py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


@contextlib.contextmanager
def record(pid: int, *, gil: bool = True, rate: int = 50, keep: Path | None = None) -> Iterator[Path]:
    """py-spy on ``pid`` and its subprocesses while the block runs; yields the file it writes
    (collapsed stacks), complete once the block has ended."""
    spy = py_spy()
    if spy is None:
        raise FileNotFoundError("py-spy is not installed (requirements-dev.txt)")
    out = keep or Path(tempfile.mkstemp(suffix=".txt", prefix="py-spy-")[1])
    args = [spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
    args += ["--rate", str(rate), "--nonblocking", "--threads", "--subprocesses", "--full-filenames"]
    recorder = subprocess.Popen(  # noqa: S603 - py-spy from our own venv
        [*args, *(["--gil"] if gil else [])], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield out
    finally:
        recorder.send_signal(2)  # SIGINT: py-spy writes its file and exits
        _, err = recorder.communicate(timeout=60)
        if recorder.returncode not in (0, -2) and not out.stat().st_size:
            raise RuntimeError(f"py-spy failed: {err.decode(errors='replace').strip()}")
