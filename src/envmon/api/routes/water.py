"""``GET /api/v1/water``: GB 3838 classes per section and month.

The section's class (single factor, worst governs), whether it meets its
target class, the main pollutants with their multiples over class III, and each
parameter's monthly mean with its own class (``water_section_month`` and
``water_month``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from envmon.api.auth import requires
from envmon.api.keys import SETTINGS
from envmon.api.params import Query
from envmon.api.routes.common import (
    check_days,
    check_order,
    connection,
    json_response,
    known_stations,
    station_names,
)
from envmon.standards import water as water_std


@requires("read")
async def water(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    q = Query(request.query, ("station", "from", "to", "parameters"))
    stations = q.stations("station", station_names(request), ("water",))
    start = q.month("from", required=True)
    end = q.month("to", required=True)
    with_params = q.boolean("parameters", default=True)
    q.done()
    assert start is not None and end is not None
    check_order(start, end)
    check_days((end - start).days, settings.max_range_days)
    async with connection(request) as conn:
        await known_stations(conn, stations, "water")
        rows = await (
            await conn.execute(
                "SELECT w.station_id, s.name, s.river, s.county, s.city, w.month, w.class,"
                " w.target_class, w.meets_target, w.main_pollutants, w.exceedance"
                " FROM water_section_month w JOIN station s ON s.id = w.station_id"
                " WHERE w.month >= %s AND w.month < %s"
                " AND (cardinality(%s::text[]) = 0 OR w.station_id = ANY(%s))"
                " ORDER BY w.station_id, w.month",
                (start, end, stations, stations),
            )
        ).fetchall()
        params: dict[tuple[str, date], dict[str, Any]] = {}
        if with_params:
            for sid, month, p, value, n, cls in await (
                await conn.execute(
                    "SELECT station_id, month, parameter, value, n_days, class FROM water_month"
                    " WHERE month >= %s AND month < %s"
                    " AND (cardinality(%s::text[]) = 0 OR station_id = ANY(%s))"
                    " ORDER BY station_id, month, parameter",
                    (start, end, stations, stations),
                )
            ).fetchall():
                params.setdefault((sid, month), {})[p] = {
                    "value": value,
                    "n_days": n,
                    "class": cls,
                    "roman": water_std.roman(cls) if cls else None,
                }
    items = []
    for sid, name, river, county, city, month, cls, target, meets, main, exc in rows:
        item: dict[str, Any] = {
            "station": sid,
            "name": name,
            "river": river,
            "county": county,
            "city": city,
            "month": month.strftime("%Y-%m"),
            "class": cls,
            "roman": water_std.roman(cls),
            "status": water_std.STATUS[cls],
            "target_class": target,
            "meets_target": meets,
            "main_pollutants": list(main),
            "exceedance": exc,
        }
        if with_params:
            item["parameters"] = params.get((sid, month), {})
        items.append(item)
    return json_response(
        {
            "from": start.strftime("%Y-%m"),
            "to": end.strftime("%Y-%m"),
            "count": len(items),
            "items": items,
        }
    )


ROUTES = [web.get("/api/v1/water", water, name="water")]
