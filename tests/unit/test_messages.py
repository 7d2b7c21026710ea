"""Every error text in every language: complete, parameterised alike, and no English in fi or sv."""

from __future__ import annotations

import re
import string

import pytest

from appointments import messages
from appointments.catalogue import LANGUAGES

# Words that are English and neither Finnish nor Swedish ("in", "on", "be", "start", "expert", "text"
# are Swedish or Finnish too, so they are absent).
ENGLISH = set(
    """the and must please not is are been this that with from your you our we us call try again
    code appointment appointments booking meeting time phone number field unknown invalid
    request error found too many wait before after minutes hours days date only can cannot
    should has have of or an by it if here there no yes choose enter give check valid body
    must been was were will would which who what when where why how more less at least most
    online changed cancelled free taken sign continue link expired ask new wrong correct while
    customer lobby issued identity header accepted platform authentication off calendars read right
    now shortly something went later allowed large characters control broken stored future slot
    grid timestamp offset e.g. look like duration one topic list language finnish swedish english
    address mail extra information hours working serves serve hold another digits whole end range
    span phase closed progress prepared seconds few created told contact failed attempts confirmation
    waiting bank reload meanwhile""".split()  # noqa: SIM905 - a word list reads best as running text
)
SAMPLE = {
    "phase": "cancelled",
    "event": "Rescheduled",
    "hours": 24,
    "minutes": 15,
    "days": 90,
    "servicePhone": "09 123 4567",
    "retryAfter": 30,
    "method": "PATCH",
    "maxBytes": 65536,
    "maxDepth": 16,
    "messages": "…",
    "field": "lisatieto",
    "choices": "30, 45, 60",
    "channels": ["online", "phone", "branch"],
    "max": 500,
    "digits": 6,
}
# Technical names a message may quote verbatim, in any language.
VERBATIM = {"json", "rfc", "application/json", "idempotency-key", "durationminutes", "expertid", "patch"}


def english_words(text: str) -> set[str]:
    words = {w.strip(string.punctuation).lower() for w in re.split(r"[\s(),:;]+", text)}
    return {w for w in words if w in ENGLISH and w not in VERBATIM}


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_the_english_detector_finds_english() -> None:
    """The check below can fail: an English sentence left in a Finnish text is caught."""
    assert english_words("Ajanvarausta ei löytynyt. Please call us.") == {"please", "call", "us"}
    assert english_words("Bokningen hittades inte.") == set()


@pytest.mark.parametrize("code", sorted(messages.MESSAGES))
def test_every_message_exists_in_every_language_with_the_same_parameters(code: str) -> None:
    """fi, sv and en each have the text, and each uses the same parameters."""
    texts = messages.MESSAGES[code]
    assert set(texts) == set(LANGUAGES)
    assert len({frozenset(placeholders(t)) for t in texts.values()}) == 1


@pytest.mark.parametrize("lang", ["fi", "sv"])
@pytest.mark.parametrize("code", sorted(messages.MESSAGES))
def test_no_english_in_finnish_or_swedish_messages(code: str, lang: str) -> None:
    """Rendered with its parameters, a fi or sv text holds no English word and differs from en."""
    text = messages.render(code, lang, SAMPLE)
    assert not english_words(text), text
    assert text != messages.render(code, "en", SAMPLE)
    assert "{" not in text


@pytest.mark.parametrize("lang", ["fi", "sv"])
@pytest.mark.parametrize("slug", sorted(messages.TITLES))
def test_no_english_in_finnish_or_swedish_titles(slug: str, lang: str) -> None:
    """Problem titles too."""
    assert not english_words(messages.title(slug, lang))
    assert messages.title(slug, lang) != messages.title(slug, "en")


def test_every_code_the_code_raises_is_in_the_catalogue() -> None:
    """Each message code used in the source has a text: a typo would show the bare code."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2]
    used: set[str] = set()
    pattern = re.compile(
        r"(?:raise \w+\(|\.add\([^,]+,\s*|FieldError\([^,]+,\s*|Refusal\(\d+,\s*\"[^\"]+\",\s*)"
        r"\"([a-z_]+)\"\s*[,)]"
    )
    for folder in ("appointments", "http_triggers"):
        for path in (root / folder).glob("*.py"):
            used |= set(pattern.findall(path.read_text(encoding="utf-8")))
    assert used, "the pattern found nothing: the test would pass vacuously"
    assert used - set(messages.MESSAGES) == set()


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, "fi"),
        ("", "fi"),
        ("sv-FI,sv;q=0.9,en;q=0.8", "sv"),
        ("en-GB", "en"),
        ("de-DE, en;q=0.5, fi;q=0.7", "fi"),
        ("de", "fi"),
        ("en;q=0, sv;q=0.1", "sv"),
        ("sv;q=abc, en", "en"),
        ("*", "fi"),
        ("x" * 5000, "fi"),
    ],
)
def test_accept_language_picks_the_best_supported_language(header: str | None, lang: str) -> None:
    """q-values count, subtags are ignored, malformed entries are skipped, Finnish is the default."""
    assert messages.negotiate(header) == lang


def test_values_that_are_words_are_translated() -> None:
    """A phase or a list of channels is shown in the reader's language."""
    assert "peruttu" in messages.render("appointment_closed", "fi", {"phase": "cancelled"})
    text = messages.render("channel_invalid", "sv", {"channels": ["online", "phone", "branch"]})
    assert text == "Välj mötesform: onlinemöte, telefonsamtal eller möte på kontoret."
