"""The aiohttp application and :class:`ApiServer`, the async context manager that serves it.

``envmon run`` opens one ``ApiServer(pool, catalog, settings.api, sink=sink)``
beside its other resources: it binds host/port (port 0 = any free port, read
back from ``.port``), listens to the sink for the ingest counters of
``/metrics``, and on exit stops accepting, lets running requests finish for a
moment, and stops listening.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Final

import psycopg
from aiohttp import web
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from envmon.api.auth import check, role_of
from envmon.api.keys import ENVMON, EXPORTS, METRICS, SETTINGS, ApiParts
from envmon.api.lowlevel import ApiRunner, server_error
from envmon.api.metrics import ApiMetrics
from envmon.api.problems import Problem
from envmon.api.routes import ROUTES
from envmon.catalog import Catalog
from envmon.errors import ConfigError
from envmon.ingest.sink import Sink
from envmon.settings import ApiSettings

logger = logging.getLogger(__name__)
Pool = AsyncConnectionPool[AsyncConnection[TupleRow]]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SHUTDOWN_TIMEOUT_S: Final = 10.0
MAX_REQUEST_BYTES: Final = 64 * 1024


def _route_name(request: web.Request) -> str:
    info = request.match_info
    if isinstance(info, web.UrlMappingMatchInfo) and info.route.resource is not None:
        return info.route.resource.canonical
    return "unmatched"


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as problem details; the request is counted and timed."""
    t0 = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except Problem as p:
        status = p.status
        return p.response(request.path)
    except web.HTTPException as exc:
        status = exc.status
        if exc.status < 400:
            raise
        detail = {
            404: f"no such resource: {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
        }.get(exc.status, exc.reason)
        return Problem(exc.status, detail, headers=_allow(exc)).response(request.path)
    except psycopg.errors.QueryCanceled:
        status = 503
        return Problem(
            503,
            "the query ran longer than the request time limit; narrow the range or stations",
            kind="query-timeout",
        ).response(request.path)
    except (psycopg.OperationalError, PoolTimeout) as err:
        status = 503
        logger.warning("api: database unavailable path=%s: %s", request.path, err)
        return Problem(
            503,
            "the database is not available right now",
            kind="database-unavailable",
            headers={"Retry-After": "30"},
        ).response(request.path)
    except ConnectionResetError:  # the client went away mid-stream: nothing to answer
        status = 499
        raise
    except Exception as err:  # logged once, with a request id (no traceback on the console)
        return server_error(request, err)
    finally:
        request.app[METRICS].observe(
            _route_name(request), request.method, status, time.perf_counter() - t0
        )


def _allow(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    info = request.match_info
    if isinstance(info, web.UrlMappingMatchInfo) and info.http_exception is None:
        check(request, role_of(request))
    return await handler(request)


def build_app(
    parts: ApiParts, settings: ApiSettings, metrics: ApiMetrics | None = None
) -> web.Application:
    """The aiohttp application over an open pool and the catalog."""
    web_app = web.Application(
        middlewares=[problems_middleware, auth_middleware], client_max_size=MAX_REQUEST_BYTES
    )
    web_app[ENVMON] = parts
    web_app[SETTINGS] = settings
    web_app[METRICS] = metrics or ApiMetrics()
    web_app[EXPORTS] = asyncio.Semaphore(settings.max_concurrent_exports)
    web_app.add_routes(ROUTES)
    return web_app


class ApiServer:
    """Serve the API for the lifetime of an ``async with`` block."""

    def __init__(
        self,
        pool: Pool,
        catalog: Catalog,
        settings: ApiSettings,
        *,
        sink: Sink | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = ApiMetrics()
        self._sink = sink
        self._unlisten: Callable[[], None] | None = None
        parts = ApiParts(pool, catalog, sink.spool if sink is not None else None)
        self.web_app = build_app(parts, settings, self.metrics)
        self._runner: web.AppRunner | None = None
        self.port: int = settings.port
        self.host: str = settings.host

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> ApiServer:
        if self.settings.read_token is None and self.settings.admin_token is None:
            logger.warning(
                "api: no tokens configured (ENVMON_API__READ_TOKEN, ENVMON_API__ADMIN_TOKEN): "
                "every endpoint but /api/v1/health answers 401"
            )
        runner = ApiRunner(self.web_app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port, reuse_address=True)
        try:
            await site.start()
        except OSError as err:
            await runner.cleanup()
            raise ConfigError(
                f"api: cannot listen on {self.settings.host}:{self.settings.port}: {err}"
            ) from err
        self._runner = runner
        sockets = [a for a in runner.addresses if isinstance(a, tuple)]
        if sockets:
            self.port = int(sockets[0][1])
        if self._sink is not None:
            self._unlisten = self._sink.listen(self.metrics.on_batch)
        logger.info("api: listening on %s", self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        logger.info("api: stopped")
