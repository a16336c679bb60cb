"""CNEMC real-time air quality, simulated: ``GET /cnemc/air/hourly?TimePoint=…``.

The shape :mod:`envmon.ingest.sources.cnemc_air` reads: one JSON record per
station for the hour ending at ``TimePoint`` (the end of the hour), values as
strings, "—" for a missing value, AQI, primary pollutant and quality computed
from the published values (24-h PM means and the 8-h O3 mean of the hours
before). Station codes are catalog ids.
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
            pm24 = np.nanmean(valid[:, :, :2], axis=0)
            o3_8h = np.nanmean(valid[-8:, :, params.index("o3")], axis=0)
        end = time_of(h + 1)
        label = end.strftime("%Y-%m-%dT%H:%M:%S")
        out = []
        for i, st in enumerate(self.data.stations["air"]):
            rec: dict[str, Any] = {
                "Area": st.city,
                "PositionName": st.name,
                "StationCode": st.id,
                "TimePoint": label,
                "Latitude": f"{st.lat:.4f}",
                "Longitude": f"{st.lon:.4f}",
            }
            conc: dict[str, float | None] = {}
            for j, p in enumerate(params):
                v = values[i, j]
                ok = not math.isnan(v) and flags[i, j] == FLAG_N
                conc[p] = float(v) if ok else None
                rec[_CNEMC_FIELDS[p]] = fmt(v, 1 if p == "co" else 0) if ok else "—"
            o3_8 = o3_8h[i]
            rec["O3_8h"] = "—" if math.isnan(o3_8) else fmt(o3_8, 0)
            result = aqi_std.hourly_aqi(
                {
                    "pm25_24h": None if math.isnan(pm24[i, 0]) else round(float(pm24[i, 0])),
                    "pm10_24h": None if math.isnan(pm24[i, 1]) else round(float(pm24[i, 1])),
                    "so2_1h": conc["so2"],
                    "no2_1h": conc["no2"],
                    "co_1h": conc["co"],
                    "o3_1h": conc["o3"],
                    "o3_8h": None if math.isnan(o3_8) else round(float(o3_8)),
                },
                edition=aqi_std.edition_for(timeutil.beijing_day(end)),
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
