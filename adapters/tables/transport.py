"""The Table client's transport: a connection pool as large as the threads that share it, and
transactions handled without thread pools.

The SDK's own requests session keeps urllib3's default of 10 connections per host; ``bootstrap``
builds every Table client on ``table_transport()`` instead. The benchmarks pass a counting
subclass (``bench.round_trips``) the same way.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import requests
from azure.core.pipeline import Pipeline, PipelineContext, PipelineRequest, PipelineResponse
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest._http_response_impl import HttpResponseBackcompatMixin
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)


def client_threads(environ: Mapping[str, str] | None = None) -> int:
    """How many threads may use the one (synchronous) Table client of a process at once.

    The Python worker runs sync functions on its own pool, ``PYTHON_THREADPOOL_THREAD_COUNT``
    threads, or ``ThreadPoolExecutor``'s default when unset (``azure_functions_runtime.utils.
    threadpool``); async functions reach the client through ``asyncio.to_thread``, whose
    default executor has that same default size, ``min(32, cpu + 4)``. Both at once is the most.
    """
    env = os.environ if environ is None else environ
    default = min(32, (os.cpu_count() or 1) + 4)
    try:
        worker = int(env.get("PYTHON_THREADPOOL_THREAD_COUNT") or default)
    except ValueError:
        worker = default
    return max(1, worker) + default


def _environment_settings(env: Mapping[str, str]) -> list[str]:
    """The variables requests would take from the environment per call: proxies, CA bundles."""
    names = ("http_proxy", "https_proxy", "all_proxy", "requests_ca_bundle", "curl_ca_bundle")
    return [key for key in env if key.lower() in names and env[key]]


def _keep_authorization(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


def table_transport(
    pool_size: int | None = None,
    transport: type[RequestsTransport] = RequestsTransport,
) -> RequestsTransport:
    """The SDK's requests transport with a connection pool as large as the threads that share it.

    Its own session keeps urllib3's default of 10 connections per host: with more threads than
    that, each extra request opens a connection and throws it away ("Connection pool is full,
    discarding connection"), a TCP (and on Azure a TLS) handshake per call under load. Retries
    stay off in the adapter, as the SDK sets them: the pipeline's retry policy owns retrying.
    """
    transactions_without_threads()
    size = pool_size or client_threads()
    session = requests.Session()
    # The pipeline signs every request itself (SharedKey or a bearer token). With no auth of its
    # own, requests looks up ~/.netrc on every call (a file-system probe per round trip, 4% of the
    # devhost's samples under load) and, if the host is listed there, replaces the signed
    # Authorization header with Basic credentials. An auth that changes nothing turns both off;
    # proxies from the environment still apply.
    session.auth = _keep_authorization
    # With no proxy and no CA bundle in the environment, there is nothing for requests to merge
    # from it on each call (``Session.merge_environment_settings``: the proxies for the URL and the
    # bundle, 1% of the devhost's samples under load); set, they keep applying as before.
    if not _environment_settings(os.environ):
        session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4,
        pool_maxsize=size,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return transport(session=session, session_owner=True)


def _prepare_parts_in_turn(request: Any) -> None:
    """Run a multipart/mixed request's part policies on each part, one part after the other.

    What ``Pipeline._prepare_multipart_mixed_request`` does, without its thread pool: the parts
    (``multipart_mixed_info``: the parts, their policies, the parent, the pipeline options), a
    changeset's own parts first, each through every policy's ``on_request`` in a context of its
    own. A Table transaction's part policy is ``StorageHeadersPolicy`` alone (``TablesBaseClient.
    _batch_send``): a few dictionary writes, which the GIL serialises anyway."""
    info = request.multipart_mixed_info
    if not info:
        return
    parts, policies, options = info[0], info[1], info[3]
    for part in parts:
        if part.multipart_mixed_info:
            _prepare_parts_in_turn(part)
        pipeline_request: PipelineRequest[Any] = PipelineRequest(part, PipelineContext(None, **options))
        for policy in policies:
            _sync(policy, policy.on_request(pipeline_request))


def _parts_in_turn(response: Any) -> list[Any]:
    """A multipart/mixed response's parts, each through the request's part policies in turn.

    What the sync ``HttpResponse.parts()`` (``_parts_helper``) does, without its thread pool: the
    raw parts, then every part policy's ``on_response`` on each."""
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
        # As azure-core's own preparation refuses it: a sync pipeline cannot await a policy.
        raise TypeError(f"Policy {policy!r} returned an awaitable in a sync pipeline")


_patch_lock = threading.Lock()


def transactions_without_threads() -> bool:
    """Make the synchronous pipeline handle a transaction's parts in turn (idempotent).

    azure-core's synchronous pipeline runs the part policies of every multipart/mixed request
    (each Table transaction: a batch holding a changeset holding the operations) on a new
    ``ThreadPoolExecutor``: one for the batch and one for the changeset when the request is
    prepared, and one more for the parts of the answer. A transaction of three rows started and
    joined seven threads, 2-2.5 ms of its 4.5-7 ms of client CPU (measured against Azurite), and
    under load the largest single item in the worker's profile. The async pipeline does the
    same work inline (``asyncio.gather``), and so do these replacements.

    Returns False, changing nothing, when azure-core no longer has the two methods (a release
    that reworked them): its own thread pools then stay, slower but correct.
    """
    with _patch_lock:
        prepare = Pipeline.__dict__.get("_prepare_multipart_mixed_request")
        parts = HttpResponseBackcompatMixin.__dict__.get("parts")
        if not isinstance(prepare, staticmethod) or not callable(parts):
            log.warning("azure-core's multipart handling changed; its thread pools are left as they are")
            return False
        if prepare.__func__ is not _prepare_parts_in_turn:
            Pipeline._prepare_multipart_mixed_request = staticmethod(_prepare_parts_in_turn)  # type: ignore[method-assign]
        if parts is not _parts_in_turn:
            HttpResponseBackcompatMixin.parts = _parts_in_turn  # type: ignore[method-assign]
        return True
