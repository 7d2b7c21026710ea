"""The principal's name claim: what the expert's card shows of the customer, and nothing more."""

from __future__ import annotations

import base64
import json

import pytest

from appointments.principal import encode_principal, parse_principal


def header(claims: list[dict[str, str]], name_typ: str = "name") -> str:
    body = {"auth_typ": "aad", "claims": claims, "name_typ": name_typ, "role_typ": "roles"}
    return base64.b64encode(json.dumps(body).encode()).decode()


OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"


def test_the_name_claim_is_read_with_the_id() -> None:
    """Easy Auth's name claim becomes the principal's name; the id still comes from the oid."""
    who = parse_principal(encode_principal("cust-1", name="Aino Asiakas"), trusted=True)
    assert (who.user_id, who.name) == ("cust-1", "Aino Asiakas")


def test_the_name_claim_type_follows_name_typ() -> None:
    """A provider that names its name claim differently says so in name_typ."""
    given = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
    value = header([{"typ": OID, "val": "c"}, {"typ": given, "val": "Maija Meikäläinen"}], name_typ=given)
    assert parse_principal(value, trusted=True).name == "Maija Meikäläinen"


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "Aino\nAsiakas"])
def test_an_empty_overlong_or_unprintable_name_is_no_name(name: str) -> None:
    """Such a name is dropped rather than stored; the caller is still who they are."""
    who = parse_principal(header([{"typ": OID, "val": "c"}, {"typ": "name", "val": name}]), trusted=True)
    assert (who.user_id, who.name) == ("c", None)


def test_without_a_name_claim_there_is_no_name() -> None:
    """Experts and most test principals carry no name."""
    assert parse_principal(encode_principal("exp-1", ("Expert",)), trusted=True).name is None
