"""Where the database is, and the one connection pool owned by the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg import AsyncConnection
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from envmon.db.embedded import EmbeddedCluster
from envmon.settings import Settings


def embedded_cluster(settings: Settings) -> EmbeddedCluster:
    return EmbeddedCluster(settings.data_dir, settings.embedded_port, bindir=settings.pg_bindir)


def database_url(settings: Settings) -> str:
    """The external server's URL (with DATABASE_PASSWORD, if set), or the embedded cluster's."""
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
        if settings.database_password is not None:
            # libpq's own quoting: a password with @ / # % or spaces needs no URL escaping.
            url = make_conninfo(url, password=settings.database_password.get_secret_value())
        return url
    return embedded_cluster(settings).url()


async def _configure(conn: AsyncConnection[TupleRow]) -> None:
    # Natural days are Beijing days whatever the server's default zone is.
    await conn.execute("SET TIME ZONE 'Asia/Shanghai'")
    await conn.commit()


@asynccontextmanager
async def open_pool(
    settings: Settings, *, url: str | None = None
) -> AsyncIterator[AsyncConnectionPool[AsyncConnection[TupleRow]]]:
    """The app's single pool: opened on entry, closed on exit."""
    pool: AsyncConnectionPool[AsyncConnection[TupleRow]] = AsyncConnectionPool(
        url or database_url(settings),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        configure=_configure,
        open=False,
        name="envmon",
    )
    await pool.open(wait=False)
    try:
        yield pool
    finally:
        await pool.close()
