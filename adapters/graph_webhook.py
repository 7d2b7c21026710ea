"""Microsoft Graph change notifications for meeting call events: the pure part.

Standard library only (the HTTP trigger imports this on every notification, and
must not pay for msgraph). The trigger around it does::

    if (reply := validation_token(req.params)) is not None:
        return HttpResponse(reply.body, status_code=200, mimetype="text/plain", headers=reply.headers)
    batch = parse_call_ended(req.get_body(), booking_code=req.params["appointment"], secret=...,
                             decrypt=..., verify_tokens=...)
    count batch.forged; hand each of batch.call_ended and batch.lifecycle over (no storage work)
    return HttpResponse(status_code=202)   # also when everything was forged: tell an attacker nothing

Rich notifications also carry ``validationTokens``: JWTs that Graph signs, one per app and
tenant in the POST. Graph's docs say they must be validated
(https://learn.microsoft.com/en-us/graph/change-notifications-with-resource-data#validating-the-authenticity-of-notifications);
``verify_tokens`` (``adapters.notification_crypto.ValidationTokenVerifier``) does that, and
when it refuses, every rich item of the POST counts as forged.

The subscription (see ``adapters.graph``) is per appointment: its notificationUrl carries
``?appointment=<bookingCode>`` and its clientState is ``client_state_for(secret, bookingCode)``,
a keyed HMAC. One leaked clientState therefore vouches for one appointment only, and the
secret itself never leaves the app.

Resource: ``communications/onlineMeetings(joinWebUrl='…')/meetingCallEvents`` (beta). Its
notifications carry ``eventType`` ``callStarted`` / ``callEnded`` / ``rosterUpdated``;
earlier documentation spelled them ``Microsoft.Communication.CallEnded``, so both are read.
Microsoft documents that *basic* notifications for this resource carry no event details:
only rich ones (``includeResourceData`` with an encryption certificate) say which event it
was, inside ``encryptedContent``. Pass ``decrypt`` (``adapters.notification_crypto``) to read
those; a ``decrypt`` that raises ``ValueError`` marks the item forged (wrong certificate, bad
signature, tampered data), and with ``decrypt`` given, details outside ``encryptedContent``
are not believed. The decrypted resource names the event in ``eventType`` (older pages) or
``callEventType`` (the callEvent resource type); both are read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

# Graph caps clientState at 128 characters; a base64url SHA-256 is 43.
CLIENT_STATE_MAX = 128
# Graph's tokens are a few hundred characters; refusing longer ones stops the endpoint
# from reflecting arbitrary payloads back.
VALIDATION_TOKEN_MAX = 4096

_CLIENT_STATE_CONTEXT = b"graph-client-state/v1\x00"
_RESOURCE_PREFIX = "communications/onlineMeetings(joinWebUrl='"
_RESOURCE_SUFFIX = "')/meetingCallEvents"
_CALL_ENDED = frozenset({"callended", "microsoft.communication.callended"})

# encryptedContent -> the resource (None: unreadable, ignore); raises ValueError for a forgery.
Decrypt = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]
# the POST's validationTokens -> None, or ValueError naming the failed check.
VerifyTokens = Callable[[list[str]], None]


class MalformedNotification(ValueError):
    """The body is not a Graph notification collection (answer 400)."""


@dataclass(frozen=True)
class ValidationReply:
    """What to answer Graph's subscription validation request with: 200, text/plain."""

    body: str
    status: int = 200
    content_type: str = "text/plain"
    headers: Mapping[str, str] = field(default_factory=lambda: {"X-Content-Type-Options": "nosniff"})


@dataclass(frozen=True)
class CallEnded:
    """The Teams call of one appointment's meeting ended."""

    booking_code: str
    subscription_id: str
    join_web_url: str
    ended_at: datetime | None  # Graph's eventDateTime, aware UTC, when present
    notification_id: str  # resourceData.id: Graph may deliver twice, de-duplicate on it (with resource)
    resource: str = ""


@dataclass(frozen=True)
class ForgedNotification:
    """A notification whose clientState did not match: audit it, never act on it."""

    subscription_id: str
    resource: str
    reason: str


@dataclass(frozen=True)
class LifecycleNotice:
    """``subscriptionRemoved`` / ``reauthorizationRequired`` / ``missed`` for a genuine subscription."""

    booking_code: str
    subscription_id: str
    event: str


@dataclass(frozen=True)
class CallEventBatch:
    call_ended: list[CallEnded]
    forged: list[ForgedNotification]
    lifecycle: list[LifecycleNotice]
    ignored: int  # genuine but not interesting: call started, roster updates, unreadable events


def client_state_for(secret: str, booking_code: str) -> str:
    """The clientState for one appointment's subscription: HMAC-SHA256(secret, code), base64url."""
    if not secret:
        # An empty key would make every clientState computable by anyone who knows a booking code.
        raise ValueError("the Graph client-state secret is empty")
    mac = hmac.new(secret.encode(), _CLIENT_STATE_CONTEXT + booking_code.encode(), hashlib.sha256)
    state = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")
    assert len(state) <= CLIENT_STATE_MAX
    return state


def notification_url_for(base_url: str, booking_code: str) -> str:
    """``base_url`` with ``appointment=<bookingCode>`` added to its query."""
    if not base_url:
        raise ValueError("GRAPH_NOTIFICATION_URL is not set")
    parts = urlsplit(base_url)
    extra = urlencode({"appointment": booking_code})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def validation_token(params: Mapping[str, str]) -> ValidationReply | None:
    """The reply to Graph's validation handshake, or None when this is not one.

    Graph POSTs ``?validationToken=…`` when a subscription is created and expects the
    token back, decoded, as text/plain with 200 within 10 seconds.
    """
    token = params.get("validationToken")
    if token is None:
        return None
    if not token or len(token) > VALIDATION_TOKEN_MAX:
        raise MalformedNotification("validationToken is empty or too long")
    return ValidationReply(body=token)


def meeting_call_events_resource(join_web_url: str) -> str:
    """The subscription resource for a meeting's call events (join URL percent-encoded)."""
    return f"{_RESOURCE_PREFIX}{quote(join_web_url, safe='')}{_RESOURCE_SUFFIX}"


def join_url_of(resource: str) -> str | None:
    """The join URL inside a meetingCallEvents resource path, or None for any other resource."""
    resource = resource.lstrip("/")
    if not (resource.startswith(_RESOURCE_PREFIX) and resource.endswith(_RESOURCE_SUFFIX)):
        return None
    return unquote(resource[len(_RESOURCE_PREFIX) : -len(_RESOURCE_SUFFIX)])


def parse_call_ended(
    body: bytes,
    booking_code: str,
    secret: str,
    *,
    decrypt: Decrypt | None = None,
    verify_tokens: VerifyTokens | None = None,
) -> CallEventBatch:
    """Split a notification POST into call-ended notices, forgeries and the rest.

    Every item's clientState is compared in constant time with ``client_state_for(secret,
    booking_code)`` before anything else in it is believed. ``decrypt`` turns an item's
    ``encryptedContent`` into the resource data (rich notifications); without it such items
    are ignored, and when it refuses one (raises ``ValueError``) the item counts as forged.
    """
    expected = client_state_for(secret, booking_code).encode()
    ended: list[CallEnded] = []
    forged: list[ForgedNotification] = []
    lifecycle: list[LifecycleNotice] = []
    ignored = 0
    items, tokens = _notification_items(body)
    token_problem: str | None = None
    if verify_tokens is not None and any(isinstance(i, dict) and "encryptedContent" in i for i in items):
        try:
            verify_tokens(tokens)
        except ValueError as exc:  # the verifier's message names the failed check, no token content
            token_problem = f"validationTokens: {exc}"
    for item in items:
        if not isinstance(item, dict):
            ignored += 1
            continue
        subscription_id = _str(item.get("subscriptionId"))
        resource = _str(item.get("resource"))
        state = item.get("clientState")
        if not isinstance(state, str) or not hmac.compare_digest(state.encode(), expected):
            reason = "clientState missing" if not isinstance(state, str) else "clientState mismatch"
            forged.append(ForgedNotification(subscription_id, resource[:300], reason))
            continue
        if event := _str(item.get("lifecycleEvent")):
            lifecycle.append(LifecycleNotice(booking_code, subscription_id, event))
            continue
        if token_problem is not None and "encryptedContent" in item:
            forged.append(ForgedNotification(subscription_id, resource[:300], token_problem))
            continue
        try:
            notice = _call_ended(item, booking_code, subscription_id, resource, decrypt)
        except ValueError as exc:  # the decryptor's verdict; its message names the check, no data
            forged.append(ForgedNotification(subscription_id, resource[:300], f"encryptedContent: {exc}"))
            continue
        if notice is None:
            ignored += 1
        else:
            ended.append(notice)
    return CallEventBatch(call_ended=ended, forged=forged, lifecycle=lifecycle, ignored=ignored)


def _notification_items(body: bytes) -> tuple[list[Any], list[str]]:
    """The changeNotificationCollection's ``value`` and ``validationTokens``."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MalformedNotification("the body is not JSON") from exc
    items = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise MalformedNotification("the body has no 'value' list")
    tokens = payload.get("validationTokens")
    tokens = [t for t in tokens if isinstance(t, str)] if isinstance(tokens, list) else []
    return items, tokens


def _call_ended(
    item: Mapping[str, Any],
    booking_code: str,
    subscription_id: str,
    resource: str,
    decrypt: Decrypt | None,
) -> CallEnded | None:
    join_web_url = join_url_of(resource)
    if join_web_url is None or not subscription_id:
        return None
    data = item.get("resourceData")
    data = dict(data) if isinstance(data, Mapping) else {}
    encrypted = item.get("encryptedContent")
    if decrypt is not None:
        # Rich mode: the event is what Graph encrypted, never what sits next to it in clear.
        if not isinstance(encrypted, Mapping):
            return None
        decrypted = decrypt(encrypted)
        if decrypted is None:
            return None
        data = {"id": data.get("id"), **decrypted}
    elif isinstance(encrypted, Mapping):
        return None
    event_type = (_str(data.get("eventType")) or _str(data.get("callEventType"))).lower()
    if event_type not in _CALL_ENDED:
        return None
    return CallEnded(
        booking_code=booking_code,
        subscription_id=subscription_id,
        join_web_url=join_web_url,
        ended_at=_parse_time(_str(data.get("eventDateTime"))),
        notification_id=_str(data.get("id")),
        resource=resource,
    )


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _parse_time(value: str) -> datetime | None:
    """Graph writes up to 7 fractional digits and a Z; Python reads at most 6."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    head, sep, rest = text.partition(".")
    if sep:
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
