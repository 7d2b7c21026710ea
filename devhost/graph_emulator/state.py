"""What the Graph emulator remembers: meetings, mail, calendars, subscriptions, faults.

All of it sits behind one lock because the emulator's event loop runs in a background
thread while tests read the same object from theirs.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

TENANT_ID = "8a5b4f34-5c5e-4b8e-9b7a-0e1f2d3c4b5a"
APP_ID = "3f0c1d2e-7a6b-4c5d-8e9f-0a1b2c3d4e5f"
# The only bearer token the emulator takes (adapters.graph.client.DEV_TOKEN): Graph refuses
# any other with 401 InvalidAuthenticationToken.
DEV_TOKEN = "graph-emulator-dev-token"  # noqa: S105 - a loopback placeholder, not a secret
TENANT_DOMAINS = frozenset({"pankki.example"})


def graph_time(moment: datetime) -> str:
    """Graph's own spelling: seven fractional digits and a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def parse_time(value: str) -> datetime:
    text = value.strip().replace("Z", "+00:00")
    head, sep, rest = text.partition(".")
    if sep:
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits) :]}"
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass
class Fault:
    """The next ``count`` requests whose path matches ``path`` (a regex), and whose body matches
    ``body`` (a regex) when one is given, misbehave."""

    path: str
    count: int = 1
    status: int | None = None  # None: only ``delay``
    retry_after: str | None = None
    delay: float = 0.0  # seconds before answering (or before the fault status)
    method: str | None = None
    code: str | None = None  # Graph error code in the body
    after: bool = False  # do the work first, then answer the fault (a 503 after commit)
    body: str | None = None  # e.g. one appointment's booking code: a shared emulator's other calls pass

    def matches(self, method: str, path: str, body: str = "") -> bool:
        if self.count <= 0 or (self.method and self.method.upper() != method.upper()):
            return False
        if self.body is not None and re.search(self.body, body) is None:
            return False
        return re.search(self.path, path) is not None


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, or None
    status: int = 0


@dataclass
class EmulatorState:
    meetings: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_external_id: dict[tuple[str, str], str] = field(default_factory=dict)
    organizers: dict[str, str] = field(default_factory=dict)  # meeting id -> organizer (lower case)
    admitted: set[str] = field(default_factory=set)
    waiting: set[str] = field(default_factory=set)  # meetings with a participant in the lobby
    mail: list[dict[str, Any]] = field(default_factory=list)
    busy: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    validation_timeout: float = 10.0  # Graph gives the endpoint 10 s to echo the token
    notification_timeout: float = 3.0  # and 3 s to answer a notification with a 2xx
    notification_retries: int = 3  # Graph retries for hours; the emulator a few times, quickly
    notification_retry_delay: float = 0.5
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # every POST to an endpoint
    sent_items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # mailbox -> messages
    unreadable: set[str] = field(default_factory=set)  # mailboxes getSchedule answers with an error
    in_flight: dict[str, int] = field(default_factory=dict)  # mailbox -> concurrent requests
    # The meeting's clock for callEvent eventDateTime (tests follow the devhost's virtual clock).
    event_clock: Any = field(default=None, repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # -- faults and recording ----------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, method: str, path: str, body: str = "") -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path, body):
                    fault.count -= 1
                    return fault
            return None

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def received(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Requests seen so far, optionally those whose path matches ``path`` (a regex)."""
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (path is None or re.search(path, r.path))
            ]

    def reset(self) -> None:
        with self.lock:
            self.meetings.clear()
            self.by_external_id.clear()
            self.organizers.clear()
            self.admitted.clear()
            self.waiting.clear()
            self.mail.clear()
            self.busy.clear()
            self.subscriptions.clear()
            self.notifications.clear()
            self.faults.clear()
            self.requests.clear()
            self.deliveries.clear()
            self.sent_items.clear()
            self.unreadable.clear()
            self.in_flight.clear()

    # -- meetings ------------------------------------------------------------------------------

    def create_or_get(self, origin: str, organizer: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        key = (organizer.lower(), body["externalId"])
        with self.lock:
            if (existing := self.by_external_id.get(key)) is not None:
                return self.meetings[existing], False
            meeting = new_meeting(origin, organizer, body)
            self.meetings[meeting["id"]] = meeting
            self.by_external_id[key] = meeting["id"]
            self.organizers[meeting["id"]] = organizer.lower()
            return meeting, True

    def meeting_of(self, organizer: str, meeting_id: str) -> dict[str, Any] | None:
        with self.lock:
            if self.organizers.get(meeting_id) != organizer.lower():
                return None
            return self.meetings.get(meeting_id)

    def delete_meeting(self, meeting_id: str) -> None:
        with self.lock:
            meeting = self.meetings.pop(meeting_id, None)
            organizer = self.organizers.pop(meeting_id, None)
            if meeting is not None and organizer is not None:
                self.by_external_id.pop((organizer, meeting.get("externalId") or ""), None)
            self.admitted.discard(meeting_id)
            self.waiting.discard(meeting_id)

    def meeting_by_join_url(self, join_url: str) -> dict[str, Any] | None:
        with self.lock:
            return next((m for m in self.meetings.values() if m["joinWebUrl"] == join_url), None)

    # -- mail and calendars ----------------------------------------------------------------------

    def event_now(self) -> datetime:
        return self.event_clock() if self.event_clock is not None else datetime.now(UTC)

    def add_mail(self, sender: str, body: dict[str, Any]) -> None:
        message = body.get("message") or {}
        headers = {h.get("name", ""): h.get("value", "") for h in message.get("internetMessageHeaders") or []}
        with self.lock:
            if body.get("saveToSentItems", True) is not False:  # Graph's default is true
                self.sent_items.setdefault(sender.lower(), []).append(
                    {
                        "id": str(uuid.uuid4()),
                        "internetMessageId": message.get("internetMessageId")
                        or f"<{uuid.uuid4().hex}@{sender.rpartition('@')[2] or 'emulator'}>",
                        "subject": message.get("subject"),
                    }
                )
            self.mail.append(
                {
                    "sender": sender,
                    "message": message,
                    "saveToSentItems": body.get("saveToSentItems"),
                    "idempotencyKey": headers.get("X-Idempotency-Key"),
                    "receivedAt": graph_time(datetime.now(UTC)),
                }
            )

    def duplicate_mail(self) -> dict[str, int]:
        """Idempotency keys sent more than once, with their counts."""
        with self.lock:
            counts: dict[str, int] = {}
            for mail in self.mail:
                if key := mail.get("idempotencyKey"):
                    counts[key] = counts.get(key, 0) + 1
            return {key: n for key, n in counts.items() if n > 1}

    def set_busy(self, user: str, items: list[dict[str, str]]) -> None:
        with self.lock:
            self.busy[user.lower()] = list(items)


def new_meeting(origin: str, organizer: str, body: dict[str, Any]) -> dict[str, Any]:
    """An onlineMeeting as createOrGet returns it, with the tenant's defaults for the rest."""
    thread = f"19:meeting_{secrets.token_urlsafe(24)}@thread.v2"
    raw_id = f"1*{organizer}*0**{thread}"
    meeting_id = base64.urlsafe_b64encode(raw_id.encode()).decode().rstrip("=")
    now = datetime.now(UTC)
    # Graph's defaults: start now, end an hour after the start.
    start = body.get("startDateTime") or graph_time(now)
    end = body.get("endDateTime") or graph_time(parse_time(start) + timedelta(hours=1))
    # Percent-encoded context like Teams' own links, so the resource path in a subscription
    # is URL-encoded twice exactly as it is against Graph.
    context = "%7b%22Tid%22%3a%22" + TENANT_ID + "%22%2c%22Oid%22%3a%22" + organizer + "%22%7d"
    return {
        "id": meeting_id,
        "creationDateTime": graph_time(now),
        "startDateTime": graph_time(parse_time(start)),
        "endDateTime": graph_time(parse_time(end)),
        "joinWebUrl": f"{origin}/_emulator/join/{meeting_id}?context={context}",
        "subject": body.get("subject"),
        "externalId": body.get("externalId"),
        "isBroadcast": False,
        "isEntryExitAnnounced": True,
        "allowedPresenters": "everyone",
        "allowAttendeeToEnableMic": True,
        "allowAttendeeToEnableCamera": True,
        "allowMeetingChat": "enabled",
        "allowTeamworkReactions": True,
        "recordAutomatically": False,
        "meetingType": None,
        "videoTeleconferenceId": None,
        "broadcastSettings": None,
        "audioConferencing": None,
        "lobbyBypassSettings": {"scope": "organization", "isDialInBypassEnabled": False},
        "joinMeetingIdSettings": {
            "isPasscodeRequired": True,
            "joinMeetingId": str(uuid.uuid4().int)[:12],
            "passcode": secrets.token_urlsafe(6)[:6],
        },
        "chatInfo": {"threadId": thread, "messageId": "0", "replyChainMessageId": None},
        "joinInformation": {"content": "data:text/html,%3cdiv%3eJoin%3c%2fdiv%3e", "contentType": "html"},
        "participants": {
            "organizer": {
                "upn": organizer,
                "role": "presenter",
                # tenantId belongs to communicationsUserIdentity, which Graph names with @odata.type.
                "identity": {
                    "user": {
                        "@odata.type": "#microsoft.graph.communicationsUserIdentity",
                        "id": organizer,
                        "displayName": None,
                        "tenantId": TENANT_ID,
                    }
                },
            },
            "attendees": [],
        },
    }
