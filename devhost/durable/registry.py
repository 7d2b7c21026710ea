"""What the durable engine may run, and the only way it runs it.

The engine never touches the app's Python functions: it hands a context or an input (JSON text,
as the Durable extension sends it over the worker protocol) to a ``FunctionRunner`` and gets JSON
text back. The devhost's runner is the real Python worker (``devhost.worker``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class FunctionFailed(Exception):
    """The worker reported the invocation as failed; ``str()`` is the worker's exception message
    (``"<Type>: <text>"``, as ``azure_functions_runtime.utils.tracing.serialize_exception`` forms it)."""


class WorkerCrashed(Exception):
    """The worker process running an invocation exited before it answered (a platform failure,
    not the function's): an orchestrator episode is redone from storage and an activity runs
    again, as the host does after it restarts a language worker."""


class UnsupportedFunction(Exception):
    """The app holds a kind of function the devhost cannot run; it refuses to start."""


class FunctionRunner(Protocol):
    orchestrators: frozenset[str]
    activities: frozenset[str]
    # Timer-triggered functions: name -> NCRONTAB schedule as in the binding, %Setting% resolved.
    timers: dict[str, str]
    # Timer functions whose binding says runOnStartup.
    run_on_startup: frozenset[str]
    # Every function's raw binding dicts (``function.json``-style), by function name.
    bindings: dict[str, list[dict[str, Any]]]

    def canonical(self, name: str) -> str | None:
        """The registered name that ``name`` denotes, or None. Function names are case-insensitive
        in the Functions host (its function lookup uses StringComparer.OrdinalIgnoreCase)."""
        ...

    async def run_orchestrator(self, name: str, context_json: str) -> str:
        """One replay episode: the orchestrator's JSON answer, or ``FunctionFailed``."""
        ...

    async def run_activity(self, name: str, input_json: str | None) -> str | None:
        """The activity's result as JSON text (None for no result), or ``FunctionFailed``."""
        ...

    async def run_timer(self, name: str, *, past_due: bool, schedule_status: dict[str, Any] | None) -> None:
        """One timer-trigger invocation (``TimerRequest``: isPastDue, scheduleStatus), or
        ``FunctionFailed``."""
        ...


# Binding types of Durable entities: the devhost's engine does not run entities.
ENTITY_BINDINGS = frozenset({"entitytrigger"})


def refuse_unsupported(bindings: Mapping[str, list[dict[str, Any]]]) -> None:
    """Refuse, when the app loads, what would otherwise hang later: entity functions, and clients
    that signal or read them. Names the functions."""
    entities = sorted(
        name
        for name, items in bindings.items()
        if any(str(b.get("type", "")).lower() in ENTITY_BINDINGS for b in items)
    )
    if entities:
        raise UnsupportedFunction(
            "The devhost's durable engine does not run Durable entities; remove or disable "
            + ", ".join(f"the entity function '{n}'" for n in entities)
            + " (entityTrigger) to run this app locally."
        )
