"""The operators' read model on the Appointments table: filtered, paged, and blind to personal data.

The query selects only the columns an operator may see, so a phone number or an e-mail never
even leaves storage on this path. Pages follow the Table service's own continuation (the next
PartitionKey/RowKey), handed out as an opaque token; rows come in table order, not by time.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import HttpResponseError

from adapters.tables import TableRepository
from adapters.tables.mappers import APPOINTMENTS
from appointments.model import Phase
from appointments.timerules import iso

COLUMNS = [
    "RowKey",
    "Phase",
    "PhaseSince",
    "Channel",
    "TopicId",
    "ExpertId",
    "Start",
    "DurationMinutes",
    "Attention",
    "Revision",
]
MAX_PAGE = 100
# A token names one row: a partition (a customer id, at most 136 characters) and a booking code.
MAX_TOKEN = 512


class BadToken(ValueError):
    """The continuation token was not one we handed out."""


@dataclass(frozen=True)
class OpsFilter:
    phase: Phase | None = None
    start_from: datetime | None = None  # aware UTC, inclusive
    start_to: datetime | None = None  # aware UTC, exclusive
    attention: bool | None = None  # True: only those needing attention; False: only those not


def encode_token(token: dict[str, str] | None) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode()).decode()


def decode_token(raw: str) -> dict[str, str]:
    if len(raw) > MAX_TOKEN:
        raise BadToken("not a continuation token")
    try:
        value = json.loads(base64.urlsafe_b64decode(raw.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise BadToken("not a continuation token") from exc
    if (
        not isinstance(value, dict)
        or not value
        or set(value) - {"PartitionKey", "RowKey"}
        or not all(isinstance(v, str) and len(v) <= 256 for v in value.values())
    ):
        raise BadToken("not a continuation token")
    return value


def _query(f: OpsFilter) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if f.phase is not None:
        clauses.append("Phase eq @phase")
        params["phase"] = f.phase.value
    if f.start_from is not None:
        clauses.append("Start ge @from")
        params["from"] = iso(f.start_from)
    if f.start_to is not None:
        clauses.append("Start lt @to")
        params["to"] = iso(f.start_to)
    if f.attention is not None:
        clauses.append("Attention ne @none" if f.attention else "Attention eq @none")
        params["none"] = ""
    return " and ".join(clauses), params


def row_view(row: Any) -> dict[str, Any]:
    code = row["RowKey"]
    return {
        "bookingCode": code,
        "instanceId": f"appt-{code}",
        "phase": row["Phase"],
        "phaseSince": row.get("PhaseSince") or None,
        "channel": row["Channel"],
        "topic": row.get("TopicId"),
        "expertId": row["ExpertId"],
        "start": row["Start"],
        "durationMinutes": int(row["DurationMinutes"]),
        "attention": row.get("Attention") or None,
        "revision": int(row.get("Revision", 0)),
    }


def page(
    repo: TableRepository, f: OpsFilter, *, limit: int, token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of matching appointments and the token for the next one (None on the last)."""
    continuation = decode_token(token) if token else None
    query, params = _query(f)
    table = repo.table(APPOINTMENTS)
    if query:
        found = table.query_entities(query, parameters=params, select=COLUMNS, results_per_page=limit)
    else:
        found = table.list_entities(select=COLUMNS, results_per_page=limit)
    # The Table SDK's continuation is the next keys as a dict, whatever ItemPaged's annotation says.
    pages = found.by_page(continuation_token=continuation)  # type: ignore[arg-type]
    try:
        rows = [row_view(r) for r in next(pages, [])]
    except HttpResponseError as exc:
        if continuation is not None and exc.status_code == 400:
            raise BadToken("the Table service refused the continuation") from exc
        raise
    return rows, encode_token(pages.continuation_token)  # type: ignore[attr-defined]
