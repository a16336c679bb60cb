"""The API's routes, one module per resource family."""

from __future__ import annotations

from aiohttp import web

from envmon.api.routes import (
    alerts,
    aqi,
    evaluation,
    exports,
    readings,
    review,
    stations,
    system,
    water,
)

ROUTES: list[web.RouteDef] = [
    *stations.ROUTES,
    *readings.ROUTES,
    *exports.ROUTES,
    *aqi.ROUTES,
    *water.ROUTES,
    *evaluation.ROUTES,
    *alerts.ROUTES,
    *review.ROUTES,
    *system.ROUTES,
]
