"""The OpenAPI document (``openapi/openapi.json``) against the app it describes.

(a) every HTTP route ``function_app`` registers is documented with the same methods, and nothing
    else is; (b) real responses of the running app, success and error for every route, validate
    against the documented schema for their status; (c) ``GET /api/openapi.json`` serves the file.

The schemas are checked with a small validator for the JSON Schema subset the document uses
(no jsonschema dependency); it refuses keywords it does not know, so the document cannot drift
into constructs nobody checks.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import MAIJA, MATLEENA, Stack, customer_headers, expert_headers

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
PHONE = "+358401234567"
APPT = "/api/appointments/{code}"
JOIN = APPT + "/join"
VERIFY = APPT + "/identity-verification"
OPS = "/api/ops/appointments"
GRAPH = "/api/graph/notifications"


@cache
def document() -> dict[str, Any]:
    return dict(json.loads(DOCUMENT_PATH.read_text(encoding="utf-8")))


@cache
def registered_routes() -> tuple[tuple[str, str, str, str], ...]:
    """(name, /api/route, METHOD, auth level) for every HTTP function. ``get_functions()`` raises
    when called twice, so it is called once per test process."""
    import function_app

    out = []
    for f in function_app.app.get_functions():
        bindings = f.get_bindings_dict().get("bindings", [])
        trigger = next((b for b in bindings if b.get("type") == "httpTrigger"), None)
        if trigger is None:
            continue
        route = "/api/" + (trigger.get("route") or f.get_function_name()).strip("/")
        level = str(getattr(trigger.get("authLevel"), "value", trigger.get("authLevel"))).lower()
        for m in trigger.get("methods") or ():
            out.append((f.get_function_name(), route, str(getattr(m, "value", m)).upper(), level))
    return tuple(out)


# --- a validator for the JSON Schema subset the document uses ------------------------------------

ASSERTIONS = {
    "$ref", "allOf", "type", "enum", "pattern", "format", "properties", "required",
    "additionalProperties", "items", "minimum", "maximum", "minLength", "maxLength", "minProperties",
}  # fmt: skip
ANNOTATIONS = {"description", "examples", "default", "title"}
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FORMATS: dict[str, Callable[[str], object]] = {
    "date-time": DATE_TIME.match,
    "date": DATE.match,
    "uri": lambda v: re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", v),
    "email": lambda v: "@" in v,
}


def resolve(ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document()
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _is_type(value: Any, name: str) -> bool:
    return {
        "null": value is None,
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "string": isinstance(value, str),
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
    }[name]


def check(schema: dict[str, Any], value: Any, where: str = "$") -> list[str]:
    """The ways ``value`` breaks ``schema`` (empty: it validates)."""
    unknown = set(schema) - ASSERTIONS - ANNOTATIONS
    assert not unknown, f"the validator does not know {sorted(unknown)} (at {where})"
    errors: list[str] = []
    if "$ref" in schema:
        errors += check(resolve(schema["$ref"]), value, where)
    for sub in schema.get("allOf", ()):
        errors += check(sub, value, where)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, t) for t in types):
            return [*errors, f"{where}: {value!r} is not of type {types}"]
    if "enum" in schema and not any(value == e and type(value) is type(e) for e in schema["enum"]):
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if "format" in schema and schema["format"] in FORMATS and not FORMATS[schema["format"]](value):
            errors.append(f"{where}: {value!r} is not a {schema['format']}")
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{where}: {value!r} has the wrong length")
    if _is_type(value, "number") and not schema.get("minimum", value) <= value <= schema.get(
        "maximum", value
    ):
        errors.append(f"{where}: {value!r} is out of range")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{where}: {k!r} is required" for k in schema.get("required", ()) if k not in value]
        if len(value) < schema.get("minProperties", 0):
            errors.append(f"{where}: too few properties")
        for key, item in value.items():
            if key in props:
                errors += check(props[key], item, f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}: {key!r} is not allowed")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += check(schema["additionalProperties"], item, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += check(schema["items"], item, f"{where}[{i}]")
    return errors


def deref(node: dict[str, Any]) -> dict[str, Any]:
    return dict(resolve(node["$ref"])) if "$ref" in node else node


# --- calling the app and checking the answer against the document ------------------------------


class Checker:
    """Calls one documented operation and checks the answer; remembers which statuses were seen."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.seen: dict[tuple[str, str], set[int]] = {}

    def __call__(
        self,
        method: str,
        template: str,
        expect: int,
        *,
        path: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        operation = document()["paths"][template][method.lower()]
        url = template.format(**(path or {}))
        if "json" in kw and 200 <= expect < 300 and "requestBody" in operation:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert check(schema, kw["json"], "request") == [], (method, template, kw["json"])
        r = self.stack.host.request(method, url, headers=headers or {}, **kw)
        return self.validate(r, method, template, expect)

    def validate(self, r: httpx.Response, method: str, template: str, expect: int) -> httpx.Response:
        """Check a response already obtained against the document."""
        operation = document()["paths"][template][method.lower()]
        assert r.status_code == expect, (method, template, r.status_code, r.text)
        documented = operation["responses"].get(str(expect))
        assert documented is not None, f"{method} {template} answered {expect}, which is not documented"
        documented = deref(documented)
        content = documented.get("content", {})
        if not content:
            assert r.content == b"", (method, template, r.text)
        else:
            media = r.headers["content-type"].split(";")[0].strip()
            assert media in content, (
                f"{method} {template} {expect}: {media} is not documented ({list(content)})"
            )
            if media.endswith("json"):
                errors = check(content[media]["schema"], r.json())
                assert errors == [], (method, template, expect, errors, r.text)
        for name, header in documented.get("headers", {}).items():
            assert not header.get("required") or name.lower() in r.headers, (
                f"{method} {template} {expect}: no {name} header"
            )
        self.seen.setdefault((method.upper(), template), set()).add(expect)
        return r


def as_customer(who: str, **extra: str) -> dict[str, str]:
    return {**customer_headers(who), **extra}


def as_expert(expert_id: str) -> dict[str, str]:
    return expert_headers(expert_id)


def new_customer() -> str:
    return f"cust-{uuid.uuid4().hex[:10]}"


def booking(start: datetime, expert: str, topic: str) -> dict[str, Any]:
    return {
        "expertId": expert,
        "topic": topic,
        "channel": "online",
        "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "durationMinutes": 45,
        "language": "fi",
        "phone": PHONE,
    }


def book_first_free(
    stack: Stack, who: str, candidates: list[datetime], expert: str, topic: str
) -> dict[str, Any]:
    """Book the first free candidate start (other tests share the stack); the view."""
    for start in candidates:
        body = booking(start, expert, topic)
        r = stack.host.request("POST", "/api/appointments", headers=as_customer(who), json=body)
        if r.status_code == 409:
            continue
        assert r.status_code == 201, r.text
        stack.host.wait_idle()
        return dict(r.json())
    raise AssertionError("no free slot")


def to_window(stack: Stack, start: str) -> None:
    target = datetime.fromisoformat(start.replace("Z", "+00:00")) - timedelta(minutes=15)
    stack.host.advance(max(0.0, (target - stack.now()).total_seconds()))
    stack.host.wait_idle()


# --- the tests ----------------------------------------------------------------------------------


def test_the_validator_rejects_what_it_should() -> None:
    """A sanity check of the checker itself, so a green run means something."""
    assert check({"$ref": "#/components/schemas/Problem"}, {"title": "x", "status": 404}) != []
    assert check({"$ref": "#/components/schemas/BookingCode"}, "2KMEVE6X") == []
    assert check({"$ref": "#/components/schemas/BookingCode"}, "2kmeve6x") != []
    assert check({"$ref": "#/components/schemas/Appointment"}, {"phaseSince": None}) != []
    assert check({"type": ["string", "null"], "format": "date-time"}, None) == []
    assert check({"type": "integer", "enum": [30, 45, 60]}, True) != []
    assert check({"$ref": "#/components/schemas/PhoneE164"}, "040 123 4567") == []
    assert check({"$ref": "#/components/schemas/PhoneE164"}, "040 123 4567 ext 5") != []
    with pytest.raises(AssertionError, match="does not know"):
        check({"oneOf": []}, 1)


def test_every_registered_route_is_documented_and_nothing_else() -> None:
    """Paths, methods, operation ids (= function names) and function-key security match the app."""
    doc = document()
    assert doc["openapi"].startswith("3.1")
    registered = {(route, method) for _name, route, method, _level in registered_routes()}
    documented = {
        (path, method.upper()) for path, item in doc["paths"].items() for method in item if method in METHODS
    }
    assert documented == registered, (
        f"undocumented: {sorted(registered - documented)}; not registered: {sorted(documented - registered)}"
    )
    schemes = doc["components"]["securitySchemes"]
    for name, route, method, level in registered_routes():
        item = doc["paths"][route]
        operation = item[method.lower()]
        assert operation["operationId"] == name
        assert operation["description"] and operation["summary"]
        params = [deref(p) for p in item.get("parameters", []) + operation.get("parameters", [])]
        in_path = {p["name"] for p in params if p["in"] == "path"}
        assert in_path == set(re.findall(r"{(\w+)}", route)), route
        needs_key = {"functionKey"} <= {s for req in operation["security"] for s in req}
        assert needs_key == (level == "function"), (route, level)
        for requirement in operation["security"]:
            assert set(requirement) <= set(schemes)
        assert any(s.startswith("2") for s in operation["responses"]), route
        for status, response in operation["responses"].items():
            response = deref(response)
            if int(status) == 401 and needs_key:
                # The host refuses a missing function key itself, with an empty body.
                assert "content" not in response, (route, status)
            elif int(status) >= 400:
                assert list(response["content"]) == ["application/problem+json"], (route, status)
    assert "/runtime/webhooks/durabletask" in doc["info"]["description"]
    assert "/dev/" in doc["info"]["description"]


def test_every_ref_resolves() -> None:
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(document())


def test_the_served_document_is_the_file(stack: Stack) -> None:
    r = stack.host.get("/api/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.content == DOCUMENT_PATH.read_bytes() and r.json() == document()


def test_real_responses_match_the_document(stack: Stack) -> None:
    """A success and at least one error of every route, each validated against its documented schema."""
    call = Checker(stack)
    A, B, C = new_customer(), new_customer(), new_customer()
    intruder = new_customer()
    key_header = {"x-functions-key": stack.host.function_key}
    forwarded = {"X-Forwarded-For": f"203.0.113.{uuid.uuid4().int % 250 + 1}"}

    # Catalogue and slots (public).
    call("GET", "/api/topics", 200)
    call("GET", "/api/experts", 200, params={"topic": "savings.funds", "language": "sv"})
    call("GET", "/api/experts", 422, params={"language": "de"})
    day = (stack.now() + timedelta(days=12)).date()
    while day.weekday() >= 5:
        day += timedelta(days=1)
    q = {"topic": "savings.funds", "channel": "online", "expert": MAIJA.expert_id, "from": day.isoformat()}
    slots = call("GET", "/api/slots", 200, params={**q, "to": day.isoformat()}).json()
    assert slots["days"] and slots["days"][0]["slots"]
    call("GET", "/api/slots", 400, params={**q, "from": "1.12.2026"})
    call("GET", "/api/slots", 422, params={**q, "topic": "nope"})
    httpx.post(
        f"{stack.graph.origin}/_emulator/faults", json={"path": "getSchedule", "status": 500, "count": 1}
    ).raise_for_status()
    call("GET", "/api/slots", 503, params={**q, "to": day.isoformat()})

    # Holds.
    first = slots["days"][0]["slots"][-1]
    hold_body = {"expertId": MAIJA.expert_id, "start": first["start"], "durationMinutes": 30}
    hold = call("POST", "/api/slots/hold", 201, headers=as_customer(C), json=hold_body).json()
    call("POST", "/api/slots/hold", 409, headers=as_customer(B), json=hold_body)
    call("POST", "/api/slots/hold", 401, json=hold_body)
    call("POST", "/api/slots/hold", 422, headers=as_customer(C), json={**hold_body, "durationMinutes": 50})
    call("POST", "/api/slots/hold", 400, headers=as_customer(C), json=[hold_body])
    call("DELETE", "/api/slots/hold/{holdId}", 404, headers=as_customer(B), path=hold)
    call("DELETE", "/api/slots/hold/{holdId}", 401, path=hold)
    call("DELETE", "/api/slots/hold/{holdId}", 204, headers=as_customer(C), path=hold)

    # Booking: A and B online, both starts before their windows are opened below.
    candidates = [stack.slot(days=2 + d, hour=h) for d in range(5) for h in range(9, 15)]
    a = book_first_free(stack, A, candidates, MATLEENA.expert_id, "loans.home-loan")
    a_start = datetime.fromisoformat(a["start"].replace("Z", "+00:00"))
    b = book_first_free(stack, B, [t for t in candidates if t >= a_start], MAIJA.expert_id, "savings.funds")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    later = [t + timedelta(days=7) for t in candidates]
    for start in later:  # C: a fresh booking with an Idempotency-Key, replayed
        c_body = booking(start, MAIJA.expert_id, "savings.funds")
        r = stack.host.request("POST", "/api/appointments", headers=as_customer(C, **key), json=c_body)
        if r.status_code != 409:
            break
    c = call.validate(r, "POST", "/api/appointments", 201).json()
    stack.host.wait_idle()
    replay = call("POST", "/api/appointments", 200, headers=as_customer(C, **key), json=c_body)
    assert replay.json()["bookingCode"] == c["bookingCode"]
    other = {**c_body, "durationMinutes": 30}
    call("POST", "/api/appointments", 422, headers=as_customer(C, **key), json=other)
    call("POST", "/api/appointments", 409, headers=as_customer(intruder), json=c_body)
    call("POST", "/api/appointments", 401, json=c_body)
    call("POST", "/api/appointments", 400, headers=as_customer(C), content=b"{nope")

    # Reading, looking up, changing, cancelling.
    call("GET", "/api/appointments", 200, headers=as_customer(A))
    call("GET", "/api/appointments", 401)
    code_a = {"code": a["bookingCode"]}
    call("GET", APPT, 200, headers=as_customer(A), path=code_a)
    call("GET", APPT, 404, headers=as_customer(intruder), path=code_a)
    lookup = {"bookingCode": a["bookingCode"], "phone": PHONE}
    found = call("POST", "/api/appointments/lookup", 200, headers=forwarded, json=lookup).json()
    token = {"X-Booking-Token": found["manageToken"]}
    call("GET", APPT, 200, headers=token, path=code_a)
    ics = call("GET", APPT + "/calendar", 200, headers=token, path=code_a)
    assert f"UID:{a['bookingCode']}@" in ics.text
    call("GET", APPT + "/calendar", 404, headers=as_customer(intruder), path=code_a)
    call("GET", APPT, 401, headers={"X-Booking-Token": "forged.token"}, path=code_a)
    call("POST", "/api/appointments/lookup", 422, headers=forwarded, json={"bookingCode": "x", "phone": "1"})
    call("POST", "/api/appointments/lookup", 400, headers=forwarded, json="nope")
    wrong_phone = {**lookup, "phone": "+358409999999"}
    for _ in range(3):
        call("POST", "/api/appointments/lookup", 404, headers=forwarded, json=wrong_phone)
    call("POST", "/api/appointments/lookup", 429, headers=forwarded, json=lookup)

    call("PATCH", APPT, 200, headers=token, path=code_a, json={"topic": "loans.consumer"})
    call("PATCH", APPT, 422, headers=token, path=code_a, json={})
    call("PATCH", APPT, 400, headers=token, path=code_a, content=b"[")
    call("PATCH", APPT, 401, path=code_a, json={"topic": "loans.consumer"})
    call("PATCH", APPT, 404, headers=as_customer(intruder), path=code_a, json={"topic": "loans.consumer"})
    code_c = {"code": c["bookingCode"]}
    call("DELETE", APPT, 404, headers=as_customer(intruder), path=code_c)
    call("DELETE", APPT, 401, path=code_c)
    call("DELETE", APPT, 200, headers=as_customer(C), path=code_c)

    # Before the join window.
    call("POST", JOIN, 409, headers=as_customer(A), path=code_a)
    call("POST", JOIN, 401, path=code_a)
    call("POST", JOIN, 404, headers=as_customer(intruder), path=code_a)
    call("POST", VERIFY, 409, headers=as_customer(A), path=code_a, json={"code": "123456"})
    call("POST", VERIFY, 422, headers=as_customer(A), path=code_a, json={"code": "12"})
    call("POST", VERIFY, 400, headers=as_customer(A), path=code_a, content=b"{")
    call("POST", VERIFY, 401, path=code_a, json={"code": "123456"})
    call("POST", VERIFY, 404, headers=as_customer(intruder), path=code_a, json={"code": "123456"})
    issue = "/api/expert/appointments/{code}/identification-code"
    end = "/api/expert/appointments/{code}/end"
    matleena = as_expert(MATLEENA.expert_id)
    call("POST", issue, 409, headers=matleena, path=code_a)
    call("POST", issue, 404, headers=as_expert(MAIJA.expert_id), path=code_a)
    call("POST", issue, 403, headers=as_customer(A), path=code_a)
    call("POST", issue, 401, path=code_a)
    call("POST", end, 409, headers=matleena, path=code_a)
    call("POST", end, 404, headers=as_expert(MAIJA.expert_id), path=code_a)
    call("POST", end, 403, headers=as_customer(A), path=code_a)
    call("POST", end, 401, path=code_a)
    expert_day = "/api/expert/appointments"
    call("GET", expert_day, 200, headers=matleena, params={"date": a["start"][:10]})
    call("GET", expert_day, 400, headers=matleena, params={"date": "31.12.2026"})
    call("GET", expert_day, 403, headers=as_customer(A))
    call("GET", expert_day, 401)

    # In the meeting: A is verified and ended; B's codes expire, get locked, and throttle.
    to_window(stack, a["start"])
    joined = call("POST", JOIN, 200, headers=as_customer(A), path=code_a).json()
    assert joined["phase"] == "lobby"
    secret = call("POST", issue, 201, headers=matleena, path=code_a).json()["code"]
    wrong = "000000" if secret != "000000" else "111111"
    call("POST", VERIFY, 422, headers=as_customer(A), path=code_a, json={"code": wrong})
    call("POST", VERIFY, 200, headers=as_customer(A), path=code_a, json={"code": secret})
    call("GET", expert_day, 200, headers=matleena, params={"date": a["start"][:10]})
    call("PATCH", APPT, 409, headers=as_customer(A), path=code_a, json={"topic": "loans.home-loan"})
    call("DELETE", APPT, 409, headers=as_customer(A), path=code_a)
    call("POST", end, 202, headers=matleena, path=code_a)
    stack.host.wait_idle()
    call("POST", JOIN, 410, headers=as_customer(A), path=code_a)
    call("PATCH", APPT, 410, headers=as_customer(A), path=code_a, json={"topic": "loans.home-loan"})
    call("DELETE", APPT, 410, headers=as_customer(A), path=code_a)

    code_b = {"code": b["bookingCode"]}
    maija = as_expert(MAIJA.expert_id)
    to_window(stack, b["start"])
    call("POST", JOIN, 200, headers=as_customer(B), path=code_b)
    expired = call("POST", issue, 201, headers=maija, path=code_b).json()["code"]
    stack.host.advance(minutes=10, seconds=1)
    stack.host.wait_idle()
    call("POST", VERIFY, 410, headers=as_customer(B), path=code_b, json={"code": expired})
    secret = call("POST", issue, 201, headers=maija, path=code_b).json()["code"]
    wrong = "000000" if secret != "000000" else "111111"
    call("POST", VERIFY, 422, headers=as_customer(B), path=code_b, json={"code": wrong})
    call("POST", VERIFY, 422, headers=as_customer(B), path=code_b, json={"code": wrong})
    call("POST", VERIFY, 423, headers=as_customer(B), path=code_b, json={"code": wrong})
    call("POST", VERIFY, 429, headers=as_customer(B), path=code_b, json={"code": secret})
    call("POST", end, 202, headers=maija, path=code_b)

    # Operators and Graph.
    call("GET", OPS, 200, headers=key_header)
    call("GET", OPS, 200, params={"phase": "ended", "code": stack.host.function_key})
    call("GET", OPS, 400, headers=key_header, params={"phase": "x"})
    call("GET", OPS, 401)
    day = {"date": b["start"][:10], "attention": "false", "limit": "1"}
    call("GET", OPS, 200, headers=key_header, params=day)
    call("GET", OPS + "/{code}", 200, headers=key_header, path=code_b)
    call("GET", OPS + "/{code}", 404, headers=key_header, path={"code": "NOPE2345"})
    call("GET", OPS + "/{code}", 401, path=code_b)
    handshake = call("POST", GRAPH, 200, params={"validationToken": "hello token"})
    assert handshake.text == "hello token"
    call("POST", GRAPH, 202, params={"appointment": a["bookingCode"]}, json={"value": []})
    # An empty ?validationToken= never reaches the function: the host drops empty query values
    # (GrpcMessageConversionExtensions.ToRpcHttp); an over-long one is refused.
    call("POST", GRAPH, 400, params={"validationToken": "x" * 5000})
    call("POST", GRAPH, 400, params={"appointment": a["bookingCode"]}, content=b"nope")
    call("GET", "/api/openapi.json", 200)

    # Every route: a success and an error (the public, error-free reads excepted).
    no_errors = {("GET", "/api/topics"), ("GET", "/api/openapi.json")}
    for _name, route, method, _level in registered_routes():
        statuses = call.seen.get((method, route), set())
        assert any(s < 300 for s in statuses), f"no success checked for {method} {route}"
        assert (method, route) in no_errors or any(s >= 400 for s in statuses), (
            f"no error checked for {method} {route}"
        )
