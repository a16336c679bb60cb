"""The writer: validated batches → ``reading`` by binary COPY and one upsert.

Each batch is COPYed into a temporary staging table and merged with a single
``INSERT … ON CONFLICT DO UPDATE … WHERE changed`` statement, so that an
identical resend changes nothing, a corrected value or flag replaces the old
one (late corrections are normal) and the counts say which was which.

When the database cannot be reached, batches go to the durable spool and are
replayed, in order, before anything newer is written. Only a lost or unreachable
server counts as "cannot be reached" (:func:`connection_lost`); a batch the server
refuses for any other reason raises :class:`WriteRefused` and is never spooled, so
it cannot hold up the spool or the batches after it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from envmon.db.copy_binary import STAGE_DDL, stage_rows
from envmon.db.spool import Spool
from envmon.errors import DatabaseUnavailable, WriteRefused
from envmon.log import db_logger as logger
from envmon.schemas.readings import ReadingBatch, Rejection

Pool = AsyncConnectionPool[AsyncConnection[TupleRow]]

# The fast path: a batch of new readings (the normal case: live data, a bulk
# import) is a plain INSERT, about 1.5× faster than the upsert; it runs inside a
# savepoint, and the first existing key sends the batch to the upsert instead.
INSERT_NEW = """
INSERT INTO reading (station_id, parameter, period, ts, value, flag, source, received_at)
SELECT (%(s)s::text[])[si], (%(p)s::text[])[pi], (%(r)s::text[])[ri], ts, value,
       (%(f)s::text[])[fi], %(source)s, now()
FROM reading_stage
"""
MARK_NEW = """
INSERT INTO derive_dirty (station_id, day)
SELECT DISTINCT (%(s)s::text[])[si], (ts AT TIME ZONE 'Asia/Shanghai')::date FROM reading_stage
ON CONFLICT (station_id, day) DO UPDATE SET marked_at = now()
"""

# One statement: merge the staged rows, and queue the (station, Beijing day)
# pairs that really changed for the derived tables (evaluate/derive.py).
UPSERT = """
WITH up AS (
    INSERT INTO reading AS r (station_id, parameter, period, ts, value, flag, source, received_at)
    SELECT (%(s)s::text[])[si], (%(p)s::text[])[pi], (%(r)s::text[])[ri], ts, value,
           (%(f)s::text[])[fi], %(source)s, now()
    FROM reading_stage
    ON CONFLICT (station_id, parameter, period, ts) DO UPDATE
        SET value = EXCLUDED.value, flag = EXCLUDED.flag,
            source = EXCLUDED.source, received_at = EXCLUDED.received_at
        WHERE (r.value, r.flag) IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.flag)
    RETURNING station_id, ts, (xmax = 0) AS inserted
), dirty AS (
    INSERT INTO derive_dirty (station_id, day)
    SELECT DISTINCT station_id, (ts AT TIME ZONE 'Asia/Shanghai')::date FROM up
    ON CONFLICT (station_id, day) DO UPDATE SET marked_at = now()
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up
"""


@dataclass
class WriteResult:
    """What happened to the readings handed to the writer."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0  # same key twice in one batch: the later one was kept
    rejected: int = 0
    spooled: int = 0

    def __iadd__(self, other: WriteResult) -> WriteResult:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    @property
    def accepted(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.duplicates

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# Writes into compressed TimescaleDB chunks (a re-import, a backfill older than the
# compression horizon) decompress the rows they touch; the extension refuses a
# transaction that decompresses more than 100,000 (SQLSTATE 53400). The writer's own
# transactions lift that limit (0 = none). On plain PostgreSQL the name is an
# ordinary placeholder setting and changes nothing.
NO_DECOMPRESSION_LIMIT = "SET LOCAL timescaledb.max_tuples_decompressed_per_dml_transaction = 0"

# SQLSTATEs that mean the server went away: class 08 (connection exception) and
# admin/crash shutdown, cannot-connect-now (57P01–57P03).
_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})


def connection_lost(err: BaseException) -> bool:
    """Whether ``err`` means "the database cannot be reached" (spool and retry later).

    Only connection-class failures do: no connection from the pool in time, a
    closed or broken connection (psycopg raises these without a SQLSTATE), class
    08 and the shutdown states. Everything else — a limit (53400), a constraint,
    a cancelled statement — is the server refusing this batch.
    """
    if isinstance(err, PoolTimeout):
        return True
    if not isinstance(err, psycopg.Error):
        return False
    state = err.sqlstate
    if state is None:
        return isinstance(err, psycopg.OperationalError)
    return state.startswith("08") or state in _SHUTDOWN_STATES


def _classify(err: psycopg.Error | PoolTimeout) -> DatabaseUnavailable | WriteRefused:
    if connection_lost(err):
        return DatabaseUnavailable(str(err))
    state = getattr(err, "sqlstate", None)
    return WriteRefused(f"the database refused the batch ({state or type(err).__name__}): {err}")


def dedupe(batch: ReadingBatch) -> tuple[ReadingBatch, int]:
    """Keep the last reading of each key within one batch."""
    if len(batch) < 2:
        return batch, 0
    # Integer codes, not the strings: hashing ints is cheaper, and pandas would
    # otherwise convert the object arrays to its string dtype first.
    keys = pd.DataFrame(
        {
            "s": pd.factorize(batch.station_id)[0],
            "p": pd.factorize(batch.parameter)[0],
            "r": pd.factorize(batch.period)[0],
            "t": batch.ts.astype(np.int64),
        }
    )
    dup = keys.duplicated(keep="last").to_numpy()
    n = int(dup.sum())
    if n == 0:
        return batch, 0
    return batch.take(~dup), n


class Writer:
    def __init__(
        self,
        pool: Pool,
        spool: Spool,
        *,
        timeout: float = 5.0,
        parallel: int = 2,
        parallel_min_rows: int = 20_000,
        retry_after: float = 5.0,
    ) -> None:
        self.pool = pool
        self.spool = spool
        self.timeout = timeout
        self.parallel = parallel
        self.parallel_min_rows = parallel_min_rows
        self.retry_after = retry_after
        self._down_until = 0.0

    # While the database is known to be down, batches go straight to the spool
    # instead of each waiting ``timeout`` for a connection (a circuit breaker):
    # ingestion stays fast, and the first write after ``retry_after`` tries again.
    def _known_down(self) -> bool:
        return time.monotonic() < self._down_until

    def _mark_down(self) -> None:
        self._down_until = time.monotonic() + self.retry_after

    async def write(self, batch: ReadingBatch, rejects: Sequence[Rejection] = ()) -> WriteResult:
        """Store a validated batch and its rejects; spool them if the database is down."""
        result = WriteResult(rejected=len(rejects))
        if self.spool.pending() and not self._known_down():
            try:
                await self.replay_spool()
            except DatabaseUnavailable:
                self._mark_down()
        if self.spool.pending() or self._known_down():
            # Still down, or not yet drained: keep the order by spooling behind.
            if len(batch):
                self.spool.append_batch(batch)
                result.spooled += len(batch)
            if rejects:
                self.spool.append_rejects(list(rejects))
            return result
        if len(batch):
            result += await self._write_partitioned(batch)
        if rejects:
            try:
                await self._write_rejects(rejects)
            except DatabaseUnavailable:
                self._mark_down()
                self.spool.append_rejects(list(rejects))
        return result

    async def _write_partitioned(self, batch: ReadingBatch) -> WriteResult:
        """Large batches are split by station over ``parallel`` connections.

        The merge is CPU-bound in the server; two backends use both cores of a
        small server. A station's readings always go to the same part, so the
        file order of one key is kept. A part that finds the database down is
        spooled on its own; parts already committed stay committed.
        """
        batch, duplicates = dedupe(batch)
        result = WriteResult(duplicates=duplicates)
        if self.parallel < 2 or len(batch) < self.parallel_min_rows:
            parts = [batch]
        else:
            codes, _ = pd.factorize(batch.station_id)
            parts = [batch.take(codes % self.parallel == k) for k in range(self.parallel)]
            parts = [p for p in parts if len(p)]
        outcomes = await asyncio.gather(
            *(self._write_staged(p) for p in parts), return_exceptions=True
        )
        for part, outcome in zip(parts, outcomes, strict=True):
            if isinstance(outcome, DatabaseUnavailable):
                self._mark_down()
                self.spool.append_batch(part)
                result.spooled += len(part)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                result += outcome
        return result

    async def _write_batch(self, batch: ReadingBatch) -> WriteResult:
        batch, duplicates = dedupe(batch)
        result = await self._write_staged(batch)
        result.duplicates += duplicates
        return result

    async def _write_staged(self, batch: ReadingBatch) -> WriteResult:
        si, s_u = pd.factorize(batch.station_id)
        pi, p_u = pd.factorize(batch.parameter)
        ri, r_u = pd.factorize(batch.period)
        fi, f_u = pd.factorize(batch.flag)
        data = stage_rows(si + 1, pi + 1, ri + 1, batch.ts, batch.value, fi + 1)
        params: dict[str, Any] = {
            "s": [str(x) for x in s_u],
            "p": [str(x) for x in p_u],
            "r": [str(x) for x in r_u],
            "f": [str(x) for x in f_u],
            "source": batch.source,
        }
        try:
            async with self.pool.connection(timeout=self.timeout) as conn:
                async with conn.transaction():
                    await conn.execute(NO_DECOMPRESSION_LIMIT)
                    await conn.execute(STAGE_DDL)
                    async with conn.cursor().copy(
                        "COPY reading_stage FROM STDIN (FORMAT BINARY)"
                    ) as copy:
                        await copy.write(data)
                    try:
                        async with conn.transaction():  # a savepoint
                            cur = await conn.execute(INSERT_NEW, params)
                            inserted = cur.rowcount
                            await conn.execute(MARK_NEW, params)
                        return WriteResult(inserted=inserted)
                    except psycopg.errors.UniqueViolation:
                        pass  # some keys exist: merge instead
                    cur = await conn.execute(UPSERT, params)
                    row = await cur.fetchone()
        except (psycopg.Error, PoolTimeout) as err:
            raise _classify(err) from err
        inserted, updated = (int(row[0]), int(row[1])) if row else (0, 0)
        return WriteResult(
            inserted=inserted,
            updated=updated,
            unchanged=len(batch) - inserted - updated,
        )

    async def _write_rejects(self, rejects: Sequence[Rejection]) -> None:
        try:
            async with self.pool.connection(timeout=self.timeout) as conn:
                async with conn.transaction():
                    async with conn.cursor().copy(
                        "COPY rejected (source, station_id, parameter, ts, raw, reason) FROM STDIN"
                    ) as copy:
                        for r in rejects:
                            await copy.write_row(
                                (
                                    r.source,
                                    r.station_id,
                                    r.parameter,
                                    r.ts,
                                    r.raw.replace("\x00", ""),
                                    r.reason,
                                )
                            )
        except (psycopg.Error, PoolTimeout) as err:
            raise _classify(err) from err

    async def replay_spool(self) -> WriteResult:
        """Write what the spool holds, oldest first; stops (raising) if the database is down.

        A file the server refuses for another reason is moved to ``refused/`` in the
        spool directory (kept for the operator, logged) and replay goes on.
        """
        total = WriteResult()
        for path in self.spool.pending():
            item = Spool.load(path)
            try:
                if isinstance(item, ReadingBatch):
                    total += await self._write_batch(item)
                else:
                    await self._write_rejects(item)
                    total.rejected += len(item)
            except WriteRefused as err:
                refused = path.parent / "refused"
                refused.mkdir(exist_ok=True)
                path.replace(refused / path.name)
                logger.error("spool file refused, moved to %s: %s", refused / path.name, err)
                continue
            path.unlink()
            logger.info("spool replayed file=%s", path.name)
        return total
