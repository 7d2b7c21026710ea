"""RFC 9457 problem details in the caller's language, and the JSON helpers every trigger uses.

The one mapping from domain errors to problems: a :class:`DomainError` names its status and
problem type (class attributes) and carries a message ``code`` with parameters; here they become

    {"type": ".../<slug>", "title": <localised>, "status": 409, "detail": <localised>,
     "code": "notice_period", "instance": "/api/...", <parameters as extension members>}

in fi, sv or en by ``Accept-Language`` (Finnish by default, as the portal). Field errors list
``{"field", "code", "message"}`` with the message localised too. The texts live in
``appointments.messages``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

import azure.functions as func

from adapters import telemetry
from appointments import messages
from appointments.errors import DomainError, Problems, TooManyRequests, ValidationFailed
from appointments.validation import MAX_BODY_BYTES, MAX_DEPTH, bad_characters, nested_deeper_than, strings

log = logging.getLogger(__name__)
PROBLEM_TYPE_BASE = "https://errors.verkkoneuvottelu.example/"
JSON = "application/json"


def dumps(body: Any) -> str:
    """JSON text that can always be sent: a lone surrogate already stored is escaped, not fatal."""
    text = json.dumps(body, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: ASCII escapes (\\ud800) are valid JSON
        return json.dumps(body, ensure_ascii=True)
    return text


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        dumps(body), status_code=status, mimetype=JSON, charset="utf-8", headers=headers or {}
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
    """A problem document as given (for machine callers such as Graph); people get :func:`from_error`."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "code": extensions.pop("code", slug.replace("-", "_")),
    }
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return func.HttpResponse(
        dumps(body),
        status_code=status,
        mimetype="application/problem+json",
        charset="utf-8",
        headers=headers or {},
    )


class Refusal(DomainError):
    """A problem with its own status and type that no domain rule raises (405, 413, 503, 500...)."""

    def __init__(
        self, status: int, slug: str, code: str, headers: dict[str, str] | None = None, **params: Any
    ) -> None:
        super().__init__(code, **params)
        self.status = status
        self.type_slug = slug
        self.headers = headers or {}


LOOKUP_ROUTE_SEGMENT = "lookup"


def refuse_lookup_path(req: func.HttpRequest) -> None:
    """``/appointments/lookup`` is POST only. Its other methods match ``appointments/{code}`` (the
    Functions host routes a literal segment and a parameter alike once the method rules out the
    literal route), which would answer 404 for a "booking" named lookup: answer 405 instead."""
    if req.route_params.get("code", "").lower() == LOOKUP_ROUTE_SEGMENT:
        raise Refusal(405, "method-not-allowed", "method_not_allowed", {"Allow": "POST"}, method=req.method)


def language(req: func.HttpRequest | None) -> str:
    return messages.negotiate(req.headers.get("accept-language") if req is not None else None)


def _service_phone() -> str:
    import bootstrap
    from appointments.settings import Settings

    try:
        return bootstrap.services().settings.bank_service_phone
    except Exception:  # an error page must not fail because the settings do
        return Settings.bank_service_phone


def from_error(
    error: DomainError, req: func.HttpRequest | None = None, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    lang = language(req)
    out: dict[str, str] = {"Content-Language": lang, "Vary": "Accept-Language", **(headers or {})}
    if isinstance(error, Refusal):
        out.update(error.headers)
    if isinstance(error, TooManyRequests):
        out["Retry-After"] = str(error.retry_after)
    if "retryAfter" in error.extensions:
        out["Retry-After"] = str(error.extensions["retryAfter"])
    if error.status == 401:
        out["WWW-Authenticate"] = 'Bearer realm="portal"'
    instance = None
    if req is not None:
        instance = "/" + req.url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
    params = dict(error.extensions)
    if "{servicePhone}" in messages.MESSAGES.get(error.code, {}).get(lang, ""):
        params["servicePhone"] = _service_phone()
    if isinstance(error, ValidationFailed):
        errors = [
            {**e.params, "field": e.field, "code": e.code, "message": messages.render(e.code, lang, e.params)}
            for e in error.errors
        ]
        params["errors"] = errors
        detail = messages.render(error.code, lang, {"messages": " ".join(e["message"] for e in errors)})
    else:
        detail = messages.render(error.code, lang, params)
    return problem(
        error.status,
        messages.title(error.type_slug, lang),
        detail,
        error.type_slug,
        instance,
        out,
        code=error.code,
        **params,
    )


def _malformed(field: str, code: str, **params: Any) -> None:
    p = Problems()
    p.add(field, code, **params)
    p.raise_if_any(malformed=True)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's parser takes NaN and Infinity; JSON does not


def read_json(req: func.HttpRequest) -> Any:
    """The request body as JSON, checked before anything else sees it.

    400 for a missing, non-JSON, too deeply nested body or one holding text that cannot be stored
    (lone surrogates, control characters other than newlines, bidi overrides: newlines are judged
    per field by the parsers), 413 above :data:`MAX_BODY_BYTES`.
    """
    body = req.get_body()
    if len(body) > MAX_BODY_BYTES:
        raise Refusal(413, "payload-too-large", "payload_too_large", maxBytes=MAX_BODY_BYTES)
    if not body:
        _malformed("body", "body_required")
    content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type and content_type != JSON and not content_type.endswith("+json"):
        _malformed("content-type", "content_type_json")
    try:
        value = json.loads(body, parse_constant=_no_constant)
    except RecursionError:  # the C parser's own limit, near 1,000 levels
        _malformed("body", "json_too_deep", maxDepth=MAX_DEPTH)
    except (ValueError, UnicodeDecodeError):
        _malformed("body", "json_invalid")
    if nested_deeper_than(value, MAX_DEPTH):
        _malformed("body", "json_too_deep", maxDepth=MAX_DEPTH)
    for field, text in strings(value):
        if bad_characters(text, allow_newline=True):
            _malformed(field, "text_invalid")
    return value


Handler = Callable[..., Awaitable[func.HttpResponse]]


def problems_as_responses(fn: Handler) -> Handler:
    """Turn domain errors into problem+json; anything else is logged and answered with a bare 500."""

    @wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> func.HttpResponse:
        req = kwargs.get("req")
        # Logs and the span of this invocation name the appointment (adapters/telemetry.py).
        with telemetry.span(fn.__name__, telemetry.booking_code_of(req), operation="trigger." + fn.__name__):
            try:
                return await fn(*args, **kwargs)
            except DomainError as error:
                return from_error(error, req)
            except Exception:
                log.exception("unhandled error in %s", fn.__name__)
                return from_error(Refusal(500, "internal", "internal_error"), req)

    return wrapper
