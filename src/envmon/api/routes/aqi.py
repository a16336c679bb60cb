"""``GET /api/v1/aqi``: hourly (per station) or daily (per station, city or zone) AQI.

Straight from the derived tables (``air_hour``, ``air_day``, ``region_day``),
each value under the HJ 633 edition in force on its day; PostgreSQL builds the
JSON (a year of daily values for every station is one indexed scan and one
string). Categories carry their HJ 633 name, level and colour.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web
from psycopg import sql

from envmon.api.auth import requires
from envmon.api.keys import SETTINGS
from envmon.api.params import Query
from envmon.api.routes.common import (
    aqi_scope,
    check_days,
    check_order,
    check_points,
    connection,
    dumps,
    known_stations,
    raw_json_response,
    station_names,
    stations_of_kind,
)
from envmon.standards.aqi import CATEGORIES

_CATS = (
    [c.number for c in CATEGORIES],
    [c.level for c in CATEGORIES],
    [c.grade for c in CATEGORIES],
    [c.colour for c in CATEGORIES],
)
_CAT_JOIN = sql.SQL(
    " LEFT JOIN unnest(%s::int[], %s::text[], %s::text[], %s::text[])"
    " AS c(n, quality, level, colour) ON c.n = d.category"
)
_COMMON = (
    "'aqi', d.aqi, 'category', d.category, 'quality', c.quality, 'level', c.level,"
    " 'colour', c.colour, 'primary', d.primary_pollutants, 'edition', d.edition,"
    " 'so2', d.so2, 'no2', d.no2, 'co', d.co, 'pm10', d.pm10, 'pm25', d.pm25"
)
_DAILY_STATION = sql.SQL(
    "SELECT coalesce(json_agg(json_build_object('station', d.station_id, 'day', d.day, "
    + _COMMON
    + ", 'o3_1h_max', d.o3_1h_max, 'o3_8h_max', d.o3_8h_max, 'complete', d.complete,"
    " 'iaqi', d.iaqi) ORDER BY d.station_id, d.day), '[]')::text FROM air_day d{cats}"
    " WHERE d.station_id = ANY(%s) AND d.day >= %s AND d.day < %s"
)
_DAILY_REGION = sql.SQL(
    "SELECT coalesce(json_agg(json_build_object('region', d.region, 'day', d.day, "
    + _COMMON
    + ", 'o3_1h_max', d.o3_1h_max, 'o3_8h_max', d.o3_8h_max, 'complete', d.complete,"
    " 'iaqi', d.iaqi, 'n_stations', d.n_stations) ORDER BY d.day), '[]')::text"
    " FROM region_day d{cats} WHERE d.region = %s AND d.day >= %s AND d.day < %s"
)
_HOURLY_STATION = sql.SQL(
    "SELECT coalesce(json_agg(json_build_object('station', d.station_id, 'time', d.ts, "
    + _COMMON
    + ", 'o3', d.o3, 'o3_8h', d.o3_8h, 'pm10_24h', d.pm10_24h, 'pm25_24h', d.pm25_24h)"
    " ORDER BY d.station_id, d.ts), '[]')::text FROM air_hour d{cats}"
    " WHERE d.station_id = ANY(%s) AND d.ts >= %s AND d.ts < %s"
)


@requires("read")
async def aqi(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    q = Query(request.query, ("resolution", "station", "region", "from", "to"))
    resolution, stations, region, start, end = aqi_scope(q, station_names(request))
    q.done()
    assert start is not None and end is not None
    check_order(start, end)
    check_days((end - start).total_seconds() / 86400, settings.max_range_days)
    async with connection(request) as conn:
        if region:
            units = [region]
        else:
            units = await known_stations(conn, stations, "air") or await stations_of_kind(
                conn, "air"
            )
        if resolution == "daily":
            n = (end - start).days
            check_points(
                len(units), n, settings.max_points, "station" if not region else "region", "day"
            )
            if region:
                query = _DAILY_REGION.format(cats=_CAT_JOIN)
                args: list[object] = [*_CATS, region, start.date(), end.date()]
            else:
                query = _DAILY_STATION.format(cats=_CAT_JOIN)
                args = [*_CATS, units, start.date(), end.date()]
        else:
            hours = int((end - start) / timedelta(hours=1))
            check_points(len(units), hours, settings.max_points, "station", "hour")
            query = _HOURLY_STATION.format(cats=_CAT_JOIN)
            args = [*_CATS, units, start, end]
        row = await (await conn.execute(query, args)).fetchone()
    items = row[0] if row else "[]"
    head = {
        "resolution": resolution,
        "scope": "region" if region else "station",
        "from": _iso(start, resolution),
        "to": _iso(end, resolution),
        "regions" if region else "stations": units,
        # Deprecated alias of "stations"/"regions" (it named areas, not units of measure).
        "units": units,
    }
    return raw_json_response(dumps(head)[:-1] + ',"items":' + items + "}")


def _iso(t: datetime, resolution: str | None) -> str:
    return t.date().isoformat() if resolution == "daily" else t.isoformat()


ROUTES = [web.get("/api/v1/aqi", aqi, name="aqi")]
