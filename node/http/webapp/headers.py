"""Security headers on every response of the web application (docs/webapp.md).

The policy allows only the node's own origin: no inline script or style, no third-party
origin, no framing. ``img-src data:`` is there for the small SVG icons the NL Design
System CSS embeds (select arrows, checkboxes); an image runs no code.
"""

from __future__ import annotations

from aiohttp import web

from node.http.plumbing import Handler

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
STATIC_PREFIX = "/app/static/"


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as e:  # redirects: they carry the headers too
        _apply(request, e)
        raise
    _apply(request, response)
    return response


def _apply(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    # Pages may hold personal data: no copy in any cache, nor in the browser's history
    # cache. The vendored CSS is revalidated, never kept stale across an upgrade.
    static = request.path.startswith(STATIC_PREFIX)
    response.headers["Cache-Control"] = "no-cache" if static else "no-store"
