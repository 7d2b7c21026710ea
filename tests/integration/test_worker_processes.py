"""FUNCTIONS_WORKER_PROCESS_COUNT: the app's invocations in worker processes of their own.

The lifecycles below cross every seam a process boundary adds: HTTP functions, orchestrator
episodes, activities (Graph and Table calls), the durable client's HTTP calls back to the host,
and the virtual clock, which the host moves and the workers must follow (joining is allowed only
from 15 minutes before the start, by the app's clock, in the worker).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from bench.lifecycles import Outcome, children, cpu_seconds, run_load, stack
from devhost.azurite import PROJECT_ROOT
from devhost.testing import DevhostProcess
from devhost.worker_processes import process_count
from tests.integration.durable_samples.helpers import SAMPLE_APP, side_effects

TWO = {"FUNCTIONS_WORKER_PROCESS_COUNT": "2"}


def _exact(o: Outcome, one: Outcome) -> None:
    assert o.completed == o.n
    assert o.one_meeting_each and o.meetings == o.n
    assert o.mails == o.n * one.mails and o.duplicate_mails == 0
    assert o.audit_rows == o.n * one.audit_rows


@pytest.mark.parametrize(("raw", "count"), [(None, 1), ("", 1), ("1", 1), (" 4 ", 4), ("10", 10)], ids=repr)
def test_the_setting_defaults_to_one_process(raw: str | None, count: int) -> None:
    env = {} if raw is None else {"FUNCTIONS_WORKER_PROCESS_COUNT": raw}
    assert process_count(env) == count


@pytest.mark.parametrize("raw", ["0", "11", "-1", "two", "1.5"])
def test_a_count_outside_one_to_ten_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="must be an integer from 1 to 10"):
        process_count({"FUNCTIONS_WORKER_PROCESS_COUNT": raw})


def test_the_devhost_refuses_to_start_with_a_bad_count() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "devhost", "--port", "1"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "FUNCTIONS_WORKER_PROCESS_COUNT": "12"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 2
    assert "FUNCTIONS_WORKER_PROCESS_COUNT must be an integer from 1 to 10, not '12'" in r.stderr


def test_lifecycles_run_in_the_worker_processes_and_end_exactly() -> None:
    with stack(4, env=TWO) as s:
        assert s.host.process is not None
        host = s.host.process.pid
        workers = children(host)
        assert len(workers) == 2
        before = {pid: cpu_seconds(pid) for pid in workers}
        one = run_load(s, 1, 1)
        many = run_load(s, 3, 3, first=1)
        _exact(one, one)
        _exact(many, one)
        # Both processes did the app's work (each ran functions: an idle one uses ~no CPU).
        assert all(cpu_seconds(pid) - before[pid] > 0.2 for pid in workers)


def test_a_killed_worker_process_is_started_again_and_nothing_is_lost() -> None:
    with stack(3, env=TWO) as s:
        assert s.host.process is not None
        host = s.host.process.pid
        one = run_load(s, 1, 1)
        victim = children(host)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and victim in children(host):
            time.sleep(0.02)
        # While the new process starts, calls wait for it (or go to the other): none fails.
        assert [s.host.get("/api/topics").status_code for _ in range(6)] == [200] * 6
        while time.monotonic() < deadline and len(children(host)) < 2:
            time.sleep(0.2)
        assert victim not in children(host) and len(children(host)) == 2
        _exact(run_load(s, 2, 2, first=1), one)


def test_activities_lost_with_their_worker_processes_run_again(storage_connection_string: str) -> None:
    """Both workers die while two activities run in them: the host starts them again and the
    engine runs the lost activities again (at least once, as on Azure); the instance completes."""
    with DevhostProcess(SAMPLE_APP, storage=storage_connection_string, clock="frozen", env=TWO) as host:
        assert host.process is not None
        workers = children(host.process.pid)
        started = host.post("/api/start/slow_pair", key=True)  # the app's own client starts it
        assert started.status_code == 202, started.text
        instance = str(started.json()["id"])
        # Kill once both activities are scheduled (they sleep 3 s before writing a side effect).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            events = host.status(instance, show_history=True).get("historyEvents") or []
            if (
                sum(e["EventType"] == "TaskCompleted" or e["EventType"] == "TaskScheduled" for e in events)
                >= 2
            ):
                break
            time.sleep(0.05)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        status = host.wait_for_status(instance, "Completed", "Failed", timeout=60)
        assert status["runtimeStatus"] == "Completed", (status, host.output()[-3000:])
        assert status["output"] == ["s0 done", "s1 done"]
        assert len(side_effects(storage_connection_string, instance)) == 2
        assert not set(workers) & set(children(host.process.pid))
        assert "lost with its worker process" in host.output()
