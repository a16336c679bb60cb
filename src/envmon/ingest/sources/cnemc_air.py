"""``cnemc_air``: the national/provincial real-time air-quality publishing JSON.

One record per station and hour, with the public platform's field names
(CNEMC, and the 真气网-style mirrors of it)::

    {"Area": "太原市", "PositionName": "尖草坪", "StationCode": "1081A",
     "TimePoint": "2025-01-10T09:00:00", "PM2_5": "35", "PM10": "61", "SO2": "9",
     "NO2": "38", "CO": "0.8", "O3": "41", "O3_8h": "38", "AQI": "50",
     "PrimaryPollutant": "—", "Quality": "优"}

Conventions of the platform that matter here:

* ``TimePoint`` is Beijing time and labels the END of the hour (the 09:00
  value is the mean of 08:00–09:00); envmon stores the start (08:00). Some
  mirrors send ``/Date(ms)/`` or epoch milliseconds instead: both are read.
* Values are strings; "—" (also "-", "" or null) means no valid value, which
  includes hours the station spent in maintenance or calibration.
* µg/m³ for everything but CO, which is mg/m³ — the units envmon stores.
* ``O3_8h``, ``AQI``, ``PrimaryPollutant`` and ``Quality`` are derived by the
  platform; envmon derives them itself (HJ 633) and does not store them.

The real-time endpoint publishes the latest hour only; provincial platforms
also answer a ``TimePoint`` query for earlier hours (``time_param``), which is
what backfills use. With ``time_param: null`` the source asks for the latest
snapshot and keeps what falls in the window.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from envmon import timeutil
from envmon.ingest.sources.base import (
    Fetched,
    PayloadError,
    Source,
    gather_all,
    hours,
)
from envmon.ingest.sources.convert import Missing, cell, dig, parse_time
from envmon.timeutil import HOUR

FIELDS = {"pm25": "PM2_5", "pm10": "PM10", "so2": "SO2", "no2": "NO2", "co": "CO", "o3": "O3"}


class CnemcOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(default="/cnemc/air/hourly", description="Endpoint path under base_url.")
    time_param: str | None = Field(
        default="TimePoint", description="Query parameter for the hour; null = latest only."
    )
    time_format: str = "%Y-%m-%d %H:%M:%S"
    records_path: str = Field(default="", description="Dotted path to the list of records.")
    station_field: str = "StationCode"
    time_field: str = "TimePoint"
    time_label: Literal["end", "start"] = "end"
    fields: dict[str, str] = Field(default_factory=lambda: dict(FIELDS))


class CnemcAir(Source):
    kind = "cnemc_air"
    station_kinds = ("air",)
    Options = CnemcOptions

    async def fetch(self, start: datetime, end: datetime) -> Fetched:
        o: CnemcOptions = self.options
        if o.time_param is None:
            payload = await self.http.get_json(o.path)
            return self.parse(payload).within(start, end)
        shift = HOUR if o.time_label == "end" else timedelta(0)
        points = [t + shift for t in hours(start, end)]
        pages = await gather_all(self._one(t) for t in points)
        out = Fetched()
        for page in pages:
            out.extend(page)
        return out.within(start, end)

    async def _one(self, point: datetime) -> Fetched:
        o: CnemcOptions = self.options
        assert o.time_param is not None
        label = timeutil.to_beijing(point).strftime(o.time_format)
        payload = await self.http.get_json(o.path, {o.time_param: label})
        return self.parse(payload)

    def parse(self, payload: Any) -> Fetched:
        """One page of the platform's JSON → readings (pure: used by tests directly)."""
        o: CnemcOptions = self.options
        records = _records(payload, o.records_path)
        out = Fetched()
        shift = HOUR if o.time_label == "end" else timedelta(0)
        for rec in records:
            if not isinstance(rec, dict):
                out.reject(self.name, rec, "record is not a JSON object")
                continue
            code = rec.get(o.station_field)
            sid = self.stations.get(code)
            if sid is None:
                if code is None or str(code).strip() == "":
                    out.reject(self.name, rec, f"record without {o.station_field}")
                else:
                    out.ignored += 1  # another city's station
                continue
            point = parse_time(rec.get(o.time_field), timeutil.BEIJING)
            if point is None:
                out.reject(
                    self.name,
                    rec,
                    f"unreadable {o.time_field} '{rec.get(o.time_field)}'",
                    station=sid,
                )
                continue
            ts = point - shift
            i = out.keep(rec)
            for parameter, name in o.fields.items():
                v = cell(rec.get(name))
                if isinstance(v, Missing):
                    out.missing += 1
                    continue
                out.add(i, sid, parameter, ts, v)
        return out


def _records(payload: Any, path: str) -> list[Any]:
    found = dig(payload, path) if path else payload
    if isinstance(found, dict):
        for key in ("data", "Data", "rows", "Rows", "result", "records"):
            if isinstance(found.get(key), list):
                return list(found[key])
    if not isinstance(found, list):
        raise PayloadError(
            f"expected a list of records{f' at {path!r}' if path else ''}, "
            f"got {type(found).__name__}",
            str(payload)[:2000],
        )
    return found
