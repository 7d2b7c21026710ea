"""Notification data and the one place that builds the template context."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from appointments.catalogue import Channel
from appointments.notifications import (
    ONLINE_ONLY,
    RECIPIENTS,
    Notification,
    NotificationKind,
    Recipient,
    Reminder,
    build_context,
)

START = datetime(2022, 2, 7, 10, 30, tzinfo=UTC)


def notification(**overrides: Any) -> Notification:
    fields: dict[str, Any] = {
        "kind": NotificationKind.BOOKING_CONFIRMATION,
        "recipient": Recipient.CUSTOMER,
        "language": "fi",
        "booking_code": "AB12CD34",
        "start": START,
        "duration_minutes": 45,
        "topic": "Lainat, Asuntolainaneuvottelu",
        "expert_name": "Maija Asiantuntija",
        "channel": Channel.ONLINE,
        "manage_url": "https://portal.example/appointments/AB12CD34",
        "cancel_url": "https://portal.example/appointments/AB12CD34/cancel",
    }
    fields.update(overrides)
    return Notification(**fields)


def test_context_carries_formatted_helsinki_strings() -> None:
    """Dates and durations arrive in the template as finished local strings."""
    ctx = build_context(notification())
    assert ctx["start"] == "maanantai 7.2.2022 klo 12.30"
    assert ctx["start_date"] == "7.2.2022"
    assert ctx["start_weekday"] == "maanantai"
    assert ctx["start_time"] == "12.30"
    assert ctx["end_time"] == "13.15"
    assert ctx["duration"] == "45 minuuttia"
    assert ctx["join_opens_time"] == "12.15"
    assert ctx["join_window_minutes"] == 15
    assert ctx["channel_label"] == "Verkkoneuvottelu"


def test_context_follows_the_language() -> None:
    """The same notification in sv and en formats in those languages."""
    assert build_context(notification(language="sv"))["start"] == "måndag 7.2.2022 kl. 12.30"
    en = build_context(notification(language="en", duration_minutes=90))
    assert en["start"] == "Monday 7 February 2022 at 12:30"
    assert en["duration"] == "1 hour 30 minutes"
    assert en["end_time"] == "14:00"


def test_join_window_minutes_come_from_the_data() -> None:
    """The join window is a setting, not a constant in the templates."""
    ctx = build_context(notification(join_window_minutes=10))
    assert ctx["join_window_minutes"] == 10
    assert ctx["join_opens_time"] == "12.20"


def test_every_context_has_the_same_keys() -> None:
    """Optional values are None rather than missing, so StrictUndefined templates can test them."""
    keys = set(build_context(notification()))
    phone = build_context(notification(channel=Channel.PHONE, cancel_url=None))
    assert set(phone) == keys
    assert phone["join_url"] is None and phone["previous_start"] is None and phone["attempts"] is None


def test_recording_notice_only_for_recorded_online_meetings() -> None:
    """Online meetings are recorded; phone and branch meetings carry no recording notice."""
    assert build_context(notification())["recording_notice"] is True
    assert build_context(notification(recorded=False))["recording_notice"] is False
    assert build_context(notification(channel=Channel.PHONE))["recording_notice"] is False
    assert build_context(notification(channel=Channel.BRANCH))["recording_notice"] is False


def test_reschedule_shows_the_previous_start() -> None:
    """The previous time is formatted like the new one."""
    ctx = build_context(
        notification(
            kind=NotificationKind.RESCHEDULED,
            previous_start=datetime(2022, 2, 4, 8, 0, tzinfo=UTC),
            previous_duration_minutes=60,
        )
    )
    assert ctx["previous_start"] == "perjantai 4.2.2022 klo 10.00"
    assert ctx["previous_duration"] == "1 tunti"


def test_reminder_kind_is_a_parameter() -> None:
    """One reminder kind, told apart by day-before or hour-before."""
    ctx = build_context(notification(kind=NotificationKind.REMINDER, reminder=Reminder.HOUR_BEFORE))
    assert ctx["reminder"] == "hour_before"
    with pytest.raises(ValueError, match="reminder"):
        notification(kind=NotificationKind.REMINDER)


def test_customer_name_reaches_only_the_expert() -> None:
    """The customer's name is optional in expert notifications and refused in customer ones."""
    expert = notification(
        kind=NotificationKind.CUSTOMER_IN_LOBBY,
        recipient=Recipient.EXPERT,
        join_url="https://teams.example/join/1",
        customer_display_name="Matti M.",
    )
    assert build_context(expert)["customer_display_name"] == "Matti M."
    assert (
        build_context(dataclasses.replace(expert, customer_display_name=None))["customer_display_name"]
        is None
    )
    with pytest.raises(ValueError, match="expert notifications only"):
        notification(customer_display_name="Matti M.")


def test_no_identification_code_or_phone_number_can_enter_a_notification() -> None:
    """The code is shown to the expert only in the API response; the phone number never leaves storage."""
    names = {f.name for f in dataclasses.fields(Notification)} | set(build_context(notification()))
    assert not {n for n in names if "code" in n} - {"booking_code"}
    assert not {n for n in names if "phone" in n} - {"service_phone", "is_phone"}


@pytest.mark.parametrize(
    ("kind", "recipient"),
    [
        (NotificationKind.BOOKING_CONFIRMATION, Recipient.EXPERT),
        (NotificationKind.REMINDER, Recipient.EXPERT),
        (NotificationKind.CUSTOMER_IN_LOBBY, Recipient.CUSTOMER),
        (NotificationKind.CODE_LOCKED, Recipient.CUSTOMER),
        (NotificationKind.MEETING_FAILED, Recipient.CUSTOMER),
    ],
)
def test_a_kind_goes_only_to_its_recipients(kind: NotificationKind, recipient: Recipient) -> None:
    """Lobby, lock and failure notices are for the expert; confirmations and reminders for the customer."""
    with pytest.raises(ValueError, match="is not sent to"):
        notification(kind=kind, recipient=recipient, reminder=Reminder.DAY_BEFORE, attempts=3)


def test_every_kind_has_recipients() -> None:
    """The recipient table covers every kind; both parties hear about reschedules and cancellations."""
    assert set(RECIPIENTS) == set(NotificationKind)
    for kind in (NotificationKind.RESCHEDULED, NotificationKind.CANCELLED, NotificationKind.JOIN_OPEN):
        assert RECIPIENTS[kind] == {Recipient.CUSTOMER, Recipient.EXPERT}


@pytest.mark.parametrize("kind", sorted(ONLINE_ONLY))
def test_meeting_kinds_need_an_online_meeting(kind: NotificationKind) -> None:
    """A phone appointment has no lobby, code or Teams meeting to notify about."""
    with pytest.raises(ValueError, match="online meetings only"):
        notification(
            kind=kind,
            recipient=Recipient.EXPERT,
            channel=Channel.PHONE,
            join_url="https://teams.example/join/1",
            attempts=3,
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kind": NotificationKind.JOIN_OPEN}, "join_url"),
        ({"kind": NotificationKind.RESCHEDULED}, "previous_start"),
        ({"kind": NotificationKind.CODE_LOCKED, "recipient": Recipient.EXPERT}, "attempts"),
        ({"start": datetime(2022, 2, 7, 10, 30)}, "aware"),
        ({"kind": NotificationKind.RESCHEDULED, "previous_start": datetime(2022, 2, 7)}, "aware"),
        ({"duration_minutes": 0}, "positive"),
        ({"language": "de"}, "unsupported language"),
    ],
)
def test_incomplete_or_invalid_data_is_refused_on_construction(
    overrides: dict[str, Any], message: str
) -> None:
    """A notification that could not be rendered correctly fails where it is built."""
    with pytest.raises(ValueError, match=message):
        notification(**overrides)


def test_branch_address_and_service_phone_pass_through() -> None:
    """Branch visits show the address; the bank's service number is optional."""
    ctx = build_context(
        notification(
            channel=Channel.BRANCH, branch_address="Gebhardinaukio 1, Helsinki", service_phone="0100 0500"
        )
    )
    assert ctx["is_branch"] and not ctx["is_online"] and not ctx["is_phone"]
    assert ctx["branch_address"] == "Gebhardinaukio 1, Helsinki"
    assert ctx["service_phone"] == "0100 0500"
