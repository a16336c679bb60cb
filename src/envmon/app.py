"""Composition of the running service: settings → database → catalog → sink.

Each resource is opened by one async context manager and closed by it, in
reverse order; the CLI commands and ``envmon run`` share these.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from envmon.catalog import Catalog, load_catalog
from envmon.db import migrate as migrations
from envmon.db.availability import check_reachable, is_unavailable, unreachable
from envmon.db.catalog_sync import SyncResult, sync_catalog
from envmon.db.connection import database_url, embedded_cluster, open_pool
from envmon.db.spool import Spool
from envmon.db.writer import Writer
from envmon.ingest.sink import Intake, Sink
from envmon.schemas.readings import Validator
from envmon.settings import Settings


def ensure_database(settings: Settings, *, migrate: bool = True) -> str:
    """Start the embedded cluster when no external server is configured; migrate.

    Raises :class:`~envmon.errors.DatabaseUnavailable` with one line saying
    where the database is and what to do when it cannot be reached.
    """
    if settings.uses_embedded:
        embedded_cluster(settings).start()
    url = database_url(settings)
    check_reachable(url, embedded=settings.uses_embedded)
    if migrate:
        try:
            migrations.migrate(url, migrations.Options.from_settings(settings))
        except psycopg.OperationalError as err:  # gone between the check and here
            if is_unavailable(err):
                raise unreachable(url, err, embedded=settings.uses_embedded) from err
            raise
    return url


def validator_for(catalog: Catalog, settings: Settings) -> Validator:
    from datetime import timedelta

    return Validator(
        {s.id: s.kind for s in catalog.stations},
        max_future=timedelta(minutes=settings.writer.max_future_minutes),
        names=catalog.names,
    )


@dataclass
class App:
    """The running service's shared parts, assembled once.

    It only holds them: the sink stores (``envmon.ingest.sink``), the parts
    are handed to each source separately, and no part imports this module.
    """

    settings: Settings
    catalog: Catalog
    pool: AsyncConnectionPool[AsyncConnection[TupleRow]]
    sink: Sink
    validator: Validator

    @property
    def intake(self) -> Intake:
        """What a source is handed."""
        return Intake(self.sink, self.validator, self.catalog, self.pool)

    async def load_stations(self) -> SyncResult:
        async with self.pool.connection() as conn:
            return await sync_catalog(conn, self.catalog)


@asynccontextmanager
async def open_app(settings: Settings, *, url: str | None = None) -> AsyncIterator[App]:
    catalog = load_catalog(settings.stations_path)
    async with open_pool(settings, url=url) as pool:
        sink = Sink(Writer(pool), Spool(settings.spool_dir))
        yield App(settings, catalog, pool, sink, validator_for(catalog, settings))
