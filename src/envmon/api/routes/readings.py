"""``GET /api/v1/readings`` (JSON pages, keyset cursor) and ``/api/v1/export/readings``.

Pages follow the ``reading`` key (station, parameter, period, time): the cursor
is the last key of a page plus a fingerprint of the filters, so a page costs an
index range scan wherever it is in a ten-year range, and a cursor used with
other filters is refused rather than silently skipping rows. Rows are written
to the response as the server-side cursor yields them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from typing import Any

from aiohttp import web
from psycopg import sql

from envmon.api import export
from envmon.api.auth import requires
from envmon.api.keys import SETTINGS
from envmon.api.params import Query
from envmon.api.problems import bad_request, too_large
from envmon.api.routes.common import (
    check_days,
    check_order,
    connection,
    dumps,
    export_slot,
    known_stations,
    station_names,
)
from envmon.catalog.model import Station
from envmon.catalog.names import StationNames
from envmon.parameters import BY_CODE, PERIODS
from envmon.timeutil import BEIJING

FILTERS = ("station", "parameter", "period", "from", "to")


def _filter(
    q: Query, names: StationNames[Station], *, period_default: str | None
) -> export.ReadingFilter | None:
    parameters = q.strings("parameter", max_items=len(BY_CODE))
    bad = [p for p in parameters if p not in BY_CODE]
    if bad:
        q.error("parameter", f"unknown parameter(s) {', '.join(bad)}; known: {', '.join(BY_CODE)}")
    # A Chinese name shared by an air and a weather station is settled by the parameters.
    kinds = {BY_CODE[p].kind for p in parameters if p in BY_CODE} or None
    stations = q.stations("station", names, kinds)
    period = q.string("period", choices=tuple(PERIODS), default=period_default)
    start = q.moment("from", required=True)
    end = q.moment("to", required=True)
    if start is None or end is None:
        return None
    return export.ReadingFilter(start, end, tuple(stations), tuple(parameters), period)


def _fingerprint(flt: export.ReadingFilter) -> str:
    key = dumps(
        [
            flt.start.isoformat(),
            flt.end.isoformat(),
            sorted(flt.stations),
            sorted(flt.parameters),
            flt.period,
        ]
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def encode_cursor(key: tuple[str, str, str, datetime], fp: str) -> str:
    raw = json.dumps([key[0], key[1], key[2], key[3].isoformat(), fp]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, fp: str) -> tuple[str, str, str, datetime]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        s, p, r, t, got = json.loads(raw)
        key = (str(s), str(p), str(r), datetime.fromisoformat(t))
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as err:
        raise bad_request(
            "cursor is not valid", [{"parameter": "cursor", "message": "not a cursor"}]
        ) from err
    if got != fp:
        raise bad_request(
            "cursor belongs to a query with other filters",
            [{"parameter": "cursor", "message": "use it with the filters of its first page"}],
        )
    return key


def _item(row: tuple[Any, ...]) -> str:
    return dumps(
        {
            "station": row[0],
            "parameter": row[1],
            "period": row[2],
            "time": row[3].astimezone(BEIJING).isoformat(),
            "value": row[4],
            "flag": row[5],
            "source": row[6],
        }
    )


@requires("read")
async def readings(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    q = Query(request.query, (*FILTERS, "limit", "cursor"))
    flt = _filter(q, station_names(request), period_default=None)
    limit = q.integer(
        "limit", default=settings.default_page_size, low=1, high=settings.max_page_size
    )
    token = q.string("cursor", max_length=2000)
    q.done()
    assert flt is not None and limit is not None
    check_order(flt.start, flt.end)
    check_days((flt.end - flt.start).total_seconds() / 86400, settings.max_range_days)
    fp = _fingerprint(flt)
    rel, args = flt.relation()
    where, where_args = flt.where()
    args += where_args
    if token:
        after = decode_cursor(token, fp)
        where = sql.SQL("{} AND (station_id, parameter, period, ts) > (%s, %s, %s, %s)").format(
            where
        )
        args += list(after)
    query = sql.SQL(
        "SELECT station_id, parameter, period, ts, value, flag, source FROM {rel}"
        " WHERE {where}{order} LIMIT %s"
    ).format(rel=rel, where=where, order=export.ORDER)
    async with connection(request) as conn:
        await known_stations(conn, flt.stations)
        resp = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
        resp.enable_chunked_encoding()
        n = 0
        last: tuple[Any, ...] | None = None
        async with conn.cursor(name="envmon_page") as cur:
            await cur.execute(query, [*args, limit])
            await resp.prepare(request)
            await resp.write(b'{"items":[')
            while rows := await cur.fetchmany(1000):
                chunk = ",".join(_item(r) for r in rows)
                await resp.write((b"," if n else b"") + chunk.encode())
                n += len(rows)
                last = rows[-1]
    nxt = encode_cursor((last[0], last[1], last[2], last[3]), fp) if last and n == limit else None
    await resp.write(f'],"count":{n},"limit":{limit},"next_cursor":{dumps(nxt)}}}'.encode())
    await resp.write_eof()
    return resp


@requires("read")
async def export_readings(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    q = Query(request.query, (*FILTERS, "format"))
    flt = _filter(q, station_names(request), period_default="1h")
    fmt = q.string("format", choices=export.FORMATS, default="csv")
    q.done()
    assert flt is not None and fmt is not None
    check_order(flt.start, flt.end)
    days = (flt.end - flt.start).total_seconds() / 86400
    check_days(days, settings.max_range_days)
    async with export_slot(request), connection(request, limited=False) as conn:
        n_stations = len(await known_stations(conn, flt.stations))
        if not n_stations:
            # No station named: every station of the parameters' kinds is exported.
            kinds = sorted({BY_CODE[p].kind for p in flt.parameters}) or ["air", "water", "weather"]
            row = await (
                await conn.execute("SELECT count(*) FROM station WHERE kind = ANY(%s)", (kinds,))
            ).fetchone()
            n_stations = int(row[0]) if row else 0
        station_days = days * max(n_stations, 1)
        if station_days > settings.max_station_days:
            raise too_large(
                f"{max(n_stations, 1)} station(s) × {days:,.0f} days = {station_days:,.0f} "
                f"station-days; an export may hold at most {settings.max_station_days:,} — "
                "split it by station or by period"
            )
        if fmt == "csv":
            return await export.export_csv(request, conn, flt)
        if fmt == "parquet":
            return await export.export_parquet(request, conn, flt, settings.export_chunk_rows)
        return await export.export_xlsx(request, conn, flt, settings.export_chunk_rows)


ROUTES = [
    web.get("/api/v1/readings", readings, name="readings"),
    web.get("/api/v1/export/readings", export_readings, name="export_readings"),
]
