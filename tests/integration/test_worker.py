"""The app as the real Azure Functions Python worker loads it, and the devhost's use of that worker."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import PROJECT_ROOT

# What the app registers, read from its own DFApp (the decorators' bindings), in a process of
# its own: ``get_functions()`` may be called once per app object, and the worker calls it too.
REGISTERED = textwrap.dedent(
    """
    import json
    import function_app

    out = []
    for f in function_app.app.get_functions():
        bindings = f.get_bindings_dict()["bindings"]
        trigger = next(b for b in bindings if b["type"].endswith("Trigger"))
        row = {"name": f.get_function_name(), "trigger": trigger["type"]}
        if trigger["type"] == "httpTrigger":
            row["route"] = trigger.get("route") or f.get_function_name()
            row["methods"] = sorted(str(getattr(m, "value", m)).upper() for m in trigger.get("methods") or [])
            level = trigger.get("authLevel")
            row["authLevel"] = str(getattr(level, "value", level)).lower()
        if trigger["type"] == "timerTrigger":
            row["schedule"] = trigger.get("schedule")
        out.append(row)
    print(json.dumps(sorted(out, key=lambda r: r["name"])))
    """
)


def _run(args: list[str], cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _worker_list(script: Path) -> subprocess.CompletedProcess[str]:
    return _run(["-m", "devhost.worker", str(script)])


def test_the_worker_loads_every_function_the_app_registers() -> None:
    """Indexed by the real worker, the app keeps every function, trigger, route, method and auth level."""
    indexed = _worker_list(PROJECT_ROOT / "function_app.py")
    assert indexed.returncode == 0, indexed.stderr
    registered = _run(["-c", REGISTERED])
    assert registered.returncode == 0, registered.stderr
    worker_view: list[dict[str, Any]] = json.loads(indexed.stdout)
    app_view: list[dict[str, Any]] = json.loads(registered.stdout)
    assert worker_view == app_view
    kinds = {row["trigger"] for row in worker_view}
    assert {"httpTrigger", "orchestrationTrigger", "activityTrigger"} <= kinds
    assert any(r["name"] == "book_appointment" and r["methods"] == ["POST"] for r in worker_view)


BAD_APP = """
from typing import Any

import azure.durable_functions as df

app = df.DFApp()


@app.activity_trigger(input_name="payload")
def record(payload: dict[str, Any]) -> None:
    return None
"""


@pytest.fixture
def bad_app(tmp_path: Path) -> Path:
    script = tmp_path / "function_app.py"
    script.write_text(BAD_APP, encoding="utf-8")
    return script


def test_the_worker_refuses_a_pep585_binding_annotation(bad_app: Path) -> None:
    """``dict[str, Any]`` on a binding parameter is refused with the worker's own message."""
    r = _worker_list(bad_app)
    assert r.returncode == 3
    assert (
        "FunctionLoadError: cannot load the record function: binding payload has invalid "
        "non-type annotation dict[str, typing.Any]"
    ) in r.stderr


def test_the_devhost_does_not_start_an_app_the_worker_refuses(bad_app: Path) -> None:
    """``python -m devhost`` stops with the worker's message and serves nothing."""
    # Storage that answers nothing: the refusal must come before any storage work.
    storage = (
        "DefaultEndpointsProtocol=http;AccountName=x;AccountKey=eA==;TableEndpoint=http://127.0.0.1:1/x;"
    )
    r = _run(["-m", "devhost", "--app", str(bad_app), "--port", "1", "--storage", storage])
    assert r.returncode == 3
    assert "the Python worker refused the app" in r.stderr
    assert "binding payload has invalid non-type annotation dict[str, typing.Any]" in r.stderr
    assert "devhost: ready" not in r.stdout


def test_no_devhost_code_calls_an_app_function_around_the_worker() -> None:
    """The devhost reaches app functions only through ``invocation_request``: nothing in it
    takes a function object out of the app (``get_user_function``/``get_functions``)."""
    offenders = []
    for path in sorted((PROJECT_ROOT / "devhost").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {"get_user_function", "get_functions"}:
                offenders.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {node.attr}")
    assert offenders == []
