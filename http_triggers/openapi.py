"""``GET /api/openapi.json``: the hand-written OpenAPI 3.1 document of the API, ``openapi/openapi.json``.

Public, like the catalogue: it describes routes, not data. The file is read once, on the
first request, and served as is afterwards.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

DOCUMENT = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)


@cache
def document() -> bytes:
    return DOCUMENT.read_bytes()


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        document(),
        status_code=200,
        mimetype="application/json",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )
