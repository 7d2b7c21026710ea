"""How a failed Graph call reaches the ports: ``TransientGatewayError`` or ``PermanentGatewayError``.

5xx, 429, 408, timeouts and connection errors are transient (Durable's retry policy tries
again); any other 4xx is permanent and carries the status and Graph's error code, never
Graph's message text (it can echo user names and addresses). The process-wide concurrency
limit (``adapters.graph.client.call_slot``) is taken per HTTP attempt by the client's innermost
middleware, not here, so a call waiting between retries holds no slot.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from appointments.ports import GatewayError, PermanentGatewayError, TransientGatewayError

if TYPE_CHECKING:  # pragma: no cover - names for annotations only
    import httpx


def gateway_error(
    operation: str, status: int | None, code: str | None, retry_after: str | None
) -> GatewayError:
    label = f"Graph {operation} failed: HTTP {status}" + (f" {code}" if code else "")
    if status is None or status in (408, 429) or status >= 500:
        hint = f" (retry after {retry_after} s)" if retry_after else ""
        return TransientGatewayError(label + hint)
    return PermanentGatewayError(label, status=status, code=code)


@asynccontextmanager
async def graph_call(operation: str, *, missing_ok: bool = False) -> AsyncIterator[SimpleNamespace]:
    """One Graph call: its httpx and kiota failures mapped to the ports'.

    With ``missing_ok`` a 404 is swallowed and ``outcome.missing`` set instead.
    """
    import httpx
    from kiota_abstractions.api_error import APIError

    outcome = SimpleNamespace(missing=False)
    try:
        yield outcome
    except GatewayError:
        raise
    except httpx.TransportError as exc:  # timeouts, refused and reset connections
        raise TransientGatewayError(f"Graph {operation} failed: {type(exc).__name__}") from exc
    except APIError as exc:
        status = exc.response_status_code
        if missing_ok and status == 404:
            outcome.missing = True
            return
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None)
        headers = exc.response_headers or {}
        raise gateway_error(operation, status, code, header(headers, "retry-after")) from exc


def header(headers: Any, name: str) -> str | None:
    try:
        value = headers.get(name)
    except AttributeError:
        return None
    if isinstance(value, list | tuple | set):
        value = next(iter(value), None)
    return str(value) if value is not None else None


def raise_for_native(operation: str, response: httpx.Response) -> None:
    if response.is_success:
        return
    code = None
    with contextlib.suppress(ValueError, AttributeError):  # an HTML gateway page, or no body at all
        code = response.json().get("error", {}).get("code")
    raise gateway_error(operation, response.status_code, code, response.headers.get("retry-after"))
