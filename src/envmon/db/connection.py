"""Where the database is, and the one connection pool owned by the app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool
from psycopg_pool.base import AttemptWithBackoff

from envmon.db.embedded import EmbeddedCluster
from envmon.settings import Settings
from envmon.timeutil import BEIJING_TZ_NAME


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
    await conn.execute(f"SET TIME ZONE '{BEIJING_TZ_NAME}'")
    await conn.commit()


# After an outage the pool must be back within seconds of the server: psycopg_pool
# doubles the wait between connection attempts up to ``reconnect_timeout`` (after
# a one-minute outage it waited another minute with the server already up).
RECONNECT_MAX_DELAY_S = 2.0


class _CappedBackoff(AttemptWithBackoff):
    """psycopg_pool's back-off (jittered doubling), never longer than a couple of seconds."""

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, RECONNECT_MAX_DELAY_S)


class Pool(AsyncConnectionPool[AsyncConnection[TupleRow]]):
    """The app's pool: reconnects within seconds, and never hands out a dead connection.

    * Reconnection attempts back off to at most :data:`RECONNECT_MAX_DELAY_S`
      and never give up (the database may be down for a long maintenance).
    * Each connection is checked when it is handed out; the first dead one
      (the server restarted) has every idle connection checked at once,
      instead of each client finding its own dead one after a back-off.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._drain: asyncio.Task[None] | None = None
        kwargs.setdefault("check", self._check_alive)
        kwargs.setdefault("reconnect_timeout", 365 * 86400.0)
        super().__init__(*args, **kwargs)

    async def _check_alive(self, conn: AsyncConnection[TupleRow]) -> None:
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            if self._drain is None or self._drain.done():
                self._drain = asyncio.create_task(self._check_idle(), name="pool-check")
            raise

    async def _check_idle(self) -> None:
        with contextlib.suppress(Exception):  # the pool logs what it discards
            await self.check()

    async def _add_connection(
        self, attempt: AttemptWithBackoff | None, growing: bool = False
    ) -> None:
        # psycopg_pool passes the same attempt object to every retry of one
        # connection: starting it as a capped one caps them all.
        await super()._add_connection(
            attempt or _CappedBackoff(timeout=self.reconnect_timeout), growing
        )

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 (the pool's own signature)
        if self._drain is not None and not self._drain.done():
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
        await super().close(timeout)


@asynccontextmanager
async def open_pool(
    settings: Settings, *, url: str | None = None
) -> AsyncIterator[AsyncConnectionPool[AsyncConnection[TupleRow]]]:
    """The app's single pool: opened on entry, closed on exit."""
    pool: AsyncConnectionPool[AsyncConnection[TupleRow]] = Pool(
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
