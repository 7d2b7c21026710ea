"""Render notifications from ``templates/`` with jinja2.

Layout: ``templates/<lang>/<recipient>/<kind>.subject.txt``, ``.txt`` and ``.html``; each
html template extends ``templates/<lang>/base.html``; shared pieces are ``_*.txt`` /
``_*.html`` partials in ``templates/<lang>/``. The context comes from
:func:`appointments.notifications.build_context`; templates only print it.

Nothing is forgiven: an unknown language raises ValueError (unless the renderer was
built with ``fallback_to_fi=True``), a missing template raises
``jinja2.TemplateNotFound`` and a missing variable ``jinja2.UndefinedError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from appointments.localtime import LANGUAGES, Language, require_language
from appointments.notifications import Notification, NotificationKind, Recipient, build_context

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True)
class RenderedNotification:
    subject: str
    text: str
    html: str


class Renderer:
    """Renders ``(subject, text, html)``; build one and reuse it (the Environment caches templates)."""

    def __init__(self, templates_dir: Path | str = TEMPLATES_DIR, *, fallback_to_fi: bool = False) -> None:
        self.fallback_to_fi = fallback_to_fi
        self.env = Environment(
            loader=FileSystemLoader(str(templates_dir)),
            undefined=StrictUndefined,
            # Only html is escaped: the plain-text parts and the subject are not markup.
            autoescape=select_autoescape(
                enabled_extensions=("html",), default_for_string=False, default=False
            ),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
        )

    def language(self, requested: str) -> Language:
        """The language to render in: ``requested`` if supported, else fi if allowed, else ValueError."""
        if requested not in LANGUAGES and self.fallback_to_fi:
            return "fi"
        return require_language(requested)

    def render(self, kind: NotificationKind | str, context: Mapping[str, Any]) -> RenderedNotification:
        """Render one notification; ``context`` must carry ``lang`` and ``recipient``."""
        lang = self.language(str(context["lang"]))
        base = f"{lang}/{Recipient(context['recipient'])}/{NotificationKind(kind)}"
        context = {**context, "lang": lang}
        # A subject is a mail header: collapse whitespace so a stray newline in a label cannot add headers.
        subject = " ".join(self.env.get_template(f"{base}.subject.txt").render(context).split())
        if not subject:
            raise ValueError(f"template {base}.subject.txt rendered an empty subject")
        full = {**context, "subject": subject}
        text = self.env.get_template(f"{base}.txt").render(full)
        html = self.env.get_template(f"{base}.html").render(full)
        return RenderedNotification(subject=subject, text=text, html=html)

    def render_notification(self, notification: Notification) -> RenderedNotification:
        """Build the context for ``notification`` and render it."""
        return self.render(notification.kind, build_context(notification))
