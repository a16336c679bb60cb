"""Helpers shared by the route modules: JSON, database access, existence and range checks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web
from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from envmon.api.keys import ENVMON, SETTINGS
from envmon.api.problems import not_found, too_large
from envmon.catalog.names import StationNames
from envmon.timeutil import BEIJING

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


def station_names(request: web.Request) -> StationNames:
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
