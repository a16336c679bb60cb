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
* Provincial platforms and mirrors spell the same fields differently: ``PM25``,
  ``PM2.5``, ``pm2_5`` for ``PM2_5``; ``O38``, ``O3_8h`` for the 8-h ozone;
  ``PM2524``, ``PM2_5_24h`` for 24-h means (recorded payloads under
  ``tests/ingest/sources/fixtures/provincial/``). Names are compared without
  case, ``_``, ``.`` or ``-``; a field that is neither a pollutant nor one of
  the platform's known extras is reported once per source.
* ``/Date(-62135596800000)/`` (.NET's DateTime.MinValue) is what the Liaoning
  platform publishes for a station without data: that record is one reject
  with that reason. Any record that cannot be read is one reject; the fetch
  never fails for it.
* A mirror that labels Beijing time as UTC (``…T13:00:00Z``): set the source's
  ``ignore_time_offset: true``; ``timezone`` names the zone of naive times.

The real-time endpoint publishes the latest hour only; provincial platforms
also answer a ``TimePoint`` query for earlier hours (``time_param``), which is
what backfills use. With ``time_param: null`` the source asks for the latest
snapshot and keeps what falls in the window.
"""

from __future__ import annotations

import logging
import re
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
from envmon.ingest.sources.convert import Missing, cell, dig, time_problem
from envmon.timeutil import HOUR

logger = logging.getLogger(__name__)

FIELDS = {"pm25": "PM2_5", "pm10": "PM10", "so2": "SO2", "no2": "NO2", "co": "CO", "o3": "O3"}


def _norm(name: str) -> str:
    return re.sub(r"[\s_.\-]", "", name).lower()


# The hourly pollutants under every spelling seen (normalised: PM2_5 = PM25 = PM2.5).
VARIANTS = {_norm(v): p for p, v in FIELDS.items()}
# What the platforms publish besides: derived values (24-h and 8-h means, AQI and
# IAQI, categories) and descriptive fields. Known, not stored, never "unknown".
KNOWN_EXTRAS = frozenset(
    _norm(n)
    for n in (
        "O3_8h", "O38", "O3_8h_24h", "O38_24", "O3_24h", "O3_24", "PM2_5_24h", "PM2524",
        "PM10_24h", "PM1024", "SO2_24h", "SO2_24", "NO2_24h", "NO2_24", "CO_24h", "CO_24",
        "AQI", "Value", "PrimaryPollutant", "PrimaryPollutantName", "PrimaryPollutantInfo",
        "PrimaryPollutantInfoList", "Quality", "QualityStatus", "QualityLevel", "Level",
        "Status", "Measure", "Unheathful", "AQIColor", "AQIDescription", "Area", "CityName",
        "CityCode", "PositionName", "StationName", "StationCode", "TimePoint", "Id", "IsUse",
        "Latitude", "Longitude", "LST",
    )
)  # fmt: skip


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
        for rec in records:
            if not isinstance(rec, dict):
                out.reject(self.name, rec, "record is not a JSON object")
                continue
            with out.one_record(self.name, rec):
                self._record(out, rec)
        return out

    def _record(self, out: Fetched, rec: dict[str, Any]) -> None:
        o: CnemcOptions = self.options
        code = rec.get(o.station_field)
        sid = self.stations.get(code)
        if sid is None:
            if code is None or str(code).strip() == "":
                out.reject(self.name, rec, f"record without {o.station_field}")
            else:
                out.ignored += 1  # another city's station
            return
        raw_time = rec.get(o.time_field)
        point = self.read_time(raw_time, timeutil.BEIJING)
        if point is None:
            why = time_problem(raw_time)
            reason = (
                f"{o.time_field} '{raw_time}' is {why}"
                if why
                else f"unreadable {o.time_field} '{raw_time}'"
            )
            out.reject(self.name, rec, reason, station=sid)
            return
        ts = point - (HOUR if o.time_label == "end" else timedelta(0))
        values = self._values(rec)
        i = out.keep(rec)
        for parameter in o.fields:
            v = values.get(parameter)
            if v is None or isinstance(v, Missing):
                out.missing += 1
                continue
            out.add(i, sid, parameter, ts, v)

    def _values(self, rec: dict[str, Any]) -> dict[str, float | str | Missing]:
        """parameter → value: the configured field name first, then its spellings."""
        o: CnemcOptions = self.options
        wanted = {_norm(f): p for p, f in o.fields.items()}
        named = {o.station_field, o.time_field}
        out: dict[str, float | str | Missing] = {}
        unknown = []
        for key, raw in rec.items():
            n = _norm(str(key))
            parameter = wanted.get(n) or VARIANTS.get(n)
            if parameter is not None and parameter in o.fields:
                v = cell(raw)
                # Two spellings of one pollutant in a record: a value beats a "—".
                if parameter not in out or isinstance(out[parameter], Missing):
                    out[parameter] = v
            elif key not in named and n not in KNOWN_EXTRAS and not n.startswith("iaqi"):
                unknown.append(str(key))
        if unknown:
            self._report_unknown(unknown)
        return out

    def _report_unknown(self, names: list[str]) -> None:
        seen: set[str] = self.__dict__.setdefault("_unknown_fields", set())
        new = sorted(set(names) - seen)
        if new:
            seen.update(new)
            logger.warning(
                "source=%s unknown field(s) %s in its records: not read "
                "(map them with options.fields if they are pollutants)",
                self.name,
                ", ".join(new),
            )


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
