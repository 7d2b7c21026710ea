"""The one mapping from domain errors to problem+json: localised, coded, never failing to encode."""

from __future__ import annotations

import json
from collections.abc import Iterator

import azure.functions as func
import pytest

import bootstrap
from appointments.errors import Conflict, Problems, ValidationFailed
from appointments.settings import Settings
from http_triggers.problem import from_error, json_response


@pytest.fixture
def bank_phone() -> Iterator[str]:
    bootstrap.override(settings=Settings.from_env({"DEV_MODE": "true", "BANK_SERVICE_PHONE": "010 555 1234"}))
    yield "010 555 1234"
    bootstrap.reset()


def request(accept: str | None = None) -> func.HttpRequest:
    headers = {"accept-language": accept} if accept else {}
    return func.HttpRequest("PATCH", "http://localhost/api/appointments/2KMEVE6X", headers=headers, body=b"")


@pytest.mark.parametrize(
    ("accept", "words"),
    [(None, "Soita meille numeroon"), ("sv", "Ring oss på"), ("en-GB", "Please call us on")],
)
def test_the_notice_period_tells_whom_to_call_in_the_callers_language(
    bank_phone: str, accept: str | None, words: str
) -> None:
    """The number is the BANK_SERVICE_PHONE setting, also given as a parameter for a tel: link."""
    r = from_error(Conflict("notice_period", reason="notice_period", hours=24), request(accept))
    doc = json.loads(r.get_body())
    assert words in doc["detail"] and bank_phone in doc["detail"] and "24" in doc["detail"]
    assert (
        doc["code"] == "notice_period"
        and doc["servicePhone"] == bank_phone
        and doc["reason"] == "notice_period"
    )
    assert r.status_code == 409 and r.headers["Content-Language"] == (accept or "fi")[:2]


def test_field_errors_carry_codes_and_localised_messages() -> None:
    """Each field error: its field, a stable code and the message in the caller's language."""
    p = Problems()
    p.add("phone", "phone_invalid")
    p.add("durationMinutes", "duration_invalid", choices="30, 45, 60")
    with pytest.raises(ValidationFailed) as caught:
        p.raise_if_any()
    doc = json.loads(from_error(caught.value, request("sv")).get_body())
    assert [(e["field"], e["code"]) for e in doc["errors"]] == [
        ("phone", "phone_invalid"),
        ("durationMinutes", "duration_invalid"),
    ]
    assert doc["errors"][1]["message"] == "Längden måste vara en av följande (minuter): 30, 45, 60."
    assert doc["title"] == "Kontrollera uppgifterna" and doc["detail"].startswith("Kontrollera uppgifterna: ")


def test_a_stored_lone_surrogate_cannot_break_a_response() -> None:
    """Data stored before validation existed is escaped, not a UnicodeEncodeError (the 500 of issue 16)."""
    r = json_response({"extraInfo": "\ud800 ok ä"})
    assert json.loads(r.get_body()) == {"extraInfo": "\ud800 ok ä"}
    assert json_response({"name": "Mäkelä"}).get_body().decode() == '{"name": "Mäkelä"}'
