"""The data as it stood at a time T: ``envmon evaluate --as-of T``.

On one connection, temporary tables named
like the real ones (``reading``, ``review_mark`` and the derived tables)
shadow them — PostgreSQL looks up ``pg_temp`` first — so the unchanged derive
and evaluation code computes from the readings current at T (the version in
``reading_revision`` whose life spans T, or the stored one if it arrived by T
and was not replaced since) and the review marks open at T. Nothing outside
the connection sees any of it, and the block drops them again. Dust periods are not versioned: the
current ones apply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any, Final

from psycopg import AsyncConnection, sql

from envmon.errors import EnvmonError
from envmon.timeutil import day_start

Conn = AsyncConnection[Any]

DERIVED: Final = (
    "derive_dirty",
    "air_hour",
    "air_day",
    "region_day",
    "water_day",
    "water_month",
    "water_section_month",
)

_READINGS_AT = """
INSERT INTO pg_temp.reading
    (station_id, parameter, period, ts, value, flag, source, received_at)
SELECT station_id, parameter, period, ts, value, flag, source, received_at
FROM {real}.reading r
WHERE r.received_at <= %(t)s AND r.ts < %(hi)s
  AND NOT EXISTS (
      SELECT 1 FROM {real}.reading_revision v
      WHERE v.station_id = r.station_id AND v.parameter = r.parameter AND v.ts = r.ts
        AND v.period = r.period AND v.revised_at > %(t)s)
UNION ALL
SELECT station_id, parameter, period, ts, value, flag, source, received_at
FROM (
    SELECT DISTINCT ON (station_id, parameter, period, ts) *
    FROM {real}.reading_revision
    WHERE revised_at > %(t)s AND ts < %(hi)s
    ORDER BY station_id, parameter, period, ts, revised_at
) v
WHERE v.received_at <= %(t)s
"""

_MARKS_AT = """
INSERT INTO pg_temp.review_mark
SELECT id, station_id, parameter, period, ts, invalidated_by, invalidated_at, NULL, NULL
FROM {real}.review_mark
WHERE invalidated_at <= %(t)s AND (restored_at IS NULL OR restored_at > %(t)s)
"""


class AsOfError(EnvmonError):
    """A time the data cannot be reproduced for."""


@asynccontextmanager
async def data_as_of(conn: Conn, t: datetime, until: date) -> AsyncIterator[None]:
    """Within the block, ``conn`` sees the readings (of periods before ``until``) as at ``t``."""
    if t.tzinfo is None:
        raise AsOfError("--as-of needs a time zone")
    cur = await conn.execute("SELECT current_schema(), now()")
    row = await cur.fetchone()
    assert row is not None
    schema, now = row
    if t > now:
        raise AsOfError(f"--as-of {t.isoformat()} is in the future")
    real = sql.Identifier(schema)
    # Session temp tables (derive commits as it goes); dropped again whatever happens,
    # so the pooled connection never keeps them.
    try:
        for name in ("reading", "review_mark", *DERIVED):
            await conn.execute(
                sql.SQL("CREATE TEMP TABLE {} (LIKE {}.{} INCLUDING ALL)").format(
                    sql.Identifier(name), real, sql.Identifier(name)
                )
            )
        params = {"t": t, "hi": day_start(until)}
        await conn.execute(sql.SQL(_READINGS_AT).format(real=real), params)
        await conn.execute(sql.SQL(_MARKS_AT).format(real=real), params)
        await conn.execute(
            "INSERT INTO derive_dirty (station_id, day)"
            " SELECT DISTINCT station_id, bj_day(ts) FROM reading"
            " ON CONFLICT DO NOTHING"
        )
        await conn.commit()
        yield
    finally:
        await conn.rollback()
        await conn.execute("DISCARD TEMP")
        await conn.commit()
