"""Notification templates: every kind, recipient and language renders, escapes and fails loudly."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jinja2 import TemplateNotFound, UndefinedError

from adapters.renderer import TEMPLATES_DIR, Renderer
from appointments.catalogue import Channel
from appointments.localtime import LANGUAGES
from appointments.notifications import (
    RECIPIENTS,
    Notification,
    NotificationKind,
    Recipient,
    Reminder,
    build_context,
)

START = datetime(2022, 2, 7, 10, 30, tzinfo=UTC)
PAIRS = [(kind, recipient) for kind, recipients in RECIPIENTS.items() for recipient in sorted(recipients)]


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def full(kind: NotificationKind, recipient: Recipient, lang: str, **overrides: Any) -> Notification:
    """A notification with every optional field filled in."""
    fields: dict[str, Any] = {
        "kind": kind,
        "recipient": recipient,
        "language": lang,
        "booking_code": "AB12CD34",
        "start": START,
        "duration_minutes": 45,
        "topic": "Lainat, Asuntolainaneuvottelu",
        "expert_name": "Maija Asiantuntija",
        "channel": Channel.ONLINE,
        "manage_url": "https://portal.example/appointments/AB12CD34",
        "cancel_url": "https://portal.example/appointments/AB12CD34/cancel"
        if recipient == "customer"
        else None,
        "join_url": "https://portal.example/appointments/AB12CD34/meeting",
        "join_window_minutes": 15,
        "service_phone": "0100 0500",
        "reminder": Reminder.DAY_BEFORE,
        "previous_start": datetime(2022, 2, 4, 8, 0, tzinfo=UTC),
        "attempts": 3,
        "failure_reason": "Teams meeting could not be created",
        "customer_display_name": "Matti Meikäläinen" if recipient == "expert" else None,
    }
    fields.update(overrides)
    return Notification(**fields)


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize(("kind", "recipient"), PAIRS)
def test_every_kind_renders_in_every_language(
    renderer: Renderer, kind: NotificationKind, recipient: Recipient, lang: str
) -> None:
    """Subject, text and html render with a full context; the subject is one non-empty line."""
    out = renderer.render_notification(full(kind, recipient, lang))
    assert out.subject and "\n" not in out.subject and out.subject == out.subject.strip()
    assert "AB12CD34" in out.text or kind in {NotificationKind.JOIN_OPEN, NotificationKind.IDENTITY_VERIFIED}
    assert out.text.strip() and "<" not in out.text
    assert out.html.startswith("<!DOCTYPE html>") and f'<html lang="{lang}">' in out.html
    assert "{{" not in out.text + out.html and "{%" not in out.text + out.html


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("channel", list(Channel))
@pytest.mark.parametrize(
    "kind", [NotificationKind.BOOKING_CONFIRMATION, NotificationKind.REMINDER, NotificationKind.RESCHEDULED]
)
def test_customer_notifications_render_for_every_channel(
    renderer: Renderer, kind: NotificationKind, channel: Channel, lang: str
) -> None:
    """Phone and branch appointments render without join link or recording notice."""
    out = renderer.render_notification(
        full(
            kind,
            Recipient.CUSTOMER,
            lang,
            channel=channel,
            join_url=None,
            branch_address="Kauppakatu 1, Kuopio",
        )
    )
    assert ("Kauppakatu 1, Kuopio" in out.text) is (channel == Channel.BRANCH)
    recorded = {"fi": "tallennetaan", "sv": "spelas in", "en": "recorded"}[lang]
    assert (recorded in out.text) is (channel == Channel.ONLINE)


@pytest.mark.parametrize(
    ("lang", "phrases"),
    [
        (
            "fi",
            [
                "Vahvistus ajanvarauksesta",
                "maanantai 7.2.2022 klo 12.30",
                "45 minuuttia",
                "Voit aloittaa verkkoneuvottelun aikaisintaan 15 minuuttia ennen alkamisaikaa",
                "tallennetaan",
            ],
        ),
        ("sv", ["Bekräftelse", "måndag 7.2.2022 kl. 12.30", "tidigast 15 minuter före", "spelas in"]),
        (
            "en",
            ["Booking confirmation", "Monday 7 February 2022 at 12:30", "no earlier than 15 minutes before"],
        ),
    ],
)
def test_booking_confirmation_says_what_the_customer_needs(
    renderer: Renderer, lang: str, phrases: list[str]
) -> None:
    """Code, time, duration, topic, expert, how to join, how to change and the recording notice."""
    out = renderer.render_notification(full(NotificationKind.BOOKING_CONFIRMATION, Recipient.CUSTOMER, lang))
    for part in (f"{out.subject}\n{out.text}", out.html):
        for phrase in [
            *phrases,
            "AB12CD34",
            "Lainat, Asuntolainaneuvottelu",
            "Maija Asiantuntija",
            "0100 0500",
        ]:
            assert phrase in part
        assert "https://portal.example/appointments/AB12CD34" in part


def test_join_window_minutes_are_not_hard_coded(renderer: Renderer) -> None:
    """The minutes in the joining instructions come from the context."""
    out = renderer.render_notification(
        full(NotificationKind.BOOKING_CONFIRMATION, Recipient.CUSTOMER, "fi", join_window_minutes=10)
    )
    assert "aikaisintaan 10 minuuttia ennen alkamisaikaa" in out.text
    assert "klo 12.20" in out.text


def test_code_locked_tells_the_expert_to_issue_a_new_code(renderer: Renderer) -> None:
    """The lock notice states the attempts and the next step."""
    out = renderer.render_notification(full(NotificationKind.CODE_LOCKED, Recipient.EXPERT, "en"))
    assert "wrong identification code 3 times" in out.text and "Issue a new code" in out.text


def test_customer_name_appears_only_when_given(renderer: Renderer) -> None:
    """Expert mail names the customer only if the caller provided a name."""
    named = renderer.render_notification(full(NotificationKind.CUSTOMER_IN_LOBBY, Recipient.EXPERT, "fi"))
    anonymous = renderer.render_notification(
        full(NotificationKind.CUSTOMER_IN_LOBBY, Recipient.EXPERT, "fi", customer_display_name=None)
    )
    assert "Matti Meikäläinen" in named.text and "Matti Meikäläinen" in named.html
    assert "Matti" not in anonymous.text and "Asiakas:" not in anonymous.text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_html_is_escaped_and_text_is_not(renderer: Renderer, lang: str) -> None:
    """A hostile topic label stays inert in html and verbatim in text."""
    evil = '<script>alert("x")</script> & Co'
    out = renderer.render_notification(
        full(NotificationKind.BOOKING_CONFIRMATION, Recipient.CUSTOMER, lang, topic=evil)
    )
    assert "<script>" not in out.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in out.html
    assert evil in out.text


def test_a_newline_in_a_label_cannot_break_the_subject(renderer: Renderer) -> None:
    """Subjects are mail headers: whitespace collapses to single spaces."""
    ctx = build_context(
        full(NotificationKind.CANCELLED, Recipient.EXPERT, "fi", booking_code="AB\r\nBcc: x@y")
    )
    assert renderer.render(NotificationKind.CANCELLED, ctx).subject.startswith(
        "Tapaaminen peruttu: AB Bcc: x@y,"
    )


def test_a_missing_variable_raises(renderer: Renderer) -> None:
    """StrictUndefined: a context without a key fails instead of printing nothing."""
    ctx = build_context(full(NotificationKind.BOOKING_CONFIRMATION, Recipient.CUSTOMER, "fi"))
    del ctx["topic"]
    with pytest.raises(UndefinedError, match="topic"):
        renderer.render(NotificationKind.BOOKING_CONFIRMATION, ctx)


def test_an_unknown_language_raises_by_default(renderer: Renderer) -> None:
    """Without an explicit fallback, a language we have no templates for fails loudly."""
    ctx = build_context(full(NotificationKind.BOOKING_CONFIRMATION, Recipient.CUSTOMER, "fi"))
    with pytest.raises(ValueError, match="unsupported language"):
        renderer.render(NotificationKind.BOOKING_CONFIRMATION, {**ctx, "lang": "de"})
    with pytest.raises(ValueError, match="unsupported language"):
        renderer.language("de")


def test_fallback_to_finnish_only_when_allowed() -> None:
    """A renderer built with fallback_to_fi renders unknown languages in Finnish."""
    fallback = Renderer(fallback_to_fi=True)
    assert fallback.language("de") == "fi" and fallback.language("sv") == "sv"
    ctx = build_context(full(NotificationKind.BOOKING_CONFIRMATION, Recipient.CUSTOMER, "fi"))
    out = fallback.render(NotificationKind.BOOKING_CONFIRMATION, {**ctx, "lang": "de"})
    assert out.subject.startswith("Vahvistus ajanvarauksesta") and '<html lang="fi">' in out.html


def test_a_missing_template_raises(tmp_path: Path) -> None:
    """An empty template folder surfaces TemplateNotFound rather than an empty mail."""
    ctx = build_context(full(NotificationKind.BOOKING_CONFIRMATION, Recipient.CUSTOMER, "fi"))
    with pytest.raises(TemplateNotFound):
        Renderer(tmp_path).render(NotificationKind.BOOKING_CONFIRMATION, ctx)


def test_an_empty_subject_raises(tmp_path: Path) -> None:
    """A subject template that renders to nothing is a bug, not a blank subject line."""
    folder = tmp_path / "fi" / "customer"
    folder.mkdir(parents=True)
    (folder / "cancelled.subject.txt").write_text("{% if false %}x{% endif %}\n")
    ctx = build_context(full(NotificationKind.CANCELLED, Recipient.CUSTOMER, "fi"))
    with pytest.raises(ValueError, match="empty subject"):
        Renderer(tmp_path).render(NotificationKind.CANCELLED, ctx)


def test_the_environment_is_built_once_per_renderer(renderer: Renderer) -> None:
    """Rendering reuses the renderer's Environment and its template cache."""
    env = renderer.env
    renderer.render_notification(full(NotificationKind.CANCELLED, Recipient.CUSTOMER, "sv"))
    renderer.render_notification(full(NotificationKind.CANCELLED, Recipient.CUSTOMER, "sv"))
    assert renderer.env is env
    assert renderer.env.get_template("sv/customer/cancelled.txt") is renderer.env.get_template(
        "sv/customer/cancelled.txt"
    )


def test_every_template_file_exists_for_every_language() -> None:
    """Each language has the same set of template files."""
    names = {
        lang: {p.relative_to(TEMPLATES_DIR / lang) for p in (TEMPLATES_DIR / lang).rglob("*.*")}
        for lang in LANGUAGES
    }
    assert names["fi"] == names["sv"] == names["en"]
    for kind, recipient in PAIRS:
        for suffix in (".subject.txt", ".txt", ".html"):
            assert Path(recipient, f"{kind}{suffix}") in names["fi"]


def test_templates_contain_no_date_logic() -> None:
    """Dates arrive formatted: templates never format, parse or compute time."""
    forbidden = re.compile(
        r"strftime|strptime|format_datetime|format_date|format_time|timedelta|datetime|now\(|\|\s*date"
    )
    for path in TEMPLATES_DIR.rglob("*.*"):
        assert not forbidden.search(path.read_text(encoding="utf-8")), path


def test_templates_load_no_external_resources() -> None:
    """HTML mails carry no scripts, stylesheets, images or web fonts from elsewhere."""
    for path in TEMPLATES_DIR.rglob("*.html"):
        html = path.read_text(encoding="utf-8").lower()
        for marker in ("<script", "<link", "<img", "@import", "url(", "src="):
            assert marker not in html, (path, marker)
