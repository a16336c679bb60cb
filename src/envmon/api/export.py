"""Streamed exports of readings: CSV, Parquet, XLSX.

Nothing is held whole in memory and nothing waits for the whole result before
the first byte leaves:

* CSV — ``COPY (SELECT …) TO STDOUT`` straight from PostgreSQL to the response;
  the file re-imports with ``envmon import`` (same column names, ``time`` is the
  start of the period with its +08:00 offset).
* Parquet — a server-side cursor read in chunks; each chunk becomes one row group
  (zstd), sent as soon as it is written; ``time`` is ``timestamp[us, Asia/Shanghai]``.
* XLSX — :mod:`envmon.api.xlsx` formats each chunk of the server-side cursor in a
  worker thread into a zip streamed as it is written (xlsxwriter was measured
  ten times slower); ``time`` is Beijing local time (Excel has no time zones: the
  header says so). A sheet holds 1,048,575 readings; more continue on the next sheet.

Rows are in key order (station, parameter, period, time) — the order of the
``reading`` unique index, so PostgreSQL streams them without sorting.

``period=1d`` holds the daily readings stored as such (laboratory values) and,
for every other station-day, the daily values envmon derives: for air stations
the valid daily means of GB 3095 Table 4 (O3: the daily maximum 8-h mean, the
daily statistic of HJ 663), for water sections the daily means — with source
``derived`` and flag ``N``. Air and water data arrive hourly or 4-hourly, so
without them a daily export of an air station would be empty.

Exports hold reviewed data: readings a reviewer invalidated (``envmon review
invalidate``) are left out, as they are of the derived values; ``envmon review
history`` and ``GET /api/v1/readings/history`` still show them.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from aiohttp import web
from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow

from envmon.api.xlsx import ReadingsXlsx
from envmon.review import invalid_filter
from envmon.timeutil import BEIJING, BEIJING_TZ_NAME

logger = logging.getLogger(__name__)

Format = Literal["csv", "parquet", "xlsx"]
FORMATS: Final[tuple[Format, ...]] = ("csv", "parquet", "xlsx")
CONTENT_TYPES: Final[dict[Format, str]] = {
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
COLUMNS: Final = ("station", "parameter", "period", "time", "value", "flag", "source")


@dataclass(frozen=True)
class ReadingFilter:
    """Which readings: [start, end) and optional stations, parameters and period."""

    start: datetime
    end: datetime
    stations: Sequence[str] = ()
    parameters: Sequence[str] = ()
    period: str | None = None

    def relation(self) -> tuple[sql.Composable, list[Any]]:
        """The rows to read from: ``reading``, plus the derived daily values for ``1d``."""
        if self.period != "1d":
            return sql.SQL("reading"), []
        lo = self.start.astimezone(BEIJING).date()
        hi = (self.end.astimezone(BEIJING) + timedelta(days=1)).date()
        return _DAILY_RELATION, [lo, hi, lo, hi]

    def where(self) -> tuple[sql.Composable, list[Any]]:
        # Reviewed data: readings a reviewer invalidated (envmon.review) are left out.
        parts: list[sql.Composable] = [sql.SQL("ts >= %s AND ts < %s"), _REVIEWED]
        args: list[Any] = [self.start, self.end]
        if self.stations:
            parts.append(sql.SQL("station_id = ANY(%s)"))
            args.append(list(self.stations))
        if self.parameters:
            parts.append(sql.SQL("parameter = ANY(%s)"))
            args.append(list(self.parameters))
        if self.period:
            parts.append(sql.SQL("period = %s"))
            args.append(self.period)
        return sql.SQL(" AND ").join(parts), args

    def filename(self, fmt: Format) -> str:
        who = self.stations[0] if len(self.stations) == 1 else "readings"
        return f"{who}_{self.start:%Y%m%d}-{self.end:%Y%m%d}.{fmt}"


ORDER: Final = sql.SQL(" ORDER BY station_id, parameter, period, ts")
_REVIEWED: Final = sql.SQL(invalid_filter("reading"))
_DAY_TS = "(bj_day_start({alias}.day))"
_NOT_STORED = (
    " AND NOT EXISTS (SELECT 1 FROM reading r WHERE r.station_id = {alias}.station_id"
    " AND r.parameter = {param} AND r.period = '1d' AND r.ts >= {ts}"
    " AND r.ts < {ts} + interval '1 day')"
)
_DAILY_RELATION: Final = sql.SQL(
    "(SELECT station_id, parameter, period, ts, value, flag, source FROM reading"
    " UNION ALL SELECT d.station_id, v.parameter, '1d', " + _DAY_TS.format(alias="d") + ","
    " v.value, 'N', 'derived' FROM air_day d CROSS JOIN LATERAL (VALUES ('so2', d.so2),"
    " ('no2', d.no2), ('co', d.co), ('pm10', d.pm10), ('pm25', d.pm25), ('o3', d.o3_8h_max))"
    " AS v(parameter, value) WHERE v.value IS NOT NULL AND d.day >= %s AND d.day < %s"
    + _NOT_STORED.format(alias="d", param="v.parameter", ts=_DAY_TS.format(alias="d"))
    + " UNION ALL SELECT w.station_id, w.parameter, '1d', "
    + _DAY_TS.format(alias="w")
    + ","
    " w.value, 'N', 'derived' FROM water_day w WHERE w.day >= %s AND w.day < %s"
    + _NOT_STORED.format(alias="w", param="w.parameter", ts=_DAY_TS.format(alias="w"))
    + ") AS reading"
)


def _start(flt: ReadingFilter, fmt: Format, *, chunked: bool = True) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={
            "Content-Type": CONTENT_TYPES[fmt],
            "Content-Disposition": f'attachment; filename="{flt.filename(fmt)}"',
            "Cache-Control": "no-store",
        }
    )
    if chunked:
        resp.enable_chunked_encoding()
    return resp


async def export_csv(
    request: web.Request, conn: AsyncConnection[TupleRow], flt: ReadingFilter
) -> web.StreamResponse:
    rel, args = flt.relation()
    where, where_args = flt.where()
    args += where_args
    query = sql.SQL(
        "COPY (SELECT station_id AS station, parameter, period,"
        " to_char(bj_time(ts), 'YYYY-MM-DD\"T\"HH24:MI:SS') || '+08:00'"
        " AS time, value, flag, source FROM {rel} WHERE {where}{order})"
        " TO STDOUT (FORMAT csv, HEADER true)"
    ).format(rel=rel, where=where, order=ORDER)
    resp = _start(flt, "csv")
    await resp.prepare(request)
    buf = bytearray()
    async with conn.cursor() as cur, cur.copy(query, args) as copy:
        async for data in copy:
            buf += data
            if len(buf) >= 1 << 18:
                await resp.write(bytes(buf))
                buf.clear()
    if buf:
        await resp.write(bytes(buf))
    await resp.write_eof()
    return resp


_SELECT_ROWS: Final = sql.SQL(
    "SELECT station_id, parameter, period,"
    " (extract(epoch FROM ts) * 1000000)::int8, value, flag, source"
    " FROM {rel} WHERE {where}{order}"
)


def select_rows(flt: ReadingFilter) -> tuple[sql.Composed, list[Any]]:
    rel, args = flt.relation()
    where, where_args = flt.where()
    return _SELECT_ROWS.format(rel=rel, where=where, order=ORDER), args + where_args


class Pipe(io.RawIOBase):
    """A write-only file whose bytes are taken out after each row group."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.chunks.append(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


PARQUET_SCHEMA: Final = pa.schema(
    [
        ("station", pa.dictionary(pa.int32(), pa.string())),
        ("parameter", pa.dictionary(pa.int32(), pa.string())),
        ("period", pa.dictionary(pa.int32(), pa.string())),
        ("time", pa.timestamp("us", tz=BEIJING_TZ_NAME)),
        ("value", pa.float64()),
        ("flag", pa.dictionary(pa.int32(), pa.string())),
        ("source", pa.dictionary(pa.int32(), pa.string())),
    ]
)


def _arrow_table(rows: Sequence[Sequence[Any]]) -> Any:
    cols = list(zip(*rows, strict=True))

    def dict_col(i: int) -> Any:
        return pa.array(cols[i], pa.string()).dictionary_encode()

    return pa.Table.from_arrays(
        [
            dict_col(0),
            dict_col(1),
            dict_col(2),
            pa.array(cols[3], pa.int64()).cast(pa.timestamp("us", tz=BEIJING_TZ_NAME)),
            pa.array(cols[4], pa.float64()),
            dict_col(5),
            dict_col(6),
        ],
        schema=PARQUET_SCHEMA,
    )


async def export_parquet(
    request: web.Request,
    conn: AsyncConnection[TupleRow],
    flt: ReadingFilter,
    chunk_rows: int,
) -> web.StreamResponse:
    query, args = select_rows(flt)
    resp = _start(flt, "parquet")
    await resp.prepare(request)
    pipe = Pipe()
    writer = pq.ParquetWriter(pipe, PARQUET_SCHEMA, compression="zstd")
    async with conn.cursor(name="envmon_export", binary=True) as cur:
        await cur.execute(query, args)
        while rows := await cur.fetchmany(chunk_rows):
            writer.write_table(_arrow_table(rows), row_group_size=len(rows))
            await resp.write(pipe.take())
    writer.close()
    await resp.write(pipe.take())
    await resp.write_eof()
    return resp


XLSX_HEADER: Final = (
    "station",
    "parameter",
    "period",
    "time (Beijing, UTC+8; start of period)",
    "value",
    "flag",
    "source",
)
XLSX_WIDTHS: Final = (28, 10, 7, 17, 10, 5, 14)


async def export_xlsx(
    request: web.Request,
    conn: AsyncConnection[TupleRow],
    flt: ReadingFilter,
    chunk_rows: int,
) -> web.StreamResponse:
    query, args = select_rows(flt)
    resp = _start(flt, "xlsx")
    await resp.prepare(request)
    pipe = Pipe()
    book = ReadingsXlsx(pipe, XLSX_HEADER, XLSX_WIDTHS)  # type: ignore[arg-type]
    async with conn.cursor(name="envmon_export", binary=True) as cur:
        await cur.execute(query, args)
        pending: asyncio.Future[None] | None = None
        # Overlap: a worker thread formats chunk n while the cursor fetches chunk n + 1.
        while rows := await cur.fetchmany(chunk_rows):
            if pending is not None:
                await pending
                await resp.write(pipe.take())
            pending = asyncio.ensure_future(asyncio.to_thread(book.write, rows))
        if pending is not None:
            await pending
    await asyncio.to_thread(book.close)
    await resp.write(pipe.take())
    await resp.write_eof()
    return resp
