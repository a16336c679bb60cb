"""Composition of the running service: settings → database → catalog → writer.

Each resource is opened by one async context manager and closed by it, in
reverse order; the CLI commands and ``envmon run`` share these.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from envmon.catalog import Catalog, load_catalog
from envmon.db import migrate as migrations
from envmon.db.catalog_sync import SyncResult, sync_catalog
from envmon.db.connection import database_url, embedded_cluster, open_pool
from envmon.db.spool import Spool
from envmon.db.writer import Writer, WriteResult
from envmon.schemas.readings import ReadingBatch, ValidationResult, Validator
from envmon.settings import Settings

logger = logging.getLogger(__name__)


def ensure_database(settings: Settings, *, migrate: bool = True) -> str:
    """Start the embedded cluster when no external server is configured; migrate."""
    if settings.uses_embedded:
        embedded_cluster(settings).start()
    url = database_url(settings)
    if migrate:
        migrations.migrate(url)
    return url


def validator_for(catalog: Catalog, settings: Settings) -> Validator:
    from datetime import timedelta

    return Validator(
        {s.id: s.kind for s in catalog.stations},
        max_future=timedelta(minutes=settings.writer.max_future_minutes),
        names=catalog.names,
    )


BatchListener = Callable[[ReadingBatch], Awaitable[None]]


@dataclass
class App:
    """The running service's shared resources.

    Every source stores through :meth:`store`, so that whatever listens to new
    data (the alert engine) sees each accepted batch once, right after it is
    written, whichever source it came from.
    """

    settings: Settings
    catalog: Catalog
    pool: AsyncConnectionPool[AsyncConnection[TupleRow]]
    writer: Writer
    validator: Validator
    listeners: list[BatchListener] = field(default_factory=list)

    async def store(self, validated: ValidationResult) -> WriteResult:
        """Write a validated batch and its rejects, then tell the listeners."""
        result = await self.writer.write(validated.batch, validated.rejected)
        await self.notify(validated.batch)
        return result

    async def notify(self, batch: ReadingBatch) -> None:
        """Tell the listeners about a batch just written (sources that write themselves,
        like the HJ 212 receiver, call this)."""
        if not len(batch):
            return
        for listener in self.listeners:
            try:
                await listener(batch)
            except Exception:  # a listener must not stop ingestion
                logger.exception("batch listener %r failed", listener)

    async def load_stations(self) -> SyncResult:
        async with self.pool.connection() as conn:
            return await sync_catalog(conn, self.catalog)


@asynccontextmanager
async def open_app(settings: Settings, *, url: str | None = None) -> AsyncIterator[App]:
    catalog = load_catalog(settings.stations_path)
    async with open_pool(settings, url=url) as pool:
        writer = Writer(pool, Spool(settings.spool_dir))
        yield App(settings, catalog, pool, writer, validator_for(catalog, settings))


async def status_summary(app: App) -> dict[str, Any]:
    """What ``envmon status`` and ``make run`` print."""
    out: dict[str, Any] = {}
    async with app.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT kind, count(*), count(*) FILTER (WHERE active) FROM station"
                " GROUP BY kind ORDER BY kind"
            )
        ).fetchall()
        out["stations"] = {k: {"total": n, "active": a} for k, n, a in rows}
        rows = await (
            await conn.execute(
                "SELECT s.kind, count(r.*), max(r.ts), count(DISTINCT r.station_id)"
                " FROM station s LEFT JOIN reading r ON r.station_id = s.id"
                " WHERE r.ts > now() - interval '2 days' OR r.ts IS NULL GROUP BY s.kind"
            )
        ).fetchall()
        out["recent_readings"] = {
            k: {"readings_48h": n, "latest": t.isoformat() if t else None, "stations_reporting": c}
            for k, n, t, c in rows
        }
        (total,) = await (await conn.execute("SELECT count(*) FROM reading")).fetchone() or (0,)
        out["readings_total"] = total
        rows = await (
            await conn.execute(
                "SELECT reason, count(*) FROM rejected WHERE received_at > now() - interval '1 day'"
                " GROUP BY reason ORDER BY count(*) DESC LIMIT 5"
            )
        ).fetchall()
        out["rejected_24h"] = {r: n for r, n in rows}
        ts_row = await (
            await conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
        ).fetchone()
        out["timescaledb"] = ts_row[0] if ts_row else None
        ver = await (await conn.execute("SHOW server_version")).fetchone()
        out["postgresql"] = ver[0] if ver else None
        from envmon.ingest.poller import read_health

        out["sources"] = await read_health(conn)
    from envmon.alerts.service import alert_status

    out["alerts"] = await alert_status(app)
    out["spool_pending_files"] = len(app.writer.spool.pending())
    return out
