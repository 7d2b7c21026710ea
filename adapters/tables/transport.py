"""The Table client's transport: a connection pool as large as the threads that share it, and
transactions that cost their client little (``adapters.tables.multipart``).

The SDK's own requests session keeps urllib3's default of 10 connections per host; ``bootstrap``
builds every Table client on ``table_transport()`` instead. The benchmarks pass a counting
subclass (``bench.round_trips``) the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import requests
from azure.core.pipeline.transport import RequestsTransport
from urllib3.util.retry import Retry

from adapters.tables.multipart import lean_transactions


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
    lean_transactions()
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
