"""Helpers shared by the route modules: JSON, database access, existence and range checks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web
from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from envmon.api.keys import ENVMON, EXPORTS, SETTINGS
from envmon.api.params import Query
from envmon.api.problems import Problem, not_found, too_large
from envmon.catalog.model import Station
from envmon.catalog.names import StationNames
from envmon.timeutil import BEIJING, day_start

Conn = AsyncConnection[TupleRow]
POOL_TIMEOUT_S = 5.0


def _default(o: object) -> Any:
    if isinstance(o, datetime):
        return o.astimezone(BEIJING).isoformat()
    if isinstance(o, date):
        return o.isoformat()
    if isinstance(o, Decimal):
        return float(o)
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=_default, allow_nan=False)


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=dumps(obj).encode(), content_type="application/json", charset="utf-8"
    )


def raw_json_response(text: str) -> web.Response:
    return web.Response(body=text.encode(), content_type="application/json", charset="utf-8")


def station_names(request: web.Request) -> StationNames[Station]:
    """The catalog's names of stations (id, 中文名, pinyin) for :meth:`Query.stations`."""
    return request.app[ENVMON].catalog.names


@asynccontextmanager
async def connection(request: web.Request, *, limited: bool = True) -> AsyncIterator[Conn]:
    """A pooled connection in a transaction; JSON requests get a statement timeout."""
    app = request.app[ENVMON]
    async with app.pool.connection(timeout=POOL_TIMEOUT_S) as conn:
        if limited:
            ms = int(request.app[SETTINGS].statement_timeout_s * 1000)
            await conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(ms),))
        yield conn


async def known_stations(conn: Conn, ids: Sequence[str], kind: str | None = None) -> list[str]:
    """``ids`` if they are all stations (of ``kind``), else 404 naming the unknown ones."""
    if not ids:
        return []
    rows = await (
        await conn.execute(
            "SELECT id FROM station WHERE id = ANY(%s) AND (%s::text IS NULL OR kind = %s)",
            (list(ids), kind, kind),
        )
    ).fetchall()
    found = {r[0] for r in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        what = f"{kind} station" if kind else "station"
        raise not_found(f"unknown {what}(s): {', '.join(missing[:20])}")
    return list(ids)


async def stations_of_kind(conn: Conn, kind: str) -> list[str]:
    rows = await (
        await conn.execute("SELECT id FROM station WHERE kind = %s ORDER BY id", (kind,))
    ).fetchall()
    return [r[0] for r in rows]


def export_slot(request: web.Request) -> asyncio.Semaphore:
    """The exports' semaphore, or 429 when every slot is taken (exports are long)."""
    sem = request.app[EXPORTS]
    if sem.locked():
        n = request.app[SETTINGS].max_concurrent_exports
        raise Problem(
            429,
            f"{n} export(s) already running; try again shortly",
            kind="too-many-exports",
            headers={"Retry-After": "10"},
        )
    return sem


def aqi_scope(
    q: Query, names: StationNames[Station]
) -> tuple[str | None, list[str], str | None, datetime | None, datetime | None]:
    """resolution, stations, region, start, end of an AQI request (JSON or export)."""
    resolution = q.string("resolution", choices=("daily", "hourly"), default="daily")
    stations = q.stations("station", names, ("air",))
    region = q.region("region")
    start: datetime | None
    end: datetime | None
    if resolution == "daily":
        d0, d1 = q.day("from", required=True), q.day("to", required=True)
        start = day_start(d0) if d0 else None
        end = day_start(d1) if d1 else None
    else:
        start, end = q.moment("from", required=True), q.moment("to", required=True)
    if stations and region:
        q.error("region", "give either station or region, not both")
    if region and resolution == "hourly":
        q.error(
            "resolution",
            "city and zone values are daily (HJ 663 averages station days); "
            "hourly AQI is per station",
        )
    return resolution, stations, region, start, end


def check_order(start: date | datetime, end: date | datetime) -> None:
    if end <= start:
        raise too_large("'to' must be after 'from' (the range is [from, to))", "to")


def check_days(days: float, limit: int, what: str = "range") -> None:
    if days > limit:
        raise too_large(
            f"the {what} spans {days:,.0f} days; at most {limit:,} are allowed per request"
        )


def check_points(n_units: int, n_periods: int, limit: int, unit: str, period: str) -> None:
    points = n_units * n_periods
    if points > limit:
        raise too_large(
            f"{n_units} {unit}(s) × {n_periods:,} {period}(s) = {points:,} values; at most "
            f"{limit:,} per JSON request — narrow the range or the stations, or use "
            "/api/v1/export/readings"
        )
