"""Streamed exports of derived tables (AQI, statistics, water classes) as CSV, XLSX, Parquet.

A table is a tuple of :class:`Column` (machine key, Chinese and English header,
unit, published precision) and an async iterator of row chunks. Headers come in
the language asked for (``lang=zh|en``) and every numeric column's header carries
its unit (``PM2.5（µg/m³）``, ``PM2.5 (µg/m³)``). Values are rounded to the
precision they are published at (GB/T 8170, half-even on the decimal string:
concentrations to whole µg/m³, CO to 0.1 mg/m³ — HJ 663-2013 §4.2, standards.md
§1.4). Times are Beijing time: ISO 8601 with ``+08:00`` in CSV, a
``timestamp[Asia/Shanghai]`` in Parquet, Beijing wall time in XLSX (the header says so).

Each chunk leaves as soon as it is formatted: a CSV chunk of lines, a Parquet
row group, or the deflated XLSX rows (formatting runs in a worker thread).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from aiohttp import web

from envmon.api.export import CONTENT_TYPES, Format, Pipe
from envmon.api.xlsx import CellKind, TableXlsx
from envmon.standards.rounding import round_half_even
from envmon.timeutil import BEIJING, BEIJING_TZ_NAME

Lang = Literal["zh", "en"]
LANGS: Final[tuple[Lang, ...]] = ("zh", "en")
ColumnKind = Literal["text", "int", "float", "bool", "date", "month", "time"]
Row = Sequence[Any]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    zh: str
    en: str
    kind: ColumnKind = "float"
    unit: str | None = None
    decimals: int = 0  # published precision of a float column
    width: int = 10

    def header(self, lang: Lang) -> str:
        if self.kind == "time":  # Excel has no time zones: the header says which
            zone = "（北京时间，UTC+8）" if lang == "zh" else " (Beijing, UTC+8)"
            return (self.zh if lang == "zh" else self.en) + zone
        if lang == "zh":
            return f"{self.zh}（{self.unit}）" if self.unit else self.zh
        return f"{self.en} ({self.unit})" if self.unit else self.en

    def rounded(self, value: Any) -> Any:
        """The value at its published precision (floats), else as it is."""
        if value is None or self.kind != "float":
            return value
        return round_half_even(value, self.decimals)


_XLSX_KIND: Final[dict[ColumnKind, CellKind]] = {
    "text": "s",
    "int": "n",
    "float": "n",
    "bool": "s",
    "date": "d",
    "month": "s",
    "time": "t",
}
_ARROW: Final[dict[ColumnKind, Any]] = {
    "text": pa.string(),
    "int": pa.int32(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "month": pa.string(),
    "time": pa.timestamp("us", tz=BEIJING_TZ_NAME),
}
_YES_NO: Final[dict[Lang, tuple[str, str]]] = {"zh": ("是", "否"), "en": ("yes", "no")}


@dataclass(frozen=True)
class Table:
    """What an export holds: its columns, a file name and the language of its headers."""

    columns: tuple[Column, ...]
    filename: str
    lang: Lang = "zh"

    def headers(self) -> list[str]:
        return [c.header(self.lang) for c in self.columns]

    def text(self, column: Column, value: Any) -> str:
        """A cell as CSV text."""
        if value is None:
            return ""
        if column.kind == "time":
            return str(value.astimezone(BEIJING).isoformat())
        if column.kind == "date":
            return str(value.isoformat())
        if column.kind == "month":
            return f"{value:%Y-%m}" if isinstance(value, date) else str(value)
        if column.kind == "bool":
            return _YES_NO[self.lang][0 if value else 1]
        return str(column.rounded(value))

    def cell(self, column: Column, value: Any) -> Any:
        """A cell for XLSX and Parquet: rounded numbers, month text, yes/no."""
        if value is None:
            return None
        if column.kind == "float":
            return column.rounded(value)
        if column.kind == "month":
            return f"{value:%Y-%m}" if isinstance(value, date) else str(value)
        if column.kind == "bool":
            return _YES_NO[self.lang][0 if value else 1]
        return value


def _start(request: web.Request, table: Table, fmt: Format) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={
            "Content-Type": CONTENT_TYPES[fmt],
            "Content-Disposition": f'attachment; filename="{table.filename}.{fmt}"',
            "Cache-Control": "no-store",
        }
    )
    resp.enable_chunked_encoding()
    return resp


async def stream_table(
    request: web.Request, table: Table, fmt: Format, chunks: AsyncIterator[list[Row]]
) -> web.StreamResponse:
    """Send ``chunks`` of rows as a file of ``fmt``; the first bytes leave with the first chunk."""
    resp = _start(request, table, fmt)
    await resp.prepare(request)
    if fmt == "csv":
        await _csv(resp, table, chunks)
    elif fmt == "parquet":
        await _parquet(resp, table, chunks)
    else:
        await _xlsx(resp, table, chunks)
    await resp.write_eof()
    return resp


async def _csv(resp: web.StreamResponse, table: Table, chunks: AsyncIterator[list[Row]]) -> None:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    # A BOM so that Excel on a Chinese Windows reads the UTF-8 headers right.
    buf.write("\ufeff")
    out.writerow(table.headers())
    await resp.write(buf.getvalue().encode())
    cols = table.columns
    async for rows in chunks:
        buf.seek(0)
        buf.truncate()
        out.writerows([table.text(c, v) for c, v in zip(cols, row, strict=True)] for row in rows)
        await resp.write(buf.getvalue().encode())


def arrow_schema(table: Table) -> Any:
    return pa.schema(
        [(h, _ARROW[c.kind]) for h, c in zip(table.headers(), table.columns, strict=True)]
    )


def _arrow(table: Table, schema: Any, rows: list[Row]) -> Any:
    cols = table.columns
    data = [[table.cell(c, row[i]) for row in rows] for i, c in enumerate(cols)]
    arrays = []
    for c, values, field in zip(cols, data, schema, strict=True):
        if c.kind == "float":
            values = [None if v is None else float(v) for v in values]
        if c.kind == "bool":
            values = [None if v is None else v == _YES_NO[table.lang][0] for v in values]
        arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


async def _parquet(
    resp: web.StreamResponse, table: Table, chunks: AsyncIterator[list[Row]]
) -> None:
    pipe = Pipe()
    schema = arrow_schema(table)
    writer = pq.ParquetWriter(pipe, schema, compression="zstd")
    async for rows in chunks:
        if rows:
            writer.write_table(_arrow(table, schema, rows), row_group_size=len(rows))
            await resp.write(pipe.take())
    writer.close()
    await resp.write(pipe.take())


def _xlsx_rows(table: Table, rows: list[Row]) -> list[list[Any]]:
    cols = table.columns
    return [[table.cell(c, v) for c, v in zip(cols, row, strict=True)] for row in rows]


async def _xlsx(resp: web.StreamResponse, table: Table, chunks: AsyncIterator[list[Row]]) -> None:
    pipe = Pipe()
    book = TableXlsx(
        pipe,  # type: ignore[arg-type]
        table.headers(),
        [c.width for c in table.columns],
        [_XLSX_KIND[c.kind] for c in table.columns],
        sheet_name=table.filename.split("_", 1)[0][:31],
    )
    async for rows in chunks:
        await asyncio.to_thread(book.write, _xlsx_rows(table, rows))
        await resp.write(pipe.take())
    await asyncio.to_thread(book.close)
    await resp.write(pipe.take())
