"""CNEMC real-time air quality, simulated: ``GET /cnemc/air/hourly?TimePoint=…``.

The shape :mod:`envmon.ingest.sources.cnemc_air` reads: one JSON record per
station for the hour ending at ``TimePoint`` (the end of the hour), values as
strings, "—" for a missing value and "/" for a pollutant the station does not
monitor (catalog ``not_monitored``), AQI, primary pollutant and quality computed as
the national platform does (issue 15): from the published 1-h values, PM against
the 24-h breakpoints, no O3 8-h, the edition of the hour's start. Station codes are
the CNEMC codes (catalog ``station_no``; placeholders without one: the catalog id).
"""

from __future__ import annotations

import math
import warnings
from datetime import datetime
from typing import Any, Final

import numpy as np
from aiohttp import web

from envmon import timeutil
from envmon.simulate.base import FLAG_N, hour_index
from envmon.simulate.platforms.base import PARAMS, Hours, Platform, fmt, time_of
from envmon.standards import aqi as aqi_std

_CNEMC_FIELDS: Final = {
    "pm25": "PM2_5",
    "pm10": "PM10",
    "so2": "SO2",
    "no2": "NO2",
    "co": "CO",
    "o3": "O3",
}
_PRIMARY_NAMES: Final = {
    "pm25": "PM2.5",
    "pm10": "PM10",
    "so2": "SO2",
    "no2": "NO2",
    "co": "CO",
    "o3": "O3",
}


class CnemcAir(Platform):
    name = "cnemc"
    source = "cnemc_air"

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/cnemc/air/hourly", self.cnemc)]

    async def cnemc(self, request: web.Request) -> web.Response:
        tp = request.query.get("TimePoint")
        latest = self.publisher.latest_hour()
        if tp:
            try:
                end = timeutil.to_beijing(datetime.fromisoformat(tp.replace(" ", "T")))
            except ValueError:
                return web.json_response({"detail": f"bad TimePoint {tp!r}"}, status=400)
            h = hour_index(end, ceil=False) - 1  # TimePoint labels the end of the hour
        else:
            h = latest
        if h > latest:
            return await self.answer(request, [])
        rows = await self.data.hours("air", max(0, h - 23), h + 1)
        return await self.answer(request, self._cnemc_records(rows))

    def _cnemc_records(self, rows: Hours) -> list[dict[str, Any]]:
        h, values, flags = rows[-1]
        params = PARAMS["air"]
        valid = np.stack([np.where(f == FLAG_N, v, np.nan) for _, v, f in rows])  # (t, s, p)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            # An hour with no valid value gives NaN ("mean of empty slice"), as wanted.
            warnings.simplefilter("ignore", category=RuntimeWarning)
            o3_8h = np.nanmean(valid[-8:, :, params.index("o3")], axis=0)
        end = time_of(h + 1)
        label = end.strftime("%Y-%m-%dT%H:%M:%S")
        # The hour labelled 2026-03-01 00:00 (23:00-24:00 of 28 February) is HJ 633-2012.
        edition = aqi_std.edition_for(time_of(h))
        out = []
        for i, st in enumerate(self.data.stations["air"]):
            absent = set(getattr(st, "not_monitored", ()) or ())
            rec: dict[str, Any] = {
                "Area": st.city,
                "PositionName": st.name,
                "StationCode": getattr(st, "station_no", None) or st.id,
                "TimePoint": label,
                "Latitude": f"{st.lat:.4f}",
                "Longitude": f"{st.lon:.4f}",
            }
            conc: dict[str, str | None] = {}
            for j, p in enumerate(params):
                v = values[i, j]
                ok = not math.isnan(v) and flags[i, j] == FLAG_N
                text = fmt(v, 1 if p == "co" else 0) if ok else None
                conc[p] = None if p in absent else text
                rec[_CNEMC_FIELDS[p]] = "/" if p in absent else (text or "—")
            o3_8 = o3_8h[i]
            rec["O3_8h"] = "—" if math.isnan(o3_8) else fmt(o3_8, 0)
            result = aqi_std.hourly_aqi(
                {f"{p}_1h": conc[p] for p in ("so2", "no2", "co", "o3", "pm10", "pm25")},
                edition=edition,
                not_monitored=sorted(absent),
            )
            rec["AQI"] = str(result.aqi) if result.aqi is not None else "—"
            rec["PrimaryPollutant"] = (
                ",".join(_PRIMARY_NAMES.get(p, p) for p in result.primary) or "—"
            )
            rec["Quality"] = result.level or "—"
            self._cnemc_fault(rec, st.id, h)
            out.append(rec)
        return out

    def _cnemc_fault(self, rec: dict[str, Any], station: str, h: int) -> None:
        how = self.faults.record("cnemc", station, h)
        if how is None:
            return
        if how < 0.5:
            rec["PM2_5"] = "-3"  # a negative concentration
        else:
            rec["TimePoint"] = "2025-13-45T25:00:00"  # an impossible time
