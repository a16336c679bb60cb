"""``/api/v1/health`` (no token), ``/api/v1/metrics``, ``/api/v1/openapi.json``, the index
(``/`` and ``/api/v1/``) and the docs page ``/api/v1/docs``."""

from __future__ import annotations

import asyncio
import logging

import psycopg
from aiohttp import web
from psycopg_pool import PoolTimeout

from envmon import __version__
from envmon.api import docs
from envmon.api import metrics as m
from envmon.api.auth import check, requires
from envmon.api.keys import ENVMON, METRICS, SETTINGS
from envmon.api.openapi import spec
from envmon.api.routes.common import json_response

logger = logging.getLogger(__name__)
HEALTH_TIMEOUT_S = 3.0


@requires("public")
async def health(request: web.Request) -> web.Response:
    app = request.app[ENVMON]
    db = "ok"
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S):
            async with app.pool.connection(timeout=HEALTH_TIMEOUT_S) as conn:
                await conn.execute("SELECT 1")
    except (TimeoutError, psycopg.Error, PoolTimeout) as err:
        logger.warning("health: database unavailable: %s", err)
        db = "unavailable"
    pending = app.spool_pending()
    body = {
        "status": "ok" if db == "ok" else "degraded",
        "database": db,
        "spool_pending_files": pending,
        "version": __version__,
    }
    return json_response(body, status=200 if db == "ok" else 503)


@requires("public")  # checked below: public only when metrics_public is set
async def metrics(request: web.Request) -> web.Response:
    if not request.app[SETTINGS].metrics_public:
        check(request, "read")
    app = request.app[ENVMON]
    out = m.render(request.app[METRICS], app.spool_pending())
    up = True
    db = m.Exposition()  # merged only when complete: no half-written families
    try:
        async with app.pool.connection(timeout=HEALTH_TIMEOUT_S) as conn:
            await m.database_metrics(conn, db)
        out.lines += db.lines
    except (psycopg.Error, PoolTimeout) as err:
        logger.warning("metrics: database unavailable: %s", err)
        up = False
    m.database_up(out, up)
    return web.Response(body=out.text().encode(), headers={"Content-Type": m.CONTENT_TYPE})


@requires("public")
async def openapi(request: web.Request) -> web.Response:
    return json_response(spec())


@requires("public")
async def root(request: web.Request) -> web.Response:
    doc = spec()
    if docs.wants_html(request.headers.get("Accept", "")):
        return web.Response(text=docs.index_html(doc), content_type="text/html")
    return json_response(docs.index(doc))


@requires("public")
async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=docs.docs_html(spec()), content_type="text/html")


ROUTES = [
    web.get("/", root, name="root"),
    web.get("/api/v1/", root, name="api_index"),
    web.get("/api/v1/docs", docs_page, name="docs"),
    web.get("/api/v1/health", health, name="health"),
    web.get("/api/v1/metrics", metrics, name="metrics"),
    web.get("/api/v1/openapi.json", openapi, name="openapi"),
]
