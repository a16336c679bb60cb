"""OpenAQ API v3, simulated: ``GET /openaq/v3/locations[/{id}]`` and ``/sensors/{id}/hours``.

The shape :mod:`envmon.ingest.sources.openaq_v3` reads: ``meta``/``results``
pages, the ``X-API-Key`` header (401 without one, or with the wrong one when
the server has a key) and rate-limit headers. One location per air station
(ids from :data:`OPENAQ_BASE_ID`, named after the station), sensor id =
location id × 10 + the parameter's position; CO in µg/m³ as OpenAQ gives it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final

from aiohttp import web

from envmon import timeutil
from envmon.catalog import Station
from envmon.simulate.base import FLAG_N, hour_index
from envmon.simulate.platforms.base import PARAMS, Platform, Publisher, time_of
from envmon.timeutil import BEIJING_TZ_NAME

OPENAQ_BASE_ID: Final = 10001
_OPENAQ_PARAMS: Final = {
    "pm25": (2, "pm25", "µg/m³", "PM2.5"),
    "pm10": (1, "pm10", "µg/m³", "PM10"),
    "so2": (9, "so2", "µg/m³", "SO₂ mass"),
    "no2": (5, "no2", "µg/m³", "NO₂ mass"),
    "o3": (3, "o3", "µg/m³", "O₃ mass"),
    "co": (4, "co", "µg/m³", "CO mass"),
}


class OpenAqV3(Platform):
    name = "openaq"
    source = "openaq_v3"
    headers: ClassVar[Mapping[str, str]] = {
        "X-RateLimit-Used": "1",
        "X-RateLimit-Remaining": "59",
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Reset": "60",
    }

    def __init__(self, publisher: Publisher, *, api_key: str | None = None) -> None:
        super().__init__(publisher)
        self.api_key = api_key
        air = self.data.stations["air"]
        self.openaq_locations = {OPENAQ_BASE_ID + i: st for i, st in enumerate(air)}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/openaq/v3/locations", self.openaq_locations_list),
            web.get("/openaq/v3/locations/{id}", self.openaq_location),
            web.get("/openaq/v3/sensors/{id}/hours", self.openaq_hours),
        ]

    def _openaq_auth(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("X-API-Key")
        if not key or (self.api_key is not None and key != self.api_key):
            return web.json_response(
                {"detail": "Unauthorized. A valid API key must be given in the X-API-Key header."},
                status=401,
            )
        return None

    def _location(self, loc_id: int, st: Station) -> dict[str, Any]:
        sensors = []
        for k, p in enumerate(PARAMS["air"]):
            pid, name, units, display = _OPENAQ_PARAMS[p]
            sensors.append(
                {
                    "id": loc_id * 10 + k,
                    "name": f"{name} {units}",
                    "parameter": {"id": pid, "name": name, "units": units, "displayName": display},
                }
            )
        return {
            "id": loc_id,
            "name": st.name,
            "locality": st.county,
            "timezone": BEIJING_TZ_NAME,
            "country": {"id": 10, "code": "CN", "name": "China"},
            "owner": {"id": 4, "name": "Unknown Governmental Organization"},
            "provider": {"id": 166, "name": "China National Environmental Monitoring Centre"},
            "isMobile": False,
            "isMonitor": True,
            "instruments": [{"id": 2, "name": "Government Monitor"}],
            "sensors": sensors,
            "coordinates": {"latitude": st.lat, "longitude": st.lon},
            "licenses": None,
            "bounds": [st.lon, st.lat, st.lon, st.lat],
            "distance": None,
            "datetimeFirst": None,
            "datetimeLast": None,
        }

    def _meta(self, page: int, limit: int, found: int | str) -> dict[str, Any]:
        return {"name": "openaq-api", "website": "/", "page": page, "limit": limit, "found": found}

    async def openaq_locations_list(self, request: web.Request) -> web.Response:
        denied = self._openaq_auth(request)
        if denied:
            return denied
        try:
            limit = int(request.query.get("limit", "100"))
            page = int(request.query.get("page", "1"))
        except ValueError:
            return web.json_response({"detail": "limit/page must be integers"}, status=422)
        locs = [self._location(i, st) for i, st in self.openaq_locations.items()]
        part = locs[(page - 1) * limit : page * limit]
        return await self.answer(
            request, {"meta": self._meta(page, limit, len(locs)), "results": part}
        )

    async def openaq_location(self, request: web.Request) -> web.Response:
        denied = self._openaq_auth(request)
        if denied:
            return denied
        try:
            loc_id = int(request.match_info["id"])
            st = self.openaq_locations[loc_id]
        except (ValueError, KeyError):
            return web.json_response({"detail": "Location not found"}, status=404)
        return await self.answer(
            request, {"meta": self._meta(1, 100, 1), "results": [self._location(loc_id, st)]}
        )

    async def openaq_hours(self, request: web.Request) -> web.Response:
        denied = self._openaq_auth(request)
        if denied:
            return denied
        q = request.query
        clock = self.publisher.clock
        try:
            sensor = int(request.match_info["id"])
            loc_id, k = divmod(sensor, 10)
            st = self.openaq_locations[loc_id]
            p = PARAMS["air"][k]
            limit = int(q.get("limit", "100"))
            page = int(q.get("page", "1"))
            frm = _aware(q.get("datetime_from")) or (clock() - timedelta(days=1))
            to = _aware(q.get("datetime_to")) or clock()
        except (ValueError, KeyError, IndexError):
            return web.json_response({"detail": "Sensor not found"}, status=404)
        h0 = hour_index(frm)
        h1 = min(hour_index(to), self.publisher.latest_hour() + 1)
        _, name, units, display = _OPENAQ_PARAMS[p]
        i = self.data.index["air"][st.id]
        results = []
        if h1 > h0:
            for h, values, flags in await self.data.hours("air", max(h0, 0), h1):
                v = values[i, k]
                if math.isnan(v) or flags[i, k] != FLAG_N:
                    continue
                value = float(v) * 1000.0 if p == "co" else float(v)
                if self.faults.record("openaq", f"{st.id}/{p}", h) is not None:
                    value = -999.0
                start = time_of(h)
                results.append(_openaq_hour(value, name, units, display, start))
        part = results[(page - 1) * limit : page * limit]
        found: int | str = len(results) if len(results) <= 1000 else ">1000"
        return await self.answer(request, {"meta": self._meta(page, limit, found), "results": part})


def _openaq_hour(
    value: float, name: str, units: str, display: str, start: datetime
) -> dict[str, Any]:
    end = start + timedelta(hours=1)

    def both(t: datetime) -> dict[str, str]:
        return {
            "utc": t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "local": timeutil.to_beijing(t).isoformat(),
        }

    return {
        "value": value,
        "flagInfo": {"hasFlags": False},
        "parameter": {"id": 0, "name": name, "units": units, "displayName": display},
        "period": {
            "label": "1hour",
            "interval": "01:00:00",
            "datetimeFrom": both(start),
            "datetimeTo": both(end),
        },
        "coordinates": None,
        "summary": None,
        "coverage": {
            "expectedCount": 1,
            "expectedInterval": "01:00:00",
            "observedCount": 1,
            "observedInterval": "01:00:00",
            "percentComplete": 100.0,
            "percentCoverage": 100.0,
            "datetimeFrom": both(start),
            "datetimeTo": both(end),
        },
    }


def _aware(text: str | None) -> datetime | None:
    if not text:
        return None
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    return timeutil.to_beijing(datetime.fromisoformat(t))
