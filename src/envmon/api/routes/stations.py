"""``GET /api/v1/stations``: the monitoring network as stored (the catalog, synced)."""

from __future__ import annotations

from aiohttp import web

from envmon.api.auth import requires
from envmon.api.params import Query
from envmon.api.routes.common import connection, json_response
from envmon.catalog import CITIES, COUNTIES
from envmon.db.catalog_sync import STATION_COLUMNS

# The station table's columns as the catalog sync writes them, less the notes.
FIELDS = [c for c in STATION_COLUMNS if c != "notes"]


@requires("read")
async def list_stations(request: web.Request) -> web.Response:
    q = Query(request.query, ("kind", "city", "county", "active"))
    kind = q.string("kind", choices=("air", "water", "weather"))
    city = q.string("city", choices=CITIES)
    county = q.string("county", choices=tuple(COUNTIES))
    active = q.string("active", choices=("true", "false"))
    q.done()
    async with connection(request) as conn:
        rows = await (
            await conn.execute(
                f"SELECT {', '.join(FIELDS)} FROM station"
                " WHERE (%(kind)s::text IS NULL OR kind = %(kind)s)"
                " AND (%(city)s::text IS NULL OR city = %(city)s)"
                " AND (%(county)s::text IS NULL OR county = %(county)s)"
                " AND (%(active)s::boolean IS NULL OR active = %(active)s::boolean)"
                " ORDER BY kind, city, county, id",
                {"kind": kind, "city": city, "county": county, "active": active},
            )
        ).fetchall()
    items = [dict(zip(FIELDS, r, strict=True)) for r in rows]
    return json_response({"count": len(items), "items": items})


ROUTES = [web.get("/api/v1/stations", list_stations, name="stations")]
