"""Run ``python -m devhost`` as a subprocess for tests, and talk to it over HTTP.

    with DevhostProcess("tests.integration.durable_samples.app:app", storage=conn) as host:
        host.post("/api/start/chain", key=True)
        host.wait_idle()

``kill()`` is SIGKILL (a crash), ``restart()`` starts again on the same storage, port and task
hub, so a test can prove that instances survive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from .azurite import PROJECT_ROOT, free_port

TEST_FUNCTION_KEY = "devhost-test-key"
DURABLE_API = "/runtime/webhooks/durabletask"


class DevhostProcess:
    def __init__(
        self,
        app: str = "function_app:app",
        *,
        storage: str,
        clock: str = "frozen",
        port: int | None = None,
        task_hub: str | None = None,
        env: Mapping[str, str] | None = None,
        function_key: str = TEST_FUNCTION_KEY,
        startup_timeout: float = 30.0,
        cwd: Path = PROJECT_ROOT,
    ) -> None:
        self.app = app
        self.storage = storage
        self.clock = clock
        self.port = port or free_port()
        self.task_hub = task_hub or f"T{uuid.uuid4().hex[:12]}"
        self.env = dict(env or {})
        self.function_key = function_key
        self.startup_timeout = startup_timeout
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="devhost-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = Path(self._log.name)
        self.http = httpx.Client(base_url=self.base_url, timeout=60.0)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- process ---------------------------------------------------------------------------
    def start(self) -> DevhostProcess:
        env = {
            **os.environ,
            "DEV_MODE": "true",  # the dev endpoints (clock, idle) that tests drive exist only in dev mode
            **self.env,
            "DEVHOST_FUNCTION_KEY": self.function_key,
            "PYTHONUNBUFFERED": "1",
        }
        args = [
            sys.executable,
            "-m",
            "devhost",
            "--app",
            self.app,
            "--clock",
            self.clock,
            "--port",
            str(self.port),
            "--storage",
            self.storage,
            "--task-hub",
            self.task_hub,
        ]
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            args, cwd=self.cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"devhost exited with {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.TransportError):
                if self.http.get("/dev/health", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"devhost did not answer in {self.startup_timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL: the host gets no chance to tidy up, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self) -> DevhostProcess:
        self.kill()
        return self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self) -> None:
        self.stop()
        self.http.close()
        self._log.close()
        if os.environ.get("DEVHOST_KEEP_LOG"):  # e.g. a benchmark's run, to read afterwards
            print(f"devhost log kept: {self.log_path}", file=sys.stderr)
            return
        with contextlib.suppress(OSError):
            self.log_path.unlink()

    def __enter__(self) -> DevhostProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP helpers ----------------------------------------------------------------------
    def request(self, method: str, path: str, *, key: bool | None = None, **kwargs: Any) -> httpx.Response:
        """``key``: send the host key; by default only to the Durable management API, which the
        host refuses without its system key (pass ``key=False`` to see the refusal)."""
        if key is None:
            key = path.startswith(DURABLE_API)
        if key:
            kwargs.setdefault("headers", {})["x-functions-key"] = self.function_key
        return self.http.request(method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def now(self) -> str:
        return str(self.get("/dev/clock").json()["now"])

    def advance(self, seconds: float = 0, *, minutes: float = 0, hours: float = 0, days: float = 0) -> str:
        """Move the clock forward; returns after the work that caused has settled."""
        r = self.post(
            "/dev/clock/advance", json={"seconds": seconds, "minutes": minutes, "hours": hours, "days": days}
        )
        r.raise_for_status()
        assert r.json()["settled"], "work did not settle after advancing the clock"
        return str(r.json()["now"])

    def wait_idle(self) -> None:
        r = self.post("/dev/idle")
        r.raise_for_status()
        assert r.json()["settled"], "devhost did not become idle"

    def status(self, instance_id: str, *, show_history: bool = False) -> dict[str, Any]:
        params = {"showHistory": "true", "showHistoryOutput": "true"} if show_history else {}
        r = self.get(f"/runtime/webhooks/durabletask/instances/{instance_id}", params=params)
        if r.status_code == 404:
            return {}
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result

    def start_orchestration(self, name: str, instance_id: str | None = None, input: Any = None) -> str:
        path = f"/runtime/webhooks/durabletask/orchestrators/{name}"
        if instance_id:
            path += f"/{instance_id}"
        r = self.post(path, json=input)
        r.raise_for_status()
        return str(r.json()["id"])

    def raise_event(self, instance_id: str, name: str, data: Any = None) -> httpx.Response:
        path = f"/runtime/webhooks/durabletask/instances/{instance_id}/raiseEvent/{name}"
        return self.post(path, json=data)

    def wait_for_status(self, instance_id: str, *statuses: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status(instance_id)
            if status.get("runtimeStatus") in statuses:
                return status
            time.sleep(0.05)
        state = status.get("runtimeStatus")
        raise TimeoutError(f"{instance_id} is {state}, not {statuses}:\n{self.output()}")


@contextlib.contextmanager
def running_devhost(app: str = "function_app:app", **kwargs: Any) -> Iterator[DevhostProcess]:
    """``DevhostProcess`` as a context manager (``storage=`` is required)."""
    host = DevhostProcess(app, **kwargs)
    try:
        yield host.start()
    finally:
        host.close()
