"""Typed keys of what the API's aiohttp application holds (shared by the route modules)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from envmon.api.metrics import ApiMetrics
from envmon.catalog import Catalog
from envmon.db.spool import Spool
from envmon.settings import ApiSettings


@dataclass(frozen=True)
class ApiParts:
    """What the API reads: the pool, the catalog, and the spool (for /health)."""

    pool: AsyncConnectionPool[AsyncConnection[TupleRow]]
    catalog: Catalog
    spool: Spool | None = None

    def spool_pending(self) -> int:
        return len(self.spool.pending()) if self.spool is not None else 0


ENVMON: web.AppKey[ApiParts] = web.AppKey("envmon", ApiParts)
SETTINGS: web.AppKey[ApiSettings] = web.AppKey("api_settings", ApiSettings)
METRICS: web.AppKey[ApiMetrics] = web.AppKey("api_metrics", ApiMetrics)
EXPORTS: web.AppKey[asyncio.Semaphore] = web.AppKey("exports", asyncio.Semaphore)
