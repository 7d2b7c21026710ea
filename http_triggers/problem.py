"""RFC 9457 problem details, and the JSON helpers every trigger uses."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

import azure.functions as func

from appointments.errors import DomainError, TooManyRequests

log = logging.getLogger(__name__)
PROBLEM_TYPE_BASE = "https://errors.verkkoneuvottelu.example/"
JSON = "application/json"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, ensure_ascii=False),
        status_code=status,
        mimetype=JSON,
        charset="utf-8",
        headers=headers or {},
    )


def problem(
    status: int,
    title: str,
    detail: str,
    slug: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> func.HttpResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return func.HttpResponse(
        json.dumps(body, ensure_ascii=False),
        status_code=status,
        mimetype="application/problem+json",
        charset="utf-8",
        headers=headers or {},
    )


def from_error(error: DomainError, req: func.HttpRequest | None = None) -> func.HttpResponse:
    headers: dict[str, str] = {}
    if isinstance(error, TooManyRequests):
        headers["Retry-After"] = str(error.retry_after)
    if "retryAfter" in error.extensions:
        headers["Retry-After"] = str(error.extensions["retryAfter"])
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="portal"'
    instance = None
    if req is not None:
        instance = "/" + req.url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
    return problem(
        error.status, error.title, error.detail, error.type_slug, instance, headers, **error.extensions
    )


def read_json(req: func.HttpRequest) -> Any:
    """The request body as JSON; a malformed body is a 400 problem."""
    from appointments.errors import Problems

    body = req.get_body()
    if not body:
        p = Problems()
        p.add("body", "a JSON body is required")
        p.raise_if_any(malformed=True)
    content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type and content_type != JSON and not content_type.endswith("+json"):
        p = Problems()
        p.add("content-type", "must be application/json")
        p.raise_if_any(malformed=True)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        p = Problems()
        p.add("body", "is not valid JSON")
        p.raise_if_any(malformed=True)


Handler = Callable[..., Awaitable[func.HttpResponse]]


def problems_as_responses(fn: Handler) -> Handler:
    """Turn domain errors into problem+json; anything else is logged and answered with a bare 500."""

    @wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> func.HttpResponse:
        req = kwargs.get("req")
        try:
            return await fn(*args, **kwargs)
        except DomainError as error:
            return from_error(error, req)
        except Exception:
            log.exception("unhandled error in %s", fn.__name__)
            return problem(500, "Internal error", "Something went wrong. Please try again later.", "internal")

    return wrapper
