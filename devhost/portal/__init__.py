"""The demo portal: static customer and expert pages that use only the public HTTP API.

The devhost serves it next to the app's functions (same origin, so the pages call ``/api`` and
``/dev`` with relative URLs)::

    host.add_routes(portal.routes())   # or portal.mount(host.web_app)

``/`` redirects to ``/portal/``. There is no build step: one HTML page, one ES module, one
stylesheet. Only the files listed in ``FILES`` are served, so nothing else in the package
directory (this module, caches) leaks out.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).parent / "static"
FILES: dict[str, str] = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "styles.css": "text/css",
    "ops.html": "text/html",  # the operators' page (function key), apart from the customer/expert one
    "ops.js": "text/javascript",
}
# The pages load nothing from elsewhere; the Teams join link opens in a new window, which
# the policy does not govern.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The demo changes while one works on it; a stale app.js would be confusing.
    "Cache-Control": "no-cache",
}


async def _serve(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("name") or "index.html"
    content_type = FILES.get(name)
    if content_type is None:
        raise web.HTTPNotFound(text="not part of the portal")
    body = (STATIC_DIR / name).read_bytes()
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=SECURITY_HEADERS)


async def _to_portal(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/portal/")


def routes() -> list[web.RouteDef]:
    """The portal's routes: ``/portal/`` (index), ``/portal/{file}``, and ``/`` → ``/portal/``."""
    return [
        web.get("/", _to_portal),
        web.get("/portal", _to_portal),
        web.get("/portal/", _serve),
        web.get("/portal/{name}", _serve),
    ]


def mount(web_app: web.Application) -> None:
    """Add the portal's routes to an aiohttp application (before it starts)."""
    web_app.add_routes(routes())
