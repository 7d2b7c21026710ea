"""What the durable engine may run, and the only way it runs it.

The engine never touches the app's Python functions: it hands a context or an input (JSON text,
as the Durable extension sends it over the worker protocol) to a ``FunctionRunner`` and gets JSON
text back. The devhost's runner is the real Python worker (``devhost.worker``).
"""

from __future__ import annotations

from typing import Protocol


class FunctionFailed(Exception):
    """The worker reported the invocation as failed; ``str()`` is the worker's exception message
    (``"<Type>: <text>"``, as ``azure_functions_runtime.utils.tracing.serialize_exception`` forms it)."""


class FunctionRunner(Protocol):
    orchestrators: frozenset[str]
    activities: frozenset[str]

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
