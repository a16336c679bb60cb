"""Database upkeep the service runs beside ingestion (issues 12 and 19).

* Pruning of short-lived data (``envmon_prune``, migration 0012) once a day on plain
  PostgreSQL; on TimescaleDB the same procedure is a TimescaleDB job and this loop
  leaves it alone.
* The ``grafana_reader`` watchdog: any role may ``SET statement_timeout`` in its own
  session, so the role default alone does not bound a dashboard query; every few
  seconds statements of grafana_reader running past the limit are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from envmon.db.migrate import PRUNE_JOB, Retention
from envmon.db.roles import CANCEL_OVERRUNNING, READER, READER_TIMEOUT_S
from envmon.log import db_logger as logger

Pool = AsyncConnectionPool[AsyncConnection[TupleRow]]
_DAY_S = 86_400.0


async def prune_once(pool: Pool, retention: Retention) -> bool:
    """Prune now unless a TimescaleDB job does it; True if pruned here."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT to_regclass('timescaledb_information.jobs') IS NOT NULL"
            " AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
        )
        row = await cur.fetchone()
        if row and row[0]:
            cur = await conn.execute(
                "SELECT 1 FROM timescaledb_information.jobs WHERE proc_name = %s", (PRUNE_JOB,)
            )
            if await cur.fetchone():
                return False
        await conn.execute(
            "CALL envmon_prune(%s, %s, %s)",
            (retention.minute_days, retention.rejects_days, retention.alert_log_days),
        )
        await conn.commit()
    return True


async def cancel_overrunning_readers(pool: Pool, limit_s: float = READER_TIMEOUT_S) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(CANCEL_OVERRUNNING, (READER, limit_s))
        n = sum(1 for r in await cur.fetchall() if r[0] is True)
    if n:
        logger.warning("cancelled %d %s statement(s) over %.0f s", n, READER, limit_s)
    return n


async def _every(seconds: float, what: str, step: Callable[[], Awaitable[object]]) -> None:
    while True:
        try:
            await step()
        except (psycopg.Error, PoolTimeout) as err:  # the database is down: next round
            logger.warning("%s skipped: %s", what, err)
        await asyncio.sleep(seconds)


@asynccontextmanager
async def upkeep(
    pool: Pool,
    retention: Retention,
    *,
    watchdog_every_s: float = 5.0,
    reader_limit_s: float = READER_TIMEOUT_S,
) -> AsyncIterator[None]:
    tasks = [
        asyncio.create_task(_every(_DAY_S, "pruning", lambda: prune_once(pool, retention))),
        asyncio.create_task(
            _every(
                watchdog_every_s,
                "reader watchdog",
                lambda: cancel_overrunning_readers(pool, reader_limit_s),
            )
        ),
    ]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
