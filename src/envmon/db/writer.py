"""The writer: validated batches → ``reading`` by binary COPY, or one upsert.

A batch of new readings is COPYed straight into ``reading``. A batch with a
key that exists already is COPYed into a temporary staging table instead and
merged with a single ``INSERT … ON CONFLICT DO UPDATE … WHERE changed``
statement, so that an identical resend changes nothing, a corrected value or
flag replaces the old one (late corrections are normal) and the counts say
which was which.
The replaced version is never lost: a row trigger on ``reading`` (migration
0014) keeps it in ``reading_revision`` within the same statement, with the
reason the writer names (:data:`REVISION_REASONS`) or, by default, "import"
for an ``import:…`` source and "resend" otherwise.

The writer only talks to the database: spooling, quarantine and telling
listeners are the sink's (``envmon.ingest.sink``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from datetime import date
from typing import Any, Final, ParamSpec, TypeVar

import numpy as np
import pandas as pd
import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from envmon.db.copy_binary import READING_COPY, STAGE_DDL, reading_rows, stage_rows
from envmon.errors import DatabaseUnavailable
from envmon.schemas.readings import ReadingBatch, Rejection
from envmon.timeutil import BEIJING_TZ_NAME

Pool = AsyncConnectionPool[AsyncConnection[TupleRow]]
_P = ParamSpec("_P")
_T = TypeVar("_T")

# Writes into compressed TimescaleDB chunks (a re-import, a backfill older than the
# compression horizon) decompress the rows they touch; the extension refuses a
# transaction that decompresses more than 100,000 (SQLSTATE 53400). The writer's own
# transactions lift that limit (0 = none). On plain PostgreSQL the name is an
# ordinary placeholder setting and changes nothing.
NO_DECOMPRESSION_LIMIT = "SET LOCAL timescaledb.max_tuples_decompressed_per_dml_transaction = 0"

# The fast path: a batch of new readings (the normal case: live data, a bulk
# import) is COPYed straight into ``reading``; the first existing key fails the
# COPY, the transaction ends empty, and the batch goes to the staged merge
# instead. A binary COPY into the table costs about half of an INSERT … SELECT
# from a staging table (1 M rows on TimescaleDB, one backend: 4.2 s against
# ~8 s). The days to derive are marked in the same transaction, from literals
# (one simple query, no parameters): every round trip waits for a turn of the
# event loop, which under the HJ 212 receiver's load is what a write mostly costs.
MARK_NEW = sql.SQL("""
INSERT INTO derive_dirty (station_id, day)
SELECT s COLLATE "C", d FROM unnest({s}::text[], {d}::date[]) AS u(s, d) ORDER BY 1, 2
ON CONFLICT (station_id, day) DO UPDATE SET marked_at = now()
""")
# The merge: the limit, and the staging table, in one round trip.
MERGE_PREPARE: Final = f"{NO_DECOMPRESSION_LIMIT}; {STAGE_DDL}"

# Both mark derive_dirty rows in (station, day) order, so two writers marking the
# same days lock them in the same order and cannot deadlock on them. Writers can
# still deadlock on reading keys (a resend to another instance while the first
# batch is open): the database aborts one, and the writer retries it
# (:data:`RETRIES`), as it does a serialization failure.
RETRIES: Final = 3

# Why a stored reading was replaced (reading_revision.reason).
REVISION_REASONS: Final = ("resend", "import", "backfill", "review")
# Read by the revision trigger; local to the writing transaction.
SET_REASON = "SELECT set_config('envmon.revision_reason', %s, true)"

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
    SELECT DISTINCT station_id, bj_day(ts) FROM up ORDER BY 1, 2  -- station_id: COLLATE "C"
    ON CONFLICT (station_id, day) DO UPDATE SET marked_at = now()
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up
"""


REJECT_STAGE_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS rejected_stage (source text, station_id text,"
    " parameter text, ts timestamptz, raw text, reason text, times int) ON COMMIT DELETE ROWS"
)
# A reject seen before gets counted again, keeping where it was first seen.
MERGE_REJECTS = """
INSERT INTO rejected AS j (source, station_id, parameter, ts, raw, reason, times, last_seen_at)
SELECT source, station_id, parameter, ts, raw, reason, times, now() FROM rejected_stage
ON CONFLICT (source, raw_key) DO UPDATE
    SET times = j.times + EXCLUDED.times, last_seen_at = EXCLUDED.last_seen_at
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
    quarantined: int = 0  # refused by the database for another reason: kept on disk

    def __iadd__(self, other: WriteResult) -> WriteResult:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    @property
    def accepted(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.duplicates

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# Beijing has kept UTC+8 all year since its last summer time ended (September
# 1991): from 1992 on, a Beijing day is a whole number of hours after UTC.
_FIXED_UTC8_FROM: Final = int(np.datetime64("1992-01-01T00", "h").astype(np.int64))


def dirty_days(
    station_codes: np.ndarray[Any, Any], ts_utc: np.ndarray[Any, np.dtype[np.datetime64]]
) -> tuple[list[int], list[date]]:
    """The distinct (station code, Beijing day) pairs of a batch, for ``derive_dirty``.

    Distinct station-hours first (a batch has few), then their Beijing dates
    with the zone's real rules (``bj_day`` in SQL, which had DST in 1986–91).
    """
    if not len(ts_utc):
        return [], []
    hours = ts_utc.astype("datetime64[h]").astype(np.int64)
    if int(hours.min()) >= _FIXED_UTC8_FROM:  # every batch of these decades: integers only
        day0 = (hours + 8) // 24
        first = int(day0.min())
        span = int(day0.max()) - first + 1
        keys = np.unique(station_codes.astype(np.int64) * span + (day0 - first))
        stations, day = np.divmod(keys, span)
        dates = (day + first).astype("datetime64[D]").astype(object)
        return stations.tolist(), dates.tolist()
    first = int(hours.min())
    span = int(hours.max()) - first + 1
    keys = np.unique(station_codes.astype(np.int64) * span + (hours - first))
    stations, hour = np.divmod(keys, span)
    local = pd.DatetimeIndex((hour + first).astype("datetime64[h]"), tz="UTC")
    days = pd.Series(local.tz_convert(BEIJING_TZ_NAME).date)
    keep = ~pd.DataFrame({"s": stations, "d": days}).duplicated().to_numpy()
    return stations[keep].tolist(), days[keep].tolist()


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


def is_unavailable(err: BaseException) -> bool:
    """Whether an error means "the database cannot be reached right now".

    Only connection-class failures do (no server answer, SQLSTATE class 08,
    the server shutting down, too many connections, a pool time-out): the
    batch is spooled and retried. Anything else (a constraint, a limit such as
    TimescaleDB's 53400, a bug) is the database refusing this batch: retrying
    it would block every later batch behind it.
    """
    if isinstance(err, PoolTimeout | DatabaseUnavailable):
        return True
    if isinstance(err, psycopg.OperationalError):
        state = err.sqlstate
        return state is None or state.startswith("08") or state in _UNAVAILABLE_STATES
    return False


# admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


@dataclass
class Unwritten:
    """Parts of a batch the database did not take, and why."""

    batch: ReadingBatch
    error: BaseException

    @property
    def unavailable(self) -> bool:
        return is_unavailable(self.error)


@dataclass
class Prepared:
    """The fast path's payload for a batch, computed ahead (:func:`prepare`)."""

    batch: ReadingBatch  # without repeated keys
    duplicates: int
    copy: bytes  # the binary COPY of every row into ``reading``
    mark: sql.Composed  # the days to derive


def _factorised(batch: ReadingBatch) -> tuple[list[np.ndarray[Any, Any]], list[list[str]]]:
    """Codes and distinct values of station, parameter, period and flag, in that order."""
    codes, uniques = [], []
    for column in (batch.station_id, batch.parameter, batch.period, batch.flag):
        code, unique = pd.factorize(column)
        codes.append(code)
        uniques.append([str(x) for x in unique])
    return codes, uniques


def prepare(batch: ReadingBatch) -> Prepared:
    """The CPU half of a write, which needs no database: ``envmon import`` runs it
    in its reading thread, where it overlaps with the COPY of the chunk before."""
    batch, duplicates = dedupe(batch)
    codes, uniques = _factorised(batch)
    stations, days = dirty_days(codes[0], batch.ts)
    return Prepared(
        batch,
        duplicates,
        reading_rows(codes, uniques, batch.source, batch.ts, batch.value),
        MARK_NEW.format(s=sql.Literal([uniques[0][i] for i in stations]), d=sql.Literal(days)),
    )


# Notifications sent inside the writing transaction (PostgreSQL delivers them on
# commit, never for a transaction rolled back), in the order given.
Announce = Callable[[ReadingBatch], Sequence[tuple[str, str]]]
NOTIFY_IN_ORDER: Final = (
    "SELECT count(pg_notify(n.channel, n.payload)) FROM"
    " (SELECT * FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS u(channel, payload, i)"
    " ORDER BY i) AS n"
)


# SQLSTATE class 40 (psycopg does not derive the two from TransactionRollback).
_ROLLED_BACK = (
    psycopg.errors.TransactionRollback,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
)


async def _retrying(write: Callable[_P, Awaitable[_T]], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``write``, again when the database aborted it as a deadlock victim or for
    serialization (SQLSTATE class 40: nothing was written, trying again is safe)."""
    for attempt in range(1, RETRIES + 1):
        try:
            return await write(*args, **kwargs)
        except _ROLLED_BACK:
            if attempt == RETRIES:
                raise
            await asyncio.sleep(0.02 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


class Writer:
    """Validated batches → ``reading`` and ``rejected``; nothing else.

    The writer only talks to the database. What to do when it cannot (spool,
    quarantine) and who to tell afterwards is the sink's business
    (``envmon.ingest.sink``), so that there is one place for it.
    """

    def __init__(
        self,
        pool: Pool,
        *,
        timeout: float = 5.0,
        parallel: int = 2,
        parallel_min_rows: int = 4_000,
    ) -> None:
        self.pool = pool
        self.timeout = timeout
        self.parallel = parallel
        self.parallel_min_rows = parallel_min_rows
        # What to NOTIFY with each batch stored, in its own transaction, so that a
        # notification goes out exactly when the batch is committed (the alert
        # owner's forwarding, envmon.alerts.owner); None: nothing.
        self.announce: Announce | None = None

    async def write_readings(
        self,
        batch: ReadingBatch,
        *,
        reason: str | None = None,
        announce: bool = True,
        prepared: Prepared | None = None,
    ) -> tuple[WriteResult, list[Unwritten]]:
        """Store a batch; returns the counts and the parts that were not stored.

        ``reason`` (one of :data:`REVISION_REASONS`) is recorded with every
        version this batch replaces; by default it follows from the source.
        ``announce=False`` (history: an import) sends no :attr:`announce`
        notifications. ``prepared`` is :func:`prepare` of ``batch``, done ahead.

        New readings are COPYed in one transaction on one connection: two
        COPYs of one time range (a batch split by station) at once are slower
        than one (1 M rows on TimescaleDB: 5.1 s against 4.2 s). A batch with existing keys is
        merged instead, and batches of ``parallel_min_rows`` or more are then
        split by station over ``parallel`` connections: the merge is CPU-bound
        in the server and two backends use both cores of a small server. A
        station's readings always go to the same part, so the order of one key
        is kept. Parts already committed stay committed.
        """
        if reason is not None and reason not in REVISION_REASONS:
            raise ValueError(f"unknown revision reason {reason!r}")
        ready = prepared if prepared is not None else prepare(batch)
        batch = ready.batch
        result = WriteResult(duplicates=ready.duplicates)
        if not len(batch):
            return result, []
        try:
            copied = await _retrying(self._copy_new, ready, announce)
        except Exception as err:  # unavailable, refused, or a bug: never lost
            return result, [Unwritten(batch, err)]
        if copied is not None:
            result.inserted += copied
            return result, []
        if self.parallel < 2 or len(batch) < self.parallel_min_rows:
            parts = [batch]
        else:
            codes, _ = pd.factorize(batch.station_id)
            parts = [batch.take(codes % self.parallel == k) for k in range(self.parallel)]
            parts = [p for p in parts if len(p)]
        outcomes = await asyncio.gather(
            *(_retrying(self._merge, p, reason, announce) for p in parts),
            return_exceptions=True,
        )
        unwritten: list[Unwritten] = []
        for part, outcome in zip(parts, outcomes, strict=True):
            if isinstance(outcome, Exception):
                unwritten.append(Unwritten(part, outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                result += outcome
        return result, unwritten

    def _notes(self, batch: ReadingBatch, announce: bool) -> tuple[list[str], list[str]] | None:
        notes = self.announce(batch) if announce and self.announce is not None else ()
        if not notes:
            return None
        return [c for c, _ in notes], [p for _, p in notes]

    async def _copy_new(self, ready: Prepared, announce: bool = True) -> int | None:
        """COPY a batch of new readings; None, and nothing written, when a key exists."""
        notes = self._notes(ready.batch, announce)
        async with self.pool.connection(timeout=self.timeout) as conn:
            try:
                async with conn.transaction():
                    await conn.execute(NO_DECOMPRESSION_LIMIT)
                    async with conn.cursor().copy(READING_COPY) as copy:
                        await copy.write(ready.copy)
                    await conn.execute(ready.mark)
                    if notes is not None:
                        await conn.execute(NOTIFY_IN_ORDER, notes)
            except psycopg.errors.UniqueViolation:
                return None  # rolled back: some keys exist
        return len(ready.batch)

    async def _merge(
        self, batch: ReadingBatch, reason: str | None, announce: bool = True
    ) -> WriteResult:
        (si, pi, ri, fi), (s_u, p_u, r_u, f_u) = _factorised(batch)
        params: dict[str, Any] = {"s": s_u, "p": p_u, "r": r_u, "f": f_u, "source": batch.source}
        notes = self._notes(batch, announce)
        async with self.pool.connection(timeout=self.timeout) as conn:
            async with conn.transaction():
                await conn.execute(MERGE_PREPARE)
                async with conn.cursor().copy(
                    "COPY reading_stage FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    await copy.write(
                        stage_rows(si + 1, pi + 1, ri + 1, batch.ts, batch.value, fi + 1)
                    )
                if reason is not None:  # only the merge can replace a version
                    await conn.execute(SET_REASON, (reason,))
                cur = await conn.execute(UPSERT, params)
                row = await cur.fetchone()
                if notes is not None:
                    await conn.execute(NOTIFY_IN_ORDER, notes)
        inserted, updated = (int(row[0]), int(row[1])) if row else (0, 0)
        return WriteResult(
            inserted=inserted,
            updated=updated,
            unchanged=len(batch) - inserted - updated,
        )

    async def write_rejects(self, rejects: Sequence[Rejection]) -> None:
        """Store rejects, each (source, raw, reason) once with a count of how often it came.

        Repeats within the batch are merged here, repeats of earlier batches by
        the ``rejected_once`` index (migration 0016): re-importing a file or a
        logger resending a bad frame adds no row. :class:`DatabaseUnavailable`
        when the database cannot be reached.
        """
        merged: dict[tuple[str, str, str], tuple[Rejection, int]] = {}
        for r in rejects:
            key = (r.source, r.raw.replace("\x00", ""), r.reason.replace("\x00", ""))
            seen = merged.get(key)
            merged[key] = (r, 1 if seen is None else seen[1] + 1)
        try:
            async with self.pool.connection(timeout=self.timeout) as conn:
                async with conn.transaction():
                    await conn.execute(REJECT_STAGE_DDL)
                    async with conn.cursor().copy(
                        "COPY rejected_stage (source, station_id, parameter, ts, raw, reason,"
                        " times) FROM STDIN"
                    ) as copy:
                        for (source, raw, reason), (r, times) in merged.items():
                            await copy.write_row(
                                (source, r.station_id, r.parameter, r.ts, raw, reason, times)
                            )
                    await conn.execute(MERGE_REJECTS)
        except (psycopg.Error, PoolTimeout) as err:
            if is_unavailable(err):
                raise DatabaseUnavailable(str(err)) from err
            raise
