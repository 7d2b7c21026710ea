"""The lifecycle orchestrator replayed on hand-built Durable histories, with the SDK's real replay code.

A small driver plays the host: it runs ``Orchestrator.handle`` on the history, turns the new
actions into TaskScheduled / TimerCreated events (sequence numbers in yield order, as the host
does), and lets the test complete activities, fire timers and raise events between episodes.
An episode that continues as new ends the execution; ``next_execution`` starts the next one on
a fresh history with the new input, as the host does (``settle`` does so by itself).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType as T

from appointments.call_events import CALL_EVENTS_UNAVAILABLE
from orchestrators.appointment_lifecycle import (
    LIFECYCLE_ORCHESTRATOR,
    OUTBOX_POLL,
    RETRY,
    appointment_lifecycle,
)

HANDLE = appointment_lifecycle.build().get_user_function()
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
START = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
INPUT = {
    "bookingCode": "2KMEVE6X",
    "channel": "online",
    "expertId": "expert-1",
    "start": "2026-12-07T10:30:00Z",
    "end": "2026-12-07T11:15:00Z",
    "revision": 0,
    "policy": {"joinWindowMinutes": 15, "endGraceMinutes": 30},
}
RECORD = {"start": INPUT["start"], "end": INPUT["end"], "revision": 0, "phase": "booked", "pending": []}
# What the local host sends (devhost/durable/engine.py): the V3 schema, with long-timer settings.
SCHEMA = {
    "upperSchemaVersion": 1,
    "upperSchemaVersionNew": 2,
    "maximumShortTimerDuration": "6.00:00:00",
    "longRunningTimerIntervalDuration": "3.00:00:00",
}


def ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def leaves(actions: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for action in actions:
        if isinstance(action, list):
            out += leaves(action)
        elif action.get("actionType") in (11, 12):
            out += leaves(action["compoundActions"])
        else:
            out.append(action)
    return out


@dataclass
class Replay:
    """One orchestration instance, played by hand."""

    now: datetime = T0
    history: list[dict[str, Any]] = field(default_factory=list)
    seen: int = 0
    seq: int = 0
    pending: dict[int, dict[str, Any]] = field(default_factory=dict)  # seq -> action (activities, timers)
    result: dict[str, Any] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=lambda: dict(INPUT))
    continued: dict[str, Any] | None = None  # the input the last episode continued as new with
    executions: list[list[dict[str, Any]]] = field(default_factory=list)  # finished histories
    scheduled: list[dict[str, Any]] = field(default_factory=list)  # every activity action, all executions

    def event(self, kind: T, **fields: Any) -> dict[str, Any]:
        return {
            "EventType": kind.value,
            "EventId": fields.pop("EventId", -1),
            "Timestamp": ts(self.now),
            "IsPlayed": False,
            **fields,
        }

    def episode(self, *new_events: dict[str, Any]) -> list[dict[str, Any]]:
        """Run one episode with ``new_events``; returns the new actions, without the waits for
        external events (the orchestrator opens them at every yield; the host records nothing
        for them)."""
        assert self.continued is None, "the execution continued as new: next_execution() first"
        for e in self.history:
            e["IsPlayed"] = True
        self.history += [self.event(T.ORCHESTRATOR_STARTED), *new_events]
        context = {
            "history": self.history,
            "instanceId": "appt-2KMEVE6X",
            "isReplaying": False,
            "parentInstanceId": None,
            "input": json.dumps(self.input),
            **SCHEMA,
        }
        self.result = json.loads(HANDLE(json.dumps(context)))
        flat = leaves(self.result["actions"])
        new, self.seen = flat[self.seen :], len(flat)
        for action in new:
            kind = action["actionType"]
            if kind in (0, 1):
                self.history.append(
                    self.event(T.TASK_SCHEDULED, EventId=self.seq, Name=action["functionName"])
                )
                self.pending[self.seq] = action
                self.scheduled.append(action)
                self.seq += 1
            elif kind == 5:
                self.history.append(self.event(T.TIMER_CREATED, EventId=self.seq, FireAt=action["fireAt"]))
                self.pending[self.seq] = action
                self.seq += 1
            elif kind == 4:
                self.seq += 1
        self.history.append(self.event(T.ORCHESTRATOR_COMPLETED))
        can = [a for a in new if a["actionType"] == 4]
        if can:
            assert self.result["isDone"]
            self.continued = json.loads(can[0]["input"])
        return [a for a in new if a["actionType"] != 6]

    def start(self) -> list[dict[str, Any]]:
        return self.episode(
            self.event(
                T.EXECUTION_STARTED, Name=LIFECYCLE_ORCHESTRATOR, Input=json.dumps(self.input), Version=None
            )
        )

    def next_execution(self) -> list[dict[str, Any]]:
        """Start the execution the last one continued as new into (fresh history, its input)."""
        assert self.continued is not None
        self.executions.append(self.history)
        self.input, self.continued = self.continued, None
        self.history, self.seen, self.seq, self.pending = [], 0, 0, {}
        return self.start()

    def activities(self) -> dict[int, dict[str, Any]]:
        return {s: a for s, a in self.pending.items() if a["actionType"] in (0, 1)}

    def complete_all(self, results: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Complete every pending activity (result by function name) in one episode. An
        ``apply_phase`` that was asked to look answers with ``load_schedule``'s result."""
        results = {
            "load_schedule": RECORD,
            "create_meeting": {"ok": True, "meetingId": "m1"},
            **(results or {}),
        }

        def result(action: dict[str, Any]) -> Any:
            name = action["functionName"]
            if name == "apply_phase" and name not in results:
                look = json.loads(action["input"]).get("look")
                return {"failed": [], **({"schedule": results["load_schedule"]} if look else {})}
            return results.get(name)

        events = [
            self.event(T.TASK_COMPLETED, TaskScheduledId=s, Result=json.dumps(result(a)))
            for s, a in self.activities().items()
        ]
        for s in list(self.activities()):
            del self.pending[s]
        return self.episode(*events)

    def settle(self, results: dict[str, Any] | None = None) -> None:
        """Complete activities (and start a continued execution) until the orchestration only
        waits for timers or events."""
        while self.activities() or self.continued is not None:
            if self.continued is not None:
                self.next_execution()
            else:
                self.complete_all(results)

    def timer(self) -> tuple[int, datetime]:
        [(seq, action)] = [(s, a) for s, a in self.pending.items() if a["actionType"] == 5]
        return seq, datetime.fromisoformat(action["fireAt"].replace("Z", "+00:00"))

    def fire_timer(self) -> list[dict[str, Any]]:
        seq, fire_at = self.timer()
        self.now = max(self.now, fire_at)
        del self.pending[seq]
        return self.episode(self.event(T.TIMER_FIRED, TimerId=seq, FireAt=ts(fire_at)))

    def raise_event(self, name: str, data: Any = None) -> list[dict[str, Any]]:
        # An event wins over the pending timer; the orchestrator cancels that timer.
        self.pending = {s: a for s, a in self.pending.items() if a["actionType"] != 5}
        return self.episode(self.event(T.EVENT_RAISED, Name=name, Input=json.dumps(data or {})))

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.result["customStatus"])

    def names(self, actions: list[dict[str, Any]]) -> list[str]:
        return [a.get("functionName") or str(a["actionType"]) for a in actions]


def parts(action: dict[str, Any]) -> dict[str, Any]:
    """An ``apply_phase``'s parts: the phase recorded, the entries acknowledged, the
    notifications' (kind, recipient) and whether it looks."""
    assert action["functionName"] == "apply_phase", action["functionName"]
    payload = json.loads(action["input"])
    return {
        "phase": (payload.get("record") or {}).get("phase"),
        "ack": payload.get("ack", []),
        "told": [(n["kind"], n["recipient"]) for n in payload.get("notifications", [])],
        "look": bool(payload.get("look")),
    }


def in_the_lobby() -> Replay:
    """An online appointment whose customer waits in the lobby (join window open, CustomerJoined)."""
    r = Replay(now=START - timedelta(minutes=15))
    r.start()
    r.settle()
    r.fire_timer()
    r.settle()
    r.raise_event("CustomerJoined")
    r.settle()
    assert r.status["phase"] == "lobby"
    return r


def test_first_episode_records_the_phase_confirms_the_booking_and_looks_at_the_record_at_once() -> None:
    """Booked: the first look at the record, the phase and both confirmations in one episode (one
    wait); status carries no personal data."""
    r = Replay()
    first = r.start()
    assert r.names(first) == ["apply_phase"]  # one activity: record, confirmations and the look
    assert parts(first[0]) == {
        "phase": "booked",
        "ack": [],
        "told": [("booking_confirmation", "customer"), ("new_booking", "expert")],
        "look": True,
    }
    assert r.status["phase"] == "booked" and r.status["joinWindowOpensAt"] == "2026-12-07T10:15:00Z"
    notify = json.loads(first[0]["input"])["notifications"][0]
    assert set(notify) >= {"bookingCode", "key"} and "phone" not in first[0]["input"]
    assert r.names([a for a in r.complete_all() if a["actionType"] in (0, 1)]) == []
    assert [a["actionType"] for a in r.pending.values()] == [5]  # now it waits for the next deadline


def test_a_long_wait_is_cut_into_legs_by_the_sdk_and_reminders_come_first() -> None:
    """Booked 15 days ahead: the SDK's LongTimerTask waits in 3-day legs, then the day-before reminder."""
    booked_at = START - timedelta(days=15)
    r = Replay(now=booked_at)
    r.start()
    r.settle()
    legs = []
    while (fire_at := r.timer()[1]) < START - timedelta(hours=24):
        legs.append(fire_at)
        r.fire_timer()
        assert not r.activities()  # a leg only re-arms
    assert legs == [booked_at + timedelta(days=3 * n) for n in (1, 2, 3)]
    new = r.fire_timer()
    assert r.names(new) == ["apply_phase"]  # it checks the record before it sends the reminder
    payload = json.loads(new[0]["input"])
    assert payload["guard"] == {"phase": "booked", "revision": 0, "outbox": False}
    [reminder] = payload["notifications"]
    assert reminder["kind"] == "reminder" and reminder["reminder"] == "day_before"


def test_the_join_window_creates_the_meeting_before_recording_the_phase() -> None:
    """join_open: the meeting exists before the record says the window is open; then both are told."""
    r = Replay(now=START - timedelta(hours=2))
    r.start()
    r.settle()
    r.fire_timer()  # hour-before reminder
    r.settle()
    new = r.fire_timer()  # the join window: the meeting first, checking the record before
    assert r.names(new) == ["create_meeting"]
    assert json.loads(new[0]["input"])["guard"] == {"phase": "booked", "revision": 0, "outbox": False}
    new = r.complete_all()  # the phase and its notifications together, once the meeting exists
    assert r.names(new) == ["apply_phase"]
    assert parts(new[0])["phase"] == "join_open" and r.status["phase"] == "join_open"
    assert sorted(recipient for _, recipient in parts(new[0])["told"]) == ["customer", "expert"]


def test_events_drive_the_meeting_to_the_end() -> None:
    """CustomerJoined → lobby, CodeIssued → code_issued, CodeVerified → verified, MeetingEnded → done."""
    r = in_the_lobby()
    r.raise_event("CodeIssued", {"expiresAt": "2026-12-07T10:25:00Z"})
    r.settle()
    assert r.status["phase"] == "code_issued" and r.status["codeExpiresAt"] == "2026-12-07T10:25:00Z"
    r.raise_event("CodeVerified")
    r.settle()
    assert r.status["phase"] == "verified"
    r.raise_event("MeetingEnded", {"source": "expert"})
    r.settle()
    assert r.result["isDone"] and r.result["output"] == {"phase": "ended"}


def test_an_illegal_event_is_ignored_not_fatal() -> None:
    """CodeVerified while booked (a race the HTTP gate missed) changes nothing; the phase is re-recorded."""
    r = Replay()
    r.start()
    r.settle()
    new = r.raise_event("CodeVerified")
    assert r.names([a for a in new if a["actionType"] in (0, 1)]) == ["apply_phase"]
    assert parts(new[0]) == {"phase": "booked", "ack": [], "told": [], "look": False}
    assert r.status["phase"] == "booked" and not r.result["isDone"]


def test_reschedule_continues_as_new_with_the_new_times() -> None:
    """Rescheduled: both told, then continue-as-new with the new input (short history)."""
    r = Replay()
    r.start()
    r.settle()
    r.raise_event(
        "Rescheduled", {"start": "2026-12-09T10:00:00Z", "end": "2026-12-09T10:45:00Z", "revision": 1}
    )
    r.complete_all()  # notifications
    can = [a for a in leaves(r.result["actions"]) if a["actionType"] == 4]
    assert r.result["isDone"] and can
    new_input = json.loads(can[0]["input"])
    assert new_input["start"] == "2026-12-09T10:00:00Z" and new_input["revision"] == 1


def test_an_applied_event_from_the_outbox_is_acknowledged() -> None:
    """A raised event naming its outbox entry is applied and acknowledged by the activity that
    records its phase (so no poll applies it again); one that changes no phase is only acknowledged."""
    r = in_the_lobby()
    new = r.raise_event("CodeIssued", {"expiresAt": "2026-12-07T10:25:00Z", "outboxId": "e1"})
    assert r.names(new) == ["apply_phase"]
    assert parts(new[0]) == {"phase": "code_issued", "ack": ["e1"], "told": [], "look": False}
    r.settle()
    assert r.status["phase"] == "code_issued"
    new = r.raise_event("CodeIssued", {"expiresAt": "2026-12-07T10:28:00Z", "outboxId": "e2"})  # a new code
    assert r.names(new) == ["apply_phase"]
    assert json.loads(new[0]["input"]) == {"bookingCode": "2KMEVE6X", "ack": ["e2"]}
    r.settle()
    assert r.status["codeExpiresAt"] == "2026-12-07T10:28:00Z"


def test_a_committed_event_that_was_never_raised_is_applied_at_the_next_poll() -> None:
    """The trigger died after its commit: the poll reads the outbox, applies the entry and acknowledges it."""
    r = in_the_lobby()
    _seq, fire_at = r.timer()
    assert fire_at - r.now <= OUTBOX_POLL
    new = r.fire_timer()
    assert r.names(new) == ["load_schedule"]
    pending = [{"id": "e7", "event": "CodeIssued", "payload": {"expiresAt": "2026-12-07T10:25:00Z"}}]
    new = r.complete_all({"load_schedule": {**RECORD, "phase": "lobby", "pending": pending}})
    assert r.names(new) == ["apply_phase"] and parts(new[0])["ack"] == ["e7"]
    r.settle()
    assert r.status["phase"] == "code_issued" and r.status["codeExpiresAt"] == "2026-12-07T10:25:00Z"


def test_an_event_raised_before_its_predecessor_waits_in_the_outbox_for_order() -> None:
    """CodeVerified raised while the lost CodeIssued waits in the outbox: the poll applies both in order."""
    r = in_the_lobby()
    new = r.raise_event("CodeVerified", {"outboxId": "e9"})
    assert r.names([a for a in new if a["actionType"] in (0, 1)]) == ["apply_phase"]
    assert parts(new[0])["ack"] == []  # not acknowledged
    r.settle()
    assert r.status["phase"] == "lobby"
    r.fire_timer()
    pending = [
        {"id": "e8", "event": "CodeIssued", "payload": {"expiresAt": "2026-12-07T10:25:00Z"}},
        {"id": "e9", "event": "CodeVerified", "payload": {}},
    ]
    r.complete_all({"load_schedule": {**RECORD, "phase": "lobby", "pending": pending}})
    r.settle()
    assert r.status["phase"] == "verified"


def test_event_data_that_arrives_as_json_text_is_read_as_the_object() -> None:
    """The host parses a raised body once; the SDK client posted json.dumps(data): a JSON string."""
    r = in_the_lobby()
    r.pending = {s: a for s, a in r.pending.items() if a["actionType"] != 5}
    text = json.dumps({"expiresAt": "2026-12-07T10:25:00Z", "outboxId": "e3"})
    new = r.episode(r.event(T.EVENT_RAISED, Name="CodeIssued", Input=json.dumps(text)))
    assert r.names(new) == ["apply_phase"] and parts(new[0])["ack"] == ["e3"]
    r.settle()
    assert r.status["phase"] == "code_issued"


def test_graph_down_past_every_retry_leaves_the_appointment_open_with_a_reason() -> None:
    """create_meeting failing all its attempts does not fail the orchestration: join_open with attention."""
    r = Replay(now=START - timedelta(hours=2))
    r.start()
    r.settle()
    r.fire_timer()  # hour-before reminder
    r.settle()
    assert r.names(r.fire_timer()) == ["create_meeting"]  # the join window
    [seq] = list(r.activities())
    exhaust(r, seq, "create_meeting")
    assert not r.result.get("isDone"), r.result
    r.settle()
    assert r.status["phase"] == "join_open"
    assert r.status.get("attention") == "meeting_creation_failed"


def test_a_meeting_whose_call_events_failed_is_subscribed_on_its_own_not_created_again() -> None:
    """create_meeting made the meeting but Graph failed the subscription transiently: the lifecycle
    subscribes with its own activity (create_meeting is not run again) and then opens the window,
    with no attention and nothing told but join_open."""
    r = Replay(now=START - timedelta(minutes=15))
    r.start()
    r.settle()
    assert r.names(r.fire_timer()) == ["create_meeting"]
    answer = {"ok": True, "meetingId": "m1", "created": True, "subscribe": True}
    new = r.complete_all({"create_meeting": answer})
    assert r.names(new) == ["subscribe_call_events"]
    assert json.loads(new[0]["input"]) == {"bookingCode": INPUT["bookingCode"]}
    [applied] = r.complete_all({"subscribe_call_events": {"ok": True}})
    assert applied["functionName"] == "apply_phase"
    record = json.loads(applied["input"])["record"]
    assert record["phase"] == "join_open" and record.get("attention") is None
    assert sorted(parts(applied)["told"]) == [("join_open", "customer"), ("join_open", "expert")]
    assert len(sent(r, "create_meeting")) == 1


def test_call_events_failing_past_every_retry_leave_a_working_meeting_with_a_reason() -> None:
    """The subscription fails on every attempt: the meeting works (join_open, the customer and
    expert told it opened), the attention says call_events_unavailable, and no meeting_failed."""
    r = Replay(now=START - timedelta(minutes=15))
    r.start()
    r.settle()
    r.fire_timer()
    r.complete_all({"create_meeting": {"ok": True, "meetingId": "m1", "created": True, "subscribe": True}})
    [seq] = list(r.activities())
    exhaust(r, seq, "subscribe_call_events")
    r.settle()
    told = [n["kind"] for p in sent(r, "apply_phase") for n in p.get("notifications", [])]
    # Booking and join window, each to both; no meeting_failed.
    assert sorted(told) == ["booking_confirmation", "join_open", "join_open", "new_booking"]
    records = [p["record"] for p in sent(r, "apply_phase") if "record" in p]
    assert records[-1]["attention"] == CALL_EVENTS_UNAVAILABLE and records[-1]["phase"] == "join_open"
    assert len(sent(r, "create_meeting")) == 1


def exhaust(r: Replay, seq: int, name: str) -> None:
    """Fail activity ``seq`` on every attempt, as the host runs CallActivityWithRetry: each failure
    is followed by the retry interval's timer and, while attempts remain, the task scheduled again
    (the SDK waits for the last timer too). The orchestration goes on until the last failure."""
    del r.pending[seq]
    for attempt in range(1, RETRY.max_number_of_attempts + 1):
        events = [r.event(T.TASK_FAILED, TaskScheduledId=seq, Reason="ODataError: 503", Details="down")]
        timer = r.seq
        events += [
            r.event(T.TIMER_CREATED, EventId=timer, FireAt=ts(r.now)),
            r.event(T.TIMER_FIRED, TimerId=timer, FireAt=ts(r.now)),
        ]
        r.seq += 1
        if attempt < RETRY.max_number_of_attempts:
            seq = r.seq
            events.append(r.event(T.TASK_SCHEDULED, EventId=seq, Name=name))
            r.seq += 1
        r.episode(*events)
        if attempt < RETRY.max_number_of_attempts:
            assert not r.result.get("isDone"), r.result


def at_the_join_window() -> tuple[Replay, int, dict[str, Any]]:
    """The join window has opened and the meeting exists: join_open's ``apply_phase`` runs (its
    sequence number and payload)."""
    r = Replay(now=START - timedelta(minutes=15))
    r.start()
    r.settle()
    assert r.names(r.fire_timer()) == ["create_meeting"]
    r.complete_all()
    [(seq, action)] = r.activities().items()
    assert sorted(parts(action)["told"]) == [("join_open", "customer"), ("join_open", "expert")]
    return r, seq, json.loads(action["input"])


def test_a_notification_whose_mail_failed_is_retried_alone_and_logged_when_it_fails_for_good(
    caplog: Any,
) -> None:
    """apply_phase recorded the phase but the expert's mail failed: after the retry interval that
    notification alone is sent again, with Durable's retries; failing past them it is logged and
    the lifecycle goes on (the phase was recorded, the customer told)."""
    r, seq, payload = at_the_join_window()
    expert = next(n for n in payload["notifications"] if n["recipient"] == "expert")
    del r.pending[seq]
    r.episode(r.event(T.TASK_COMPLETED, TaskScheduledId=seq, Result=json.dumps({"failed": [expert["key"]]})))
    assert not r.activities()
    _seq, fire_at = r.timer()  # the pause before the retry, not the next deadline
    assert fire_at == r.now + timedelta(milliseconds=RETRY.first_retry_interval_in_milliseconds)
    new = r.fire_timer()
    assert r.names(new) == ["send_notification"] and json.loads(new[0]["input"]) == expert
    [retry] = list(r.activities())
    with caplog.at_level("ERROR"):
        exhaust(r, retry, "send_notification")
    assert "notification(s) failed" in caplog.text
    assert r.continued is not None and r.continued["phase"] == "join_open"  # on to the meeting
    assert r.names(r.next_execution()) == ["load_schedule"]


def test_a_record_that_fails_for_good_fails_the_orchestration() -> None:
    """Table Storage down past every retry of apply_phase: as before, the orchestration fails (ops
    rewind it)."""
    r, seq, _payload = at_the_join_window()
    with pytest.raises(Exception, match="ODataError: 503"):
        exhaust(r, seq, "apply_phase")


# --- continue-as-new when the join window opens ------------------------------------------------


def sent(r: Replay, name: str) -> list[dict[str, Any]]:
    """The inputs of every ``name`` activity any execution of ``r`` scheduled, in order."""
    return [json.loads(a["input"]) for a in r.scheduled if a["functionName"] == name]


def applied(r: Replay) -> list[dict[str, Any]]:
    """The parts of every ``apply_phase`` any execution of ``r`` scheduled, in order."""
    return [parts(a) for a in r.scheduled if a["functionName"] == "apply_phase"]


def notified(r: Replay) -> list[dict[str, Any]]:
    """Every notification any execution of ``r`` asked for, in order."""
    return [n for p in sent(r, "apply_phase") for n in p.get("notifications", [])]


def opening_the_window(create_meeting: dict[str, Any] | None = None) -> Replay:
    """Booked 15 minutes before the start: the window opens and the meeting is created (with
    ``create_meeting``'s answer); join_open's record and notifications are running."""
    r = Replay(now=START - timedelta(minutes=15))
    r.start()
    r.settle()
    assert r.names(r.fire_timer()) == ["create_meeting"]
    results = {"create_meeting": create_meeting} if create_meeting else None
    assert r.names(r.complete_all(results)) == ["apply_phase"]
    return r


def test_the_join_window_continues_as_new_with_its_phase_in_the_input() -> None:
    """Once the meeting exists, join_open is recorded and both are told, the execution continues
    as new; the input carries the phase and its state (nothing personal), and the new execution
    resumes it: its first episode only looks at the record and the outbox."""
    r = opening_the_window()
    opened = "2026-12-07T10:15:00Z"
    assert r.complete_all() == [next(a for a in leaves(r.result["actions"]) if a["actionType"] == 4)]
    assert r.result["isDone"] and r.continued is not None
    can = r.continued
    assert can["phase"] == "join_open" and can["since"] == opened
    assert {k: can[k] for k in INPUT} == INPUT  # the same identifiers, times, revision and policy
    assert set(can) - set(INPUT) <= {
        "phase",
        "since",
        "remindersDone",
        "attention",
        "codeExpiresAt",
        "execution",
    }
    assert can["execution"] == 1  # part of the new execution's notification keys
    first = r.next_execution()
    assert r.names(first) == ["load_schedule"]  # no record, no notification, no meeting again
    assert r.status["phase"] == "join_open" and r.status["since"] == opened
    r.complete_all({"load_schedule": {**RECORD, "phase": "join_open"}})
    assert [a["actionType"] for a in r.pending.values()] == [5]  # the next outbox poll
    assert not r.result.get("isDone")


def test_a_meeting_after_the_restart_is_created_once_and_nobody_is_told_twice() -> None:
    """The whole meeting, join window to end, over both executions: one create_meeting, one
    record of each phase, each notification once (with its own key)."""
    r = opening_the_window()
    r.settle({"load_schedule": {**RECORD, "phase": "join_open"}})
    assert len(r.executions) == 1 and r.status["phase"] == "join_open"
    r.raise_event("CustomerJoined", {"outboxId": "e1"})
    r.settle()
    r.raise_event("CodeIssued", {"expiresAt": "2026-12-07T10:25:00Z", "outboxId": "e2"})
    r.settle()
    r.raise_event("CodeVerified", {"outboxId": "e3"})
    r.settle()
    r.raise_event("MeetingEnded", {"source": "expert", "outboxId": "e4"})
    r.settle()
    assert r.result["isDone"] and r.result["output"] == {"phase": "ended"}
    assert len(sent(r, "create_meeting")) == 1
    phases = [p["phase"] for p in applied(r) if p["phase"]]
    assert phases == ["booked", "join_open", "lobby", "code_issued", "verified", "ended"]
    told = [(n["kind"], n["recipient"]) for n in notified(r)]
    assert len(told) == len(set(told))
    assert told.count(("join_open", "customer")) == told.count(("join_open", "expert")) == 1
    # Unique keys, although this driver's clock never moves: ``new_guid`` alone would repeat the
    # first execution's GUIDs in the second, and the notifier would take those mails for sent.
    keys = [n["key"] for n in notified(r)]
    assert len(keys) == len(set(keys))
    # One activity per decision: create_meeting and the looks aside, nothing else was scheduled.
    assert {a["functionName"] for a in r.scheduled} == {"apply_phase", "create_meeting", "load_schedule"}
    # The meeting's episodes replay only the meeting's events.
    meeting = [e.get("Name") for e in r.history if e["EventType"] == T.TASK_SCHEDULED.value]
    assert "create_meeting" not in meeting and meeting[0] == "load_schedule"


@pytest.mark.parametrize(
    ("answer", "attention", "expert_told"),
    [
        ({"ok": False, "reason": "meeting_creation_failed"}, "meeting_creation_failed", ["meeting_failed"]),
        ({"ok": True, "meetingId": "m1", "attention": "call_events_refused"}, "call_events_refused", []),
    ],
)
def test_what_creating_the_meeting_reported_is_decided_before_the_restart(
    answer: dict[str, Any], attention: str, expert_told: list[str]
) -> None:
    """A MeetingFailed / MeetingAttention that create_meeting's answer raised is held by no store:
    the execution decides it (records the attention, tells the expert) before it continues as new,
    and the input carries the attention."""
    r = opening_the_window(answer)
    new = r.complete_all()
    assert r.continued is None and not r.result.get("isDone")
    assert r.names(new) == ["apply_phase"]
    assert json.loads(new[0]["input"])["record"]["attention"] == attention
    assert [(kind, who) for kind, who in parts(new[0])["told"]] == [(k, "expert") for k in expert_told]
    r.complete_all()
    assert r.continued is not None and r.continued["attention"] == attention
    assert r.names(r.next_execution()) == ["load_schedule"]
    assert r.status["attention"] == attention and r.status["phase"] == "join_open"


@pytest.mark.parametrize("when", ["with the meeting", "with the notifications"])
def test_an_event_raised_while_the_execution_restarts_is_applied_from_the_outbox(when: str) -> None:
    """CustomerJoined arrives in the episode that continues as new (or the one before): the old
    execution leaves without deciding it, and the restart discards it; its outbox entry is still
    pending, so the new execution's first look applies it (and acknowledges it). Raised again to
    the new execution, it is moot: nobody is told twice."""
    r = Replay(now=START - timedelta(minutes=15))
    r.start()
    r.settle()
    r.fire_timer()  # -> create_meeting
    joined = r.event(T.EVENT_RAISED, Name="CustomerJoined", Input=json.dumps({"outboxId": "e1"}))
    if when == "with the meeting":
        events = [
            r.event(T.TASK_COMPLETED, TaskScheduledId=s, Result=json.dumps({"ok": True}))
            for s in r.activities()
        ]
        r.pending = {}
        r.episode(*events, joined)
    else:
        r.complete_all()  # create_meeting -> apply_phase (the phase, both notifications)
    events = [
        r.event(T.TASK_COMPLETED, TaskScheduledId=s, Result=json.dumps({"failed": []}))
        for s in r.activities()
    ]
    r.pending = {}
    r.episode(*events, *([joined] if when == "with the notifications" else []))
    assert r.continued is not None and r.continued["phase"] == "join_open"  # left undecided
    assert r.names(r.next_execution()) == ["load_schedule"]
    pending = [{"id": "e1", "event": "CustomerJoined", "payload": {}}]
    new = r.complete_all({"load_schedule": {**RECORD, "phase": "lobby", "pending": pending}})
    assert r.names(new) == ["apply_phase"]
    assert parts(new[0]) == {
        "phase": "lobby",
        "ack": ["e1"],
        "told": [("customer_in_lobby", "expert")],
        "look": False,
    }
    r.settle()
    assert r.status["phase"] == "lobby"
    new = r.raise_event("CustomerJoined", {"outboxId": "e1"})  # the same event, delivered as well
    assert r.names(new) == ["apply_phase"]  # refused: the phase recorded again, nothing sent
    assert parts(new[0])["told"] == []
    r.settle()
    assert [n["kind"] for n in notified(r)].count("customer_in_lobby") == 1


def test_a_reschedule_in_the_join_window_after_the_restart_starts_afresh_with_the_new_times() -> None:
    """Rescheduled in the continued execution: the meeting moves, both are told, and it continues
    as new in booked with the new times and revision; that execution records booked, confirms
    nothing, and waits for the new times' reminders (none carried over)."""
    r = opening_the_window()
    r.settle({"load_schedule": {**RECORD, "phase": "join_open"}})
    moved = {"start": "2026-12-09T10:00:00Z", "end": "2026-12-09T10:45:00Z", "revision": 1}
    new = r.raise_event("Rescheduled", moved)
    assert r.names(new) == ["update_meeting"]
    new = r.complete_all()
    assert r.names(new) == ["apply_phase"]
    assert sorted(parts(new[0])["told"]) == [("rescheduled", "customer"), ("rescheduled", "expert")]
    r.complete_all()
    assert r.result["isDone"] and r.continued is not None
    can = r.continued
    assert (can["phase"], can["start"], can["end"], can["revision"]) == ("booked", *moved.values())
    assert "remindersDone" not in can and "attention" not in can
    first = r.next_execution()
    assert r.names(first) == ["apply_phase"]
    assert parts(first[0]) == {"phase": "booked", "ack": [], "told": [], "look": True}  # no confirmation
    r.complete_all({"load_schedule": {**RECORD, **moved, "phase": "booked"}})
    assert r.timer()[1] == datetime(2026, 12, 8, 10, 0, tzinfo=UTC)  # the new day-before reminder
    assert len(sent(r, "create_meeting")) == 1


# --- events raised while the orchestrator is not listening --------------------------------------
# The SDK keeps an event raised before any wait of its name is open as a deferred completion
# (``TaskOrchestrationExecutor.set_task_value``: ``deferred_tasks[name]``) and runs it each time a
# wait of that name is opened afterwards, without removing it (``_add_to_open_tasks``). Every later
# wait of that name would get the same event again, at once: the orchestration loops forever
# (azure-functions-durable-python issue #507). The lifecycle listens for every event name
# whenever it waits for anything, so no event is ever deferred.


def bounded_settle(r: Replay, rounds: int = 12) -> None:
    """``settle``, but an orchestration that keeps scheduling work fails the test instead of hanging it."""
    for _ in range(rounds):
        if not r.activities() and r.continued is None:
            return
        if r.continued is not None:
            r.next_execution()
        else:
            r.complete_all()
    raise AssertionError(
        f"still scheduling work after {rounds} rounds: {r.names(list(r.activities().values()))}"
    )


def test_the_meeting_raised_while_the_new_execution_starts_is_applied_once_each_and_ends() -> None:
    """The load test's case: the customer joins, gets a code, verifies and the expert ends while the
    execution that continued as new at the join window still runs its first look at the record.
    Each event is applied once, in order, and the appointment ends."""
    r = opening_the_window()
    r.complete_all()
    assert r.names(r.next_execution()) == ["load_schedule"]
    for name, data in (
        ("CustomerJoined", {"outboxId": "e1"}),
        ("CodeIssued", {"expiresAt": "2026-12-07T10:25:00Z", "outboxId": "e2"}),
        ("CodeVerified", {"outboxId": "e3"}),
        ("MeetingEnded", {"source": "expert", "outboxId": "e4"}),
    ):
        r.episode(r.event(T.EVENT_RAISED, Name=name, Input=json.dumps(data)))
    r.complete_all({"load_schedule": {**RECORD, "phase": "join_open"}})
    bounded_settle(r)
    assert r.result["isDone"] and r.result["output"] == {"phase": "ended"}
    phases = [p["phase"] for p in applied(r) if p["phase"]]
    assert phases[-4:] == ["lobby", "code_issued", "verified", "ended"]
    assert [i for p in applied(r) for i in p["ack"]] == ["e1", "e2", "e3", "e4"]


def test_an_event_raised_before_the_first_wait_is_applied_once() -> None:
    """An event raised while the first episode's work still runs (no wait opened yet): applied
    once; a second wait of its name does not get it again."""
    r = Replay()
    r.start()
    r.episode(r.event(T.EVENT_RAISED, Name="CodeVerified", Input=json.dumps({"outboxId": "e5"})))
    bounded_settle(r)
    assert r.status["phase"] == "booked" and not r.result.get("isDone")
    refused = [p for p in applied(r) if p["phase"] == "booked"]
    assert len(refused) == 2, refused  # the first phase, and once more for the refused event


def test_a_second_event_of_a_name_raised_while_the_first_is_applied_comes_once() -> None:
    """A new code issued while the first code's phase is being recorded: both applied, each once."""
    r = in_the_lobby()
    r.raise_event("CodeIssued", {"expiresAt": "2026-12-07T10:25:00Z", "outboxId": "e1"})
    r.episode(
        r.event(
            T.EVENT_RAISED,
            Name="CodeIssued",
            Input=json.dumps({"expiresAt": "2026-12-07T10:28:00Z", "outboxId": "e2"}),
        )
    )
    bounded_settle(r)
    assert r.status["phase"] == "code_issued" and r.status["codeExpiresAt"] == "2026-12-07T10:28:00Z"
    assert [p["ack"] for p in applied(r) if not p["phase"]] == [["e2"]]


# --- a due deadline checks the record and the outbox in its own first activity -----------------


def test_a_join_window_whose_check_finds_the_booking_cancelled_makes_no_meeting_and_cancels() -> None:
    """The customer cancelled, but the event never came: create_meeting's check finds the record
    cancelled and does nothing; the lifecycle decides the cancellation (its phase, both told), never
    records join_open, and does not continue as new into the meeting."""
    r = Replay(now=START - timedelta(minutes=15))
    r.start()
    r.settle()
    assert r.names(r.fire_timer()) == ["create_meeting"]
    answer = {"missed": True, "schedule": {**RECORD, "phase": "cancelled"}, "failed": []}
    new = r.complete_all({"create_meeting": answer})
    assert r.names(new) == ["apply_phase"]
    assert parts(new[0]) == {
        "phase": "cancelled",
        "ack": [],
        "told": [("cancelled", "expert"), ("cancelled", "customer")],
        "look": False,
    }
    r.settle()
    assert r.result["isDone"] and r.result["output"] == {"phase": "cancelled"} and r.continued is None
    assert [p["phase"] for p in applied(r) if p["phase"]] == ["booked", "cancelled"]
    assert len(sent(r, "create_meeting")) == 1


def test_a_no_show_deadline_whose_check_finds_the_customers_join_applies_the_join() -> None:
    """The no-show deadline comes, but the outbox holds the customer's CustomerJoined (the trigger
    died before raising it): apply_phase's check finds it and records nothing; the join is applied
    (and acknowledged) instead, and the status never says no_show."""
    r = opening_the_window()
    r.settle({"load_schedule": {**RECORD, "phase": "join_open"}})
    while True:  # the outbox polls until the deadline (the appointment's end)
        new = r.fire_timer()
        if r.names(new) != ["load_schedule"]:
            break
        r.complete_all({"load_schedule": {**RECORD, "phase": "join_open"}})
    assert r.names(new) == ["apply_phase"] and parts(new[0])["phase"] == "no_show"
    assert json.loads(new[0]["input"])["guard"] == {"phase": "join_open", "revision": 0, "outbox": True}
    assert r.status["phase"] == "no_show"  # what it is about to record, unless the check finds more
    pending = [{"id": "e1", "event": "CustomerJoined", "payload": {}}]
    schedule = {**RECORD, "phase": "join_open", "pending": pending}
    new = r.complete_all({"apply_phase": {"missed": True, "schedule": schedule, "failed": []}})
    assert r.names(new) == ["apply_phase"]  # no_show was not recorded: the join is, instead
    assert parts(new[0]) == {
        "phase": "lobby",
        "ack": ["e1"],
        "told": [("customer_in_lobby", "expert")],
        "look": False,
    }
    r.complete_all()
    assert r.status["phase"] == "lobby" and not r.result.get("isDone")


def test_only_a_decision_with_an_activity_to_carry_it_gets_the_check() -> None:
    """A deadline that decides nothing has no activity to check the record in (the orchestrator
    looks first, as for a poll); one that starts with the meeting's creation checks there."""
    from appointments.lifecycle import CreateMeeting, Decision, DeleteMeeting, LifecycleState, RecordPhase
    from appointments.model import Phase
    from orchestrators.appointment_lifecycle import _deadline_guard

    state = LifecycleState.from_input(INPUT)
    assert _deadline_guard(state, Decision(state)) is None
    record = RecordPhase(Phase.JOIN_OPEN, START, 0)
    guard = {"phase": "booked", "revision": 0, "outbox": False}
    assert _deadline_guard(state, Decision(state, (CreateMeeting(), record))) == guard
    assert _deadline_guard(state, Decision(state, (DeleteMeeting(), record))) is None


def test_a_cancelled_timer_that_fires_later_changes_nothing() -> None:
    """A timer cannot be taken back: the host fires a timer the orchestrator cancelled when an event
    won (the extension schedules it before the cancel). Its TimerFired, delivered while the
    lifecycle waits in a later phase, is an episode with nothing to do."""
    r = in_the_lobby()
    [(seq, action)] = [(s, a) for s, a in r.pending.items() if a["actionType"] == 5]
    r.raise_event("CodeIssued", {"expiresAt": "2026-12-07T10:25:00Z", "outboxId": "e1"})
    r.settle()
    assert r.status["phase"] == "code_issued"
    before = dict(r.pending)
    fired = r.event(T.TIMER_FIRED, TimerId=seq, FireAt=action["fireAt"])
    assert r.episode(fired) == []  # no activity, no timer
    assert r.pending == before and r.status["phase"] == "code_issued" and not r.result.get("isDone")
    r.raise_event("CodeVerified", {"outboxId": "e2"})
    r.settle()
    assert r.status["phase"] == "verified"
    assert [p["phase"] for p in applied(r) if p["phase"]][-2:] == ["code_issued", "verified"]
