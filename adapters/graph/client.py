"""The msgraph-sdk client: lazy SDK loading, credentials, bounded retries, bounded concurrency.

Cold start is a product metric, so nothing here imports msgraph or azure.identity at import
time: ``load_sdk()`` loads them on first use. Importing the SDK also raises
DeprecationWarnings from its generated request builders; ``load_sdk()`` imports them once
with those warnings silenced, so later calls emit none (the suite runs with
``filterwarnings = error``).

Retries: kiota's RetryHandler honours Retry-After for 429/503/504. It is bounded here
(``RetryPolicy``), a Retry-After above ``max_retry_after`` is handed to Durable's retry
instead of slept on, and a POST is retried only where the action is idempotent
(``IDEMPOTENT_POSTS``). Graph answers sendMail with 202 and no id, so a transport-level
resend after a 503/504 that Graph had already accepted would deliver the mail twice
(kiota_http ``RetryHandler.DEFAULT_ALLOWED_METHODS`` includes POST; its
``_is_method_retryable`` is the hook this module narrows).

Concurrency: Outlook allows 4 concurrent requests per app and mailbox
(https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits);
``call_slot`` keeps one process at that many Graph requests in flight. The slot is taken by the
innermost middleware, around each HTTP attempt, so a request that waits out a ``Retry-After``
or a backoff between attempts holds none: a waiting request is not in flight at Graph, and
holding the slot through the wait would stall every other call of the process behind it.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # pragma: no cover - names for annotations only
    import httpx
    from msgraph.graph_service_client import GraphServiceClient

    from appointments.settings import Settings

DEV_TOKEN = "graph-emulator-dev-token"  # noqa: S105 - the token the loopback emulator accepts, nothing else
MAX_CONCURRENT_CALLS = 4
# POST actions that are safe to send twice: createOrGet keys on externalId, getSchedule and
# reauthorize change nothing a second time. sendMail and POST /subscriptions are not.
IDEMPOTENT_POSTS = ("/onlineMeetings/createOrGet", "/calendar/getSchedule", "/reauthorize")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one adapter call tries before it hands the failure to Durable's retry."""

    max_retries: int = 2  # retries after the first attempt, for 429/503/504
    backoff: float = 0.5  # seconds; doubles per retry, plus up to 1 s of jitter (kiota)
    max_retry_after: float = 10.0  # longer Retry-After → TransientGatewayError at once
    timeout: float = 20.0  # seconds per attempt (read); connect gets min(5, timeout)


# --- lazy SDK loading ---------------------------------------------------------------------

# Request builders on the paths the adapters navigate. Importing them issues
# DeprecationWarnings from their class bodies, so they are imported here, once, quietly.
_SDK_MODULES = (
    "msgraph",
    "msgraph.graph_request_adapter",
    "msgraph.generated.users.users_request_builder",
    "msgraph.generated.users.item.user_item_request_builder",
    "msgraph.generated.users.item.online_meetings.online_meetings_request_builder",
    "msgraph.generated.users.item.online_meetings.create_or_get.create_or_get_request_builder",
    "msgraph.generated.users.item.online_meetings.item.online_meeting_item_request_builder",
    "msgraph.generated.users.item.calendar.calendar_request_builder",
    "msgraph.generated.users.item.calendar.get_schedule.get_schedule_request_builder",
    "msgraph.generated.users.item.send_mail.send_mail_request_builder",
    "msgraph.generated.users.item.mail_folders.mail_folders_request_builder",
    "msgraph.generated.users.item.mail_folders.item.mail_folder_item_request_builder",
    "msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder",
    "msgraph.generated.subscriptions.subscriptions_request_builder",
    "msgraph.generated.subscriptions.item.subscription_item_request_builder",
    "msgraph.generated.subscriptions.item.reauthorize.reauthorize_request_builder",
    "kiota_abstractions.base_request_configuration",
    "kiota_abstractions.native_response_handler",
    "kiota_http.middleware.options",
    "kiota_serialization_json.json_parse_node_factory",
)
_sdk_lock = threading.Lock()
_sdk_loaded = False


def load_sdk() -> None:
    """Import the SDK modules the adapters use (first call only)."""
    global _sdk_loaded
    if _sdk_loaded:
        return
    import importlib

    with _sdk_lock:
        if _sdk_loaded:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for name in _SDK_MODULES:
                importlib.import_module(name)
        _sdk_loaded = True


# --- concurrency --------------------------------------------------------------------------

_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()
_slots_lock = threading.Lock()


@asynccontextmanager
async def call_slot() -> AsyncIterator[None]:
    """One of the process's ``MAX_CONCURRENT_CALLS`` Graph calls (per event loop: a semaphore
    belongs to one loop, and the Functions worker runs async functions on one)."""
    loop = asyncio.get_running_loop()
    with _slots_lock:
        semaphore = _slots.get(loop)
        if semaphore is None:
            semaphore = _slots[loop] = asyncio.Semaphore(MAX_CONCURRENT_CALLS)
    async with semaphore:
        yield


def _slot_middleware() -> Any:
    from kiota_http.middleware.middleware import BaseMiddleware

    class CallSlotHandler(BaseMiddleware):
        """The last middleware before the transport: one ``call_slot`` per HTTP attempt."""

        async def send(self, request: httpx.Request, transport: httpx.AsyncBaseTransport) -> httpx.Response:
            async with call_slot():
                return await super().send(request, transport)

    return CallSlotHandler()


# --- client -------------------------------------------------------------------------------


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def build_graph_client(
    settings: Settings,
    *,
    http_client: httpx.AsyncClient | None = None,
    policy: RetryPolicy | None = None,
    credential: Any = None,
) -> GraphServiceClient:
    """A ``GraphServiceClient`` for ``settings.graph_base_url`` with bounded retries.

    Credentials: ``credential`` when given; the emulator's dev token when the base URL is a
    loopback address; ``ClientSecretCredential`` for the app registration
    (``GRAPH_TENANT_ID`` + ``GRAPH_CLIENT_ID`` + ``GRAPH_CLIENT_SECRET``); otherwise
    ``DefaultAzureCredential``, i.e. the managed identity in Azure, a user-assigned one
    when ``AZURE_CLIENT_ID`` names it (azure-identity's own name for that setting).
    ``http_client`` lets the caller own the connection pool (tests close it); its
    transport is wrapped with the SDK's middleware.
    """
    load_sdk()
    import httpx
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_service_client import GraphServiceClient

    policy = policy or RetryPolicy()
    base_url = settings.graph_base_url.rstrip("/")
    timeout = httpx.Timeout(policy.timeout, connect=min(5.0, policy.timeout))
    if http_client is None:
        http_client = httpx.AsyncClient(timeout=timeout)
    else:
        http_client.timeout = timeout
    adapter = GraphRequestAdapter(
        _auth_provider(settings, base_url, credential), client=_with_middleware(http_client, policy)
    )
    # httpx's base URL handling would otherwise turn "{+baseurl}/users" into "//users".
    adapter.base_url = base_url
    return GraphServiceClient(request_adapter=adapter)


def _auth_provider(settings: Settings, base_url: str, credential: Any) -> Any:
    host = urlsplit(base_url).hostname or ""
    if credential is None and is_loopback(base_url):
        return _static_token_provider(host)
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )

    if credential is None:
        credential = _azure_credential(settings)
    return AzureIdentityAuthenticationProvider(
        credential, scopes=[f"https://{host}/.default"], allowed_hosts=[host]
    )


def _azure_credential(settings: Settings) -> Any:
    secret = settings.graph_client_secret.value
    if settings.graph_tenant_id and settings.graph_client_id and secret:
        from azure.identity.aio import ClientSecretCredential

        return ClientSecretCredential(settings.graph_tenant_id, settings.graph_client_id, secret)
    from azure.identity.aio import DefaultAzureCredential

    # GRAPH_CLIENT_ID is never a managed identity's id: AZURE_CLIENT_ID is.
    return DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id or None)


def _static_token_provider(host: str) -> Any:
    from kiota_abstractions.authentication import (
        AccessTokenProvider,
        AllowedHostsValidator,
        BaseBearerTokenAuthenticationProvider,
    )

    class StaticToken(AccessTokenProvider):
        """The emulator's dev token; Graph itself never sees this one."""

        async def get_authorization_token(
            self, uri: str, additional_authentication_context: dict[str, Any] | None = None
        ) -> str:
            return DEV_TOKEN if self.get_allowed_hosts_validator().is_url_host_valid(uri) else ""

        def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
            return AllowedHostsValidator([host])

    return BaseBearerTokenAuthenticationProvider(StaticToken())


def _with_middleware(http_client: httpx.AsyncClient, policy: RetryPolicy) -> httpx.AsyncClient:
    from kiota_http.kiota_client_factory import KiotaClientFactory
    from kiota_http.middleware import RetryHandler
    from kiota_http.middleware.options import RetryHandlerOption
    from msgraph_core import GraphClientFactory
    from msgraph_core.middleware import GraphTelemetryHandler

    class BoundedRetryHandler(RetryHandler):
        """kiota's retry, except that a long Retry-After is handed back instead of slept on,
        and a POST is resent only when the action is idempotent."""

        def get_delay_time(self, retry_count: int, response: Any = None, delay: float = 0.0) -> float:
            retry_after = self._get_retry_after(response)
            if retry_after is not None and retry_after > policy.max_retry_after:
                return float(RetryHandlerOption.MAX_DELAY)  # kiota skips the retry at this value
            return float(super().get_delay_time(retry_count, response, delay))

        def _is_method_retryable(self, request: Any) -> bool:
            if request.method.upper() == "POST":
                return str(request.url.path).endswith(IDEMPOTENT_POSTS)
            return bool(super()._is_method_retryable(request))

        def should_retry(self, request: Any, options: Any, response: Any) -> bool:
            if request.method.upper() == "POST" and not str(request.url.path).endswith(IDEMPOTENT_POSTS):
                # A throttled request is refused before Graph acts on it ("Microsoft Graph
                # throttling guidance": over a limit, "the requests fail" with 429), so even a
                # non-idempotent POST (sendMail) can be resent after a 429. A 503/504 may come
                # after the work was done: those go back to the caller, which checks first.
                return bool(options.max_retry > 0 and response.status_code == 429)
            return bool(super().should_retry(request, options, response))

    retry = BoundedRetryHandler(RetryHandlerOption(delay=0.0, max_retries=policy.max_retries))
    retry.backoff_factor = policy.backoff
    middleware = [
        retry if isinstance(handler, RetryHandler) else handler
        for handler in KiotaClientFactory.get_default_middleware(None)
    ]
    middleware.append(GraphTelemetryHandler())
    middleware.append(_slot_middleware())  # innermost: retries wait outside the slot
    client: Any = GraphClientFactory.create_with_custom_middleware(middleware, client=http_client)
    # msgraph-core's AsyncGraphTransport has no aclose(), so closing the httpx client would
    # leave the real connection pool (and its sockets) open. Hand aclose through.
    for transport in [client._transport, *(t for t in client._mounts.values() if t is not None)]:
        inner = getattr(transport, "transport", None)
        if inner is not None:
            transport.aclose = inner.aclose
    return client  # type: ignore[no-any-return]  # msgraph-core's factory is untyped; it is an httpx client
