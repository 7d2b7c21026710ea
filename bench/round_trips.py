"""Count Table Storage round trips at the transport.

``TableServiceClient(..., transport=RoundTrips())`` sends every HTTP request through ``send``,
so the count is what goes over the wire (a transaction of many entities is one request, a
retry is another), never what the code seems to do. A transport and not a pipeline policy:
``TableServiceClient.get_table_client`` builds each table's pipeline from the service's
default policies (``per_call_policies`` are dropped) but wraps the service's own transport.
Each request is filed under the ``kind`` in effect (a context variable, which
``asyncio.to_thread`` carries into the worker thread), or under ``background`` (the
lifecycle's activities) when none is set.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from azure.core.pipeline.transport import RequestsTransport

KIND: contextvars.ContextVar[str | None] = contextvars.ContextVar("bench_request_kind", default=None)
BACKGROUND = "background"

_ENTITY = re.compile(r"^/(?:[^/]+/)?(?P<table>[A-Za-z0-9]+)\((?P<keys>[^)]*)\)$")
_TABLE = re.compile(r"^/(?:[^/]+/)?(?P<table>[A-Za-z0-9]+)(?:\(\))?$")


def describe(method: str, path: str) -> str:
    """``point read Appointments``, ``query ExpertSlots``, ``transaction``, ``insert Audit``..."""
    path = path.split("?", 1)[0]
    if path.endswith("/$batch"):
        return "transaction"
    if m := _ENTITY.match(path):
        table, keyed = m["table"], bool(m["keys"])
        if table == "Tables":
            return "delete table" if method == "DELETE" else "table"
        verb = {
            "GET": "point read" if keyed else "query",
            "PUT": "replace/upsert",
            "MERGE": "merge",
            "PATCH": "merge",
            "DELETE": "delete",
        }.get(method, method)
        return f"{verb} {table}"
    if m := _TABLE.match(path):
        if m["table"] == "Tables":
            return "create table" if method == "POST" else "list tables"
        return f"{'insert' if method == 'POST' else 'query'} {m['table']}"
    return f"{method} {path}"


class RoundTrips(RequestsTransport):
    """The SDK's own requests transport, counting every request by kind and by operation."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self.by_kind: dict[str, Counter[str]] = {}

    def send(self, request: Any, **kwargs: Any) -> Any:
        op = describe(request.method, urlsplit(request.url).path)
        kind = KIND.get() or BACKGROUND
        with self._lock:
            self.by_kind.setdefault(kind, Counter())[op] += 1
        return super().send(request, **kwargs)

    def total(self, kind: str) -> int:
        with self._lock:
            return sum(self.by_kind.get(kind, Counter()).values())

    def grand_total(self) -> int:
        with self._lock:
            return sum(sum(c.values()) for c in self.by_kind.values())

    def reset(self) -> None:
        with self._lock:
            self.by_kind.clear()

    def snapshot(self) -> dict[str, Counter[str]]:
        with self._lock:
            return {k: Counter(v) for k, v in self.by_kind.items()}


@contextlib.contextmanager
def kind(name: str) -> Iterator[None]:
    token = KIND.set(name)
    try:
        yield
    finally:
        KIND.reset(token)
