"""Table transactions that cost their client little: azure-core's multipart/mixed handling, the
same bytes on the wire, without its thread pools and without the e-mail package.

A Table transaction is a ``$batch`` request: a multipart/mixed body holding one changeset,
itself multipart/mixed, holding each operation as an ``application/http`` part
(``TablesBaseClient._batch_send``). azure-core's synchronous pipeline handles it in three steps,
each costly for what it does:

1. the part policies (``StorageHeadersPolicy``: the part's ``x-ms-date``) run on a new
   ``ThreadPoolExecutor`` for the batch and another for the changeset
   (``Pipeline._prepare_multipart_mixed_request``);
2. the body is written by building ``email.message.Message`` objects and flattening them
   (``_prepare_multipart_body_helper``): header parsing and refolding for boundaries the SDK
   chose itself;
3. the answer's parts go through the part policies on yet another thread pool
   (``HttpResponse.parts`` → ``_parts_helper``).

A transaction of three rows started and joined seven threads, and under load the e-mail
flattening was 8% of the worker's samples and the transactions a fifth of them (see
docs/SCALE.md). ``lean_transactions()`` puts in functions that do the same in turn, writing the
body directly; ``tests/integration/test_table_round_trips.py`` holds them to azure-core's own
output byte for byte. The async pipeline already runs the policies inline (``asyncio.gather``).

If azure-core no longer has what is replaced (a release that reworked it), nothing is changed
and a warning is logged: its own code then stays, slower but correct.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from azure.core.pipeline import Pipeline, PipelineContext, PipelineRequest, PipelineResponse
from azure.core.rest._helpers import HttpRequestBackcompatMixin
from azure.core.rest._http_response_impl import HttpResponseBackcompatMixin

log = logging.getLogger(__name__)

CRLF = b"\r\n"
# azure-core's own writer, taken before anything replaces it: what a boundary it must invent uses.
_SDK_WRITE_BODY: Any = HttpRequestBackcompatMixin.__dict__.get("_prepare_multipart_body")


def prepare_parts_in_turn(request: Any) -> None:
    """Step 1 in turn: each part (a changeset's own parts first) through every part policy's
    ``on_request``, in a context of its own. ``multipart_mixed_info`` is the parts, their
    policies, the boundary and the pipeline options."""
    info = request.multipart_mixed_info
    if not info:
        return
    parts, policies, options = info[0], info[1], info[3]
    for part in parts:
        if part.multipart_mixed_info:
            prepare_parts_in_turn(part)
        pipeline_request: PipelineRequest[Any] = PipelineRequest(part, PipelineContext(None, **options))
        for policy in policies:
            _sync(policy, policy.on_request(pipeline_request))


def write_body(request: Any, content_index: int = 0) -> int:
    """Step 2 directly: the multipart/mixed body of ``request`` and its Content-Type, as azure-core
    writes them. Each part: the boundary line, its headers (a changeset: its Content-Type; an
    operation: ``application/http``, binary, its Content-ID counted across the whole batch), a
    blank line, the part, CRLF; then the closing boundary. Returns the next Content-ID."""
    info = request.multipart_mixed_info
    if not info:
        return 0
    parts, boundary = info[0], info[2]
    if not boundary or not parts:
        # azure-core invents the boundary (or writes an empty body): left to it.
        return int(_SDK_WRITE_BODY(request, content_index))
    delimiter = b"--" + boundary.encode("ascii")
    chunks: list[bytes] = []
    for part in parts:
        chunks += (delimiter, CRLF)
        if part.multipart_mixed_info:
            content_index = part.prepare_multipart_body(content_index=content_index)
            payload = part.serialize()
            # The changeset's body: its serialisation minus the request line and headers.
            payload = payload[payload.index(b"--") :]
            chunks += (b"Content-Type: ", part.headers["Content-Type"].encode("ascii"), CRLF)
        else:
            payload = part.serialize()
            chunks += (
                b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n",
                b"Content-ID: ",
                str(content_index).encode("ascii"),
                CRLF,
            )
            content_index += 1
        chunks += (CRLF, payload, CRLF)
    chunks += (delimiter, b"--", CRLF)
    request.set_bytes_body(b"".join(chunks))
    request.headers["Content-Type"] = "multipart/mixed; boundary=" + boundary
    return content_index


def parts_in_turn(response: Any) -> list[Any]:
    """Step 3 in turn: the answer's raw parts, each through every part policy's ``on_response``."""
    if not response.content_type or not response.content_type.startswith("multipart/mixed"):
        raise ValueError("You can't get parts if the response is not multipart/mixed")
    parts = response._get_raw_parts()  # the raw parts, as parts() itself takes them
    info = response.request.multipart_mixed_info
    if info:
        for part in parts:
            context = PipelineContext(None)
            pipeline_request: PipelineRequest[Any] = PipelineRequest(part.request, context)
            pipeline_response = PipelineResponse(part.request, part, context=context)
            for policy in info[1]:
                _sync(policy, policy.on_response(pipeline_request, pipeline_response))
    return list(parts)


def _sync(policy: object, result: object) -> None:
    if hasattr(result, "__await__"):
        # As azure-core refuses it: a synchronous pipeline cannot await a policy.
        raise TypeError(f"Policy {policy!r} returned an awaitable in a sync pipeline")


_lock = threading.Lock()


def lean_transactions() -> bool:
    """Put the three replacements in (idempotent); False, changing nothing, if azure-core's
    multipart handling is no longer where it was."""
    with _lock:
        prepare = Pipeline.__dict__.get("_prepare_multipart_mixed_request")
        body = HttpRequestBackcompatMixin.__dict__.get("_prepare_multipart_body")
        parts = HttpResponseBackcompatMixin.__dict__.get("parts")
        if not isinstance(prepare, staticmethod) or not callable(body) or not callable(parts):
            log.warning("azure-core's multipart handling changed; its own is left in place")
            return False
        if prepare.__func__ is not prepare_parts_in_turn:
            Pipeline._prepare_multipart_mixed_request = staticmethod(prepare_parts_in_turn)  # type: ignore[method-assign]
        if body is not write_body:
            HttpRequestBackcompatMixin._prepare_multipart_body = write_body  # type: ignore[method-assign]
        if parts is not parts_in_turn:
            HttpResponseBackcompatMixin.parts = parts_in_turn  # type: ignore[method-assign]
        return True
