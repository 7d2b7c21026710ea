"""Who is calling: the principal App Service Authentication puts in ``X-MS-CLIENT-PRINCIPAL``.

In Azure, App Service Authentication (Easy Auth) sits in front of the app, strips
any client-supplied ``X-MS-*`` headers and sets its own. The app therefore trusts the
header only when platform authentication is on, or when dev mode is explicitly set
(the local host and the demo portal). Anything else is a forged header: 401.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from appointments.errors import Unauthenticated
from appointments.validation import is_key

EXPERT_ROLE = "Expert"
OPS_ROLE = "Operator"
MAX_HEADER = 16 * 1024
MAX_NAME = 200
# Claim types that carry a stable user id, in order of preference.
ID_CLAIMS = (
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "oid",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
    "sub",
)


@dataclass(frozen=True)
class Principal:
    user_id: str
    roles: frozenset[str]
    # The name claim (``name_typ``), e.g. "Maija Meikäläinen": personal data, kept only in the
    # Appointments record so that the expert knows whom they admit.
    name: str | None = None

    @property
    def is_expert(self) -> bool:
        return EXPERT_ROLE in self.roles


def _fail() -> Unauthenticated:
    return Unauthenticated("sign_in")


def parse_principal(header: str | None, *, trusted: bool) -> Principal:
    """Parse the header strictly; raise Unauthenticated for anything but a well-formed principal."""
    if not header:
        raise _fail()
    if not trusted:
        raise Unauthenticated("identity_header_refused")
    if len(header) > MAX_HEADER:
        raise _fail()
    try:
        raw = base64.b64decode(header, validate=True)
        data = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _fail() from None
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise _fail()
    role_type = data.get("role_typ") or "roles"
    name_type = data.get("name_typ") or "name"
    if not isinstance(role_type, str) or not isinstance(name_type, str):
        raise _fail()
    claims: dict[str, str] = {}
    roles: set[str] = set()
    for claim in data["claims"]:
        if not isinstance(claim, dict):
            raise _fail()
        typ, val = claim.get("typ"), claim.get("val")
        if not isinstance(typ, str) or not isinstance(val, str):
            raise _fail()
        if typ in (role_type, "roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"):
            roles.add(val)
        claims.setdefault(typ, val)
    user_id = next((claims[t] for t in ID_CLAIMS if claims.get(t)), None)
    # The id becomes a Table key: only the documented key alphabet (appointments.validation).
    if user_id is None or not is_key(user_id):
        raise _fail()
    name = (claims.get(name_type) or "").strip()
    if len(name) > MAX_NAME or not name.isprintable():
        name = ""
    return Principal(user_id=user_id, roles=frozenset(roles), name=name or None)


def encode_principal(user_id: str, roles: tuple[str, ...] = (), name: str | None = None) -> str:
    """Build a header value the way Easy Auth does (dev mode, tests and the demo portal)."""
    claims = [{"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": user_id}]
    claims += [{"typ": "name", "val": name}] if name else []
    claims += [{"typ": "roles", "val": r} for r in roles]
    body = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return base64.b64encode(json.dumps(body).encode()).decode()
