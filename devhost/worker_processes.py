"""Language worker processes: the app's invocations run in processes of their own.

On Azure the Functions host (.NET) and the Python worker are separate processes: the host's
durable engine, HTTP front end and timers never wait for the worker's GIL, and the host starts
up to ``FUNCTIONS_WORKER_PROCESS_COUNT`` worker processes per instance (default 1, at most 10:
"Azure Functions app settings reference", FUNCTIONS_WORKER_PROCESS_COUNT; the host spreads
invocations over them, ``RpcFunctionInvocationDispatcher``). With that setting above 1 the
devhost does the same: it starts that many processes, each indexes and loads the app with the
real worker exactly as the in-process ``Worker`` does, and every ``InvocationRequest`` goes to
one of them as the protobuf ``StreamingMessage`` bytes the host would put on its gRPC stream;
the ``InvocationResponse`` comes back the same way. With 1 (the default) the app stays in the
host's process (``devhost.worker``).

Framing on the pipes: a 4-byte big-endian length, a 1-byte kind, the payload. Kinds: ``I`` an
invocation (``StreamingMessage`` bytes), ``R`` its response, ``C`` the host's clock
(``Clock.snapshot`` as JSON: a worker process keeps the host's virtual time), ``K`` ready.
A worker's own stdout is redirected to its stderr so that nothing the app prints can corrupt
the frames.

A worker process that dies fails the invocations it had in flight with ``WorkerCrashed`` and
is started again, as the host restarts a language worker: the durable engine redoes such an
episode from storage and runs such an activity again (at least once, as on Azure).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import struct
import sys
from pathlib import Path
from typing import Any

from .clock import Clock
from .durable.registry import WorkerCrashed

log = logging.getLogger("devhost.workers")

MAX_PROCESS_COUNT = 10  # the setting's documented maximum
SETTING = "FUNCTIONS_WORKER_PROCESS_COUNT"
_HEADER = struct.Struct(">IB")
INVOKE, RESPONSE, CLOCK, READY = b"I", b"R", b"C", b"K"


def process_count(environ: dict[str, str] | None = None) -> int:
    """``FUNCTIONS_WORKER_PROCESS_COUNT``: 1 when unset; an integer from 1 to 10, else refused."""
    raw = (environ if environ is not None else os.environ).get(SETTING, "").strip()
    if not raw:
        return 1
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_PROCESS_COUNT:
        raise ValueError(f"{SETTING} must be an integer from 1 to {MAX_PROCESS_COUNT}, not {raw!r}")
    return count


def frame(kind: bytes, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), kind[0]) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The next frame; ``asyncio.IncompleteReadError`` at the end of the stream."""
    size, kind = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return bytes([kind]), await reader.readexactly(size)


class _Process:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.pending: dict[str, asyncio.Future[bytes]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.ready: asyncio.Future[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class WorkerProcesses:
    """``count`` worker processes of the app in ``app_dir``; invocations spread over them."""

    def __init__(self, app_dir: Path, script_file: str, count: int, clock: Clock) -> None:
        self.app_dir = app_dir
        self.script_file = script_file
        self.clock = clock
        self._procs = [_Process(i) for i in range(count)]
        self._turn = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        clock.subscribe(self._clock_moved)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.gather(*(self._spawn(p) for p in self._procs))

    async def _spawn(self, p: _Process) -> None:
        assert self._loop is not None
        if p.ready is None or p.ready.done():
            p.ready = self._loop.create_future()
        p.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "devhost.worker_processes",
            str(self.app_dir),
            self.script_file,
            json.dumps(self.clock.snapshot()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**31 - 1,
        )
        p.reader = self._loop.create_task(self._read(p, p.proc))
        await p.ready
        log.info("worker process %s started (pid %s)", p.index, p.pid)

    async def _read(self, p: _Process, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                kind, payload = await read_frame(proc.stdout)
                if kind == READY:
                    if p.ready is not None and not p.ready.done():
                        p.ready.set_result(None)
                elif kind == RESPONSE:
                    invocation_id, _, body = payload.partition(b"\n")
                    future = p.pending.pop(invocation_id.decode(), None)
                    if future is not None and not future.done():
                        future.set_result(body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        await proc.wait()
        self._crashed(p, proc.returncode)

    def _crashed(self, p: _Process, code: int | None) -> None:
        error = WorkerCrashed(f"worker process {p.index} (pid {p.pid}) exited with code {code}")
        for future in p.pending.values():
            if not future.done():
                future.set_exception(error)
        p.pending.clear()
        if p.ready is not None and not p.ready.done():
            p.ready.set_exception(error)
        if self._closing:
            return
        log.error("%s; starting it again", error)
        assert self._loop is not None
        # Calls that come meanwhile wait for the new process, not write to the dead one's pipe.
        p.ready = self._loop.create_future()
        p.ready.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "never retrieved"
        self._loop.create_task(self._spawn(p))

    async def execute(self, invocation_id: str, message: bytes) -> bytes:
        """Send one ``StreamingMessage`` (an invocation request); its response's bytes."""
        assert self._loop is not None
        p = self._pick()
        if p.ready is not None and not p.ready.done():
            await asyncio.shield(p.ready)
        if p.proc is None or p.proc.stdin is None or p.proc.returncode is not None:
            raise WorkerCrashed(f"worker process {p.index} is not running")
        future: asyncio.Future[bytes] = self._loop.create_future()
        p.pending[invocation_id] = future
        p.proc.stdin.write(frame(INVOKE, message))
        return await future

    def _pick(self) -> _Process:
        """The process with the fewest invocations in flight (round robin among equals)."""
        start = next(self._turn) % len(self._procs)
        ordered = self._procs[start:] + self._procs[:start]
        return min(ordered, key=lambda p: len(p.pending))

    def _clock_moved(self) -> None:
        """Every move of the host's clock reaches every worker before any later invocation (one
        pipe per process, written in order)."""
        loop = self._loop
        if loop is None:
            return
        data = frame(CLOCK, json.dumps(self.clock.snapshot()).encode())
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._broadcast(data)
        else:
            loop.call_soon_threadsafe(self._broadcast, data)

    def _broadcast(self, data: bytes) -> None:
        for p in self._procs:
            if p.proc is not None and p.proc.stdin is not None and p.proc.returncode is None:
                with contextlib.suppress(ConnectionError):
                    p.proc.stdin.write(data)

    async def stop(self) -> None:
        self._closing = True
        for p in self._procs:
            if p.proc is not None and p.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.proc.terminate()
        for p in self._procs:
            if p.proc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(p.proc.wait(), 10)
            if p.reader is not None:
                with contextlib.suppress(BaseException):
                    await p.reader


# -- the worker process ------------------------------------------------------------------------
async def _serve(app_dir: Path, script_file: str, clock_snapshot: dict[str, str], out: Any) -> None:
    from .__main__ import hand_clock_to_app
    from .worker import Request, Worker

    clock = Clock()
    clock.adopt(clock_snapshot)
    hand_clock_to_app(clock)
    worker = Worker(app_dir, script_file)
    await worker.start()
    p = worker.protos
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**31 - 1)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    lock = asyncio.Lock()

    async def send(kind: bytes, payload: bytes) -> None:
        async with lock:
            out.write(frame(kind, payload))
            out.flush()

    async def run(message: bytes) -> None:
        import azure_functions_runtime as runtime

        msg = p.StreamingMessage.FromString(message)
        response = await runtime.invocation_request(Request(msg))
        body = p.StreamingMessage(invocation_response=response).SerializeToString()
        await send(RESPONSE, msg.invocation_request.invocation_id.encode() + b"\n" + body)

    tasks: set[asyncio.Task[None]] = set()
    await send(READY, b"")
    while True:
        try:
            kind, payload = await read_frame(reader)
        except asyncio.IncompleteReadError:
            return  # the host closed the pipe: stop
        if kind == CLOCK:
            clock.adopt(json.loads(payload))
        elif kind == INVOKE:
            task = loop.create_task(run(payload))
            tasks.add(task)
            task.add_done_callback(tasks.discard)


def main(argv: list[str]) -> None:
    from .__main__ import configure_logging

    app_dir, script_file, snapshot = Path(argv[0]), argv[1], json.loads(argv[2])
    # Frames go out on the original stdout; anything else written to fd 1 goes to stderr.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    configure_logging(os.environ.get("DEVHOST_LOG_LEVEL", "INFO"))
    sys.path.insert(0, str(Path.cwd()))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(app_dir, script_file, snapshot, out))
    # The host closed the pipe (or stopped us): leave now, whatever the worker's threads hold.
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
