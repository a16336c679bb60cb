"""``openaq_v3``: OpenAQ API v3 — locations, their sensors, and hourly values per sensor.

* ``GET /v3/locations/{id}`` (or ``/v3/locations?bbox=…`` pages) →
  ``{"meta": {…}, "results": [{"id": 8118, "name": …, "sensors": [{"id": 3917,
  "name": "pm25 µg/m³", "parameter": {"id": 2, "name": "pm25", "units": "µg/m³"}}]}]}``
* ``GET /v3/sensors/{id}/hours?datetime_from=…&datetime_to=…&limit=1000&page=N`` →
  ``{"meta": {"page": 1, "limit": 1000, "found": 24}, "results": [{"value": 35.0,
  "flagInfo": {"hasFlags": false}, "parameter": {"name": "pm25", "units": "µg/m³"},
  "period": {"label": "1hour", "interval": "01:00:00",
             "datetimeFrom": {"utc": "2025-01-10T00:00:00Z", "local": "…+08:00"},
             "datetimeTo": {…}}, "coverage": {…}}]}``

The key goes in the ``X-API-Key`` header (the source's secret). Pages are
read until one comes back shorter than ``limit`` (``meta.found`` may be a
string such as ">1000"). Rate limits: 429 with Retry-After backs off, and the
``X-RateLimit-Remaining``/``-Reset`` headers pause the source before it hits
the limit (see :class:`~envmon.ingest.sources.base.Http`); ``rate_limit`` in
the config spaces requests (free keys: 60/min).

Hours are labelled by ``datetimeFrom`` (the start), as envmon stores them.
Gas values in ppb/ppm are converted to µg/m³ (CO mg/m³) at 298.15 K; values
the provider flagged (``flagInfo.hasFlags``) are quarantined with that reason.
A location or sensor that is gone (404) is an error of that station, not of
the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from envmon.durations import Duration
from envmon.errors import ConfigError
from envmon.ingest.sources.base import (
    Fetched,
    PayloadError,
    Source,
    SourceFatalError,
    gather_all,
)
from envmon.ingest.sources.convert import Missing, cell, parse_time, unit_factor

PARAMETERS = {"pm25": "pm25", "pm10": "pm10", "so2": "so2", "no2": "no2", "o3": "o3", "co": "co"}


class OpenAqOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(default="/v3", description="Path of the API version under base_url.")
    station_key: Literal["id", "name"] = Field(
        default="id", description="Map locations by their numeric id or by their name."
    )
    bbox: str | None = Field(
        default=None, description="min lon,min lat,max lon,max lat: find locations by area."
    )
    limit: int = Field(default=1000, ge=1, le=1000)
    max_pages: int = Field(default=100, ge=1)
    parameters: dict[str, str] = Field(default_factory=lambda: dict(PARAMETERS))
    rediscover: Duration = Field(default=timedelta(days=1), description="Refresh sensor lists.")


@dataclass(frozen=True, slots=True)
class Sensor:
    id: int
    station: str
    parameter: str
    units: str


class OpenAqV3(Source):
    kind = "openaq_v3"
    station_kinds = ("air",)
    Options = OpenAqOptions
    needs_secret = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.secret:
            raise ConfigError(
                f"source '{self.name}': OpenAQ needs an API key "
                f'(ENVMON_COLLECT__SECRETS=\'{{"{self.name}": "…"}}\')'
            )
        o: OpenAqOptions = self.options
        if o.station_key == "name" and not o.bbox:
            raise ConfigError(f"source '{self.name}': station_key 'name' needs options.bbox")
        self.sensors: list[Sensor] | None = None
        self.discovered_at: datetime | None = None
        self.headers = {"X-API-Key": self.secret, "Accept": "application/json"}

    async def _get(self, path: str, params: dict[str, str | int | float] | None = None) -> Any:
        o: OpenAqOptions = self.options
        payload = await self.http.get_json(o.prefix + path, params, self.headers)
        if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
            raise PayloadError(f"no 'results' list in the answer to {path}", str(payload)[:2000])
        return payload

    async def _pages(self, path: str, params: dict[str, str | int | float]) -> list[Any]:
        o: OpenAqOptions = self.options
        out: list[Any] = []
        for page in range(1, o.max_pages + 1):
            payload = await self._get(path, {**params, "limit": o.limit, "page": page})
            results = payload["results"]
            out.extend(results)
            if len(results) < o.limit:
                return out
        raise PayloadError(f"{path}: more than {o.max_pages} pages")

    async def discover(self, out: Fetched) -> list[Sensor]:
        """The sensors of the mapped locations (cached for ``rediscover``)."""
        o: OpenAqOptions = self.options
        now = self.clock()
        if (
            self.sensors is not None
            and self.discovered_at is not None
            and now - self.discovered_at < o.rediscover
        ):
            return self.sensors
        locations: list[Any] = []
        if o.station_key == "name":
            assert o.bbox is not None
            locations = await self._pages("/locations", {"bbox": o.bbox})
        else:

            async def one(code: str) -> list[Any]:
                try:
                    return list((await self._get(f"/locations/{code}"))["results"])
                except SourceFatalError as err:
                    if err.status != 404:
                        raise
                    sid = self.stations.get(code)
                    if sid:
                        out.station_errors[sid] = f"OpenAQ location {code}: {err}"
                    return []

            for found in await gather_all(one(c) for c in self.stations.request_codes()):
                locations.extend(found)
        sensors: list[Sensor] = []
        for loc in locations:
            if not isinstance(loc, dict):
                continue
            key = loc.get("id") if o.station_key == "id" else loc.get("name")
            sid = self.stations.get(key)
            if sid is None:
                continue
            for s in loc.get("sensors") or []:
                if not isinstance(s, dict):
                    continue
                par = s.get("parameter") or {}
                code = o.parameters.get(str(par.get("name", "")))
                if code is None or not isinstance(s.get("id"), int):
                    continue
                sensors.append(Sensor(s["id"], sid, code, str(par.get("units") or "")))
        self.sensors = sensors
        self.discovered_at = now
        return sensors

    async def fetch(self, start: datetime, end: datetime) -> Fetched:
        out = Fetched()
        sensors = await self.discover(out)
        params: dict[str, str | int | float] = {
            "datetime_from": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "datetime_to": end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

        async def one(sensor: Sensor) -> Fetched:
            try:
                rows = await self._pages(f"/sensors/{sensor.id}/hours", params)
            except SourceFatalError as err:
                if err.status != 404:
                    raise
                got = Fetched()
                got.station_errors[sensor.station] = f"OpenAQ sensor {sensor.id}: {err}"
                return got
            return self.parse(sensor, rows)

        for got in await gather_all(one(s) for s in sensors):
            out.extend(got)
        return out.within(start, end)

    def parse(self, sensor: Sensor, rows: list[Any]) -> Fetched:
        out = Fetched()
        for rec in rows:
            if not isinstance(rec, dict):
                out.reject(self.name, rec, "result is not a JSON object", station=sensor.station)
                continue
            period = rec.get("period") or {}
            frm = (period.get("datetimeFrom") or {}) if isinstance(period, dict) else {}
            ts = parse_time(frm.get("utc") if isinstance(frm, dict) else None, UTC)
            if ts is None:
                out.reject(
                    self.name,
                    rec,
                    "unreadable period.datetimeFrom.utc",
                    station=sensor.station,
                    parameter=sensor.parameter,
                )
                continue
            v = cell(rec.get("value"))
            if isinstance(v, Missing):
                out.missing += 1
                continue
            if (rec.get("flagInfo") or {}).get("hasFlags"):
                out.reject(
                    self.name,
                    rec,
                    "value flagged by the provider (flagInfo.hasFlags)",
                    station=sensor.station,
                    parameter=sensor.parameter,
                    ts=ts,
                )
                continue
            par = rec.get("parameter") or {}
            units = str(par.get("units") or sensor.units) if isinstance(par, dict) else sensor.units
            try:
                factor = unit_factor(sensor.parameter, units)
            except ValueError as err:
                out.reject(
                    self.name,
                    rec,
                    str(err),
                    station=sensor.station,
                    parameter=sensor.parameter,
                    ts=ts,
                )
                continue
            i = out.keep(rec)
            if isinstance(v, float):
                v = round(v * factor, 4) if factor != 1.0 else v
            out.add(i, sensor.station, sensor.parameter, ts, v)
        return out
