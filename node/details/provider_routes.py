"""Routes of the detail exchange (filled in by the detail-exchange work)."""

from __future__ import annotations

from aiohttp import web

ROUTES: list[web.RouteDef] = []
