"""``generic_json``: any JSON platform, described in the config instead of in code.

Records are found at ``records`` (a dotted path; "" = the answer is the list).
Two layouts:

* ``long``: one record per reading — ``station``, ``time``, ``parameter``,
  ``value`` and optionally ``unit`` and ``flag`` name the fields (dotted paths
  inside the record);
* ``wide``: one record per station and time — ``columns`` maps envmon
  parameter codes to fields.

Example (a county bureau's air API)::

    - name: county-air
      kind: generic_json
      base_url: https://example.gov.cn
      options:
        path: /api/air/hourly
        params: {from: "{start}", to: "{end}"}     # {start}/{end}: the window
        request_time_format: "%Y-%m-%d %H:%M:%S"
        records: data.list
        layout: wide
        station: siteCode
        time: monitorTime
        time_label: end                              # the time closes the hour
        columns: {pm25: pm25Value, pm10: pm10Value, co: coValue}
        units: {co: mg/m3}
        kinds: [air]

Times without an offset are in ``timezone`` (Beijing by default);
``time_format`` is ``iso``, ``epoch_s``, ``epoch_ms`` or a strftime pattern.
Units are converted to envmon's (ppb/ppm for gases at 298.15 K).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from envmon.catalog import KINDS
from envmon.ingest.sources.base import Fetched, PayloadError, Source
from envmon.ingest.sources.convert import (
    MISSING_MARKERS,
    Missing,
    cell,
    dig,
    parse_time,
    strip_tags,
    unit_factor,
)
from envmon.parameters import PERIODS
from envmon.timeutil import BEIJING_TZ_NAME

_PERIOD_LENGTH = {
    "rt": timedelta(0),
    "1min": timedelta(minutes=1),
    "5min": timedelta(minutes=5),
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
}


class GenericOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = ""
    params: dict[str, str] = Field(default_factory=dict)
    request_time_format: str = Field(
        default="iso", description="iso | epoch_s | epoch_ms | strftime"
    )
    request_timezone: str = BEIJING_TZ_NAME
    layout: Literal["long", "wide"] = "long"
    station: str
    time: str
    parameter: str | None = None
    value: str | None = None
    unit: str | None = None
    flag: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    units: dict[str, str] = Field(default_factory=dict)
    parameters: dict[str, str] = Field(
        default_factory=dict, description="Platform parameter names → envmon codes (long)."
    )
    time_format: str = "iso"
    timezone: str = BEIJING_TZ_NAME
    time_label: Literal["start", "end"] = "start"
    period: str = "1h"
    missing: list[str] = Field(default_factory=list)
    kinds: list[Literal["air", "water", "weather"]] = Field(default_factory=lambda: list(KINDS))
    # JSON only
    records: str = ""
    page_param: str | None = None
    size_param: str | None = None
    page_size: int = Field(default=500, ge=1)
    first_page: int = 1
    max_pages: int = Field(default=100, ge=1)
    # CSV only
    delimiter: str = ","
    encoding: str | None = None
    skip_rows: int = Field(default=0, ge=0)

    @field_validator("timezone", "request_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone '{value}'") from err
        return value

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        if value not in PERIODS:
            raise ValueError(f"one of {', '.join(PERIODS)}")
        return value

    @model_validator(mode="after")
    def _layout(self) -> GenericOptions:
        if self.layout == "long" and (not self.parameter or not self.value):
            raise ValueError("layout 'long' needs 'parameter' and 'value'")
        if self.layout == "wide" and not self.columns:
            raise ValueError("layout 'wide' needs 'columns' (envmon parameter → field)")
        return self

    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)


def format_request_time(t: datetime, fmt: str, zone: str) -> str:
    if fmt == "epoch_s":
        return str(int(t.timestamp()))
    if fmt == "epoch_ms":
        return str(int(t.timestamp() * 1000))
    local = t.astimezone(ZoneInfo(zone))
    return local.isoformat() if fmt == "iso" else local.strftime(fmt)


def read_time(value: Any, fmt: str, tz: tzinfo, *, wall_clock: bool = False) -> datetime | None:
    if fmt in ("epoch_s", "epoch_ms"):
        try:
            x = float(str(value).strip())
            t = datetime.fromtimestamp(x / 1000.0 if fmt == "epoch_ms" else x, UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            return None
        return t.replace(tzinfo=tz) if wall_clock else t
    if fmt == "iso":
        return parse_time(value, tz, wall_clock=wall_clock)
    try:
        t = datetime.strptime(strip_tags(str(value)), fmt)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=tz)


class Mapper:
    """Records (dicts, or CSV rows as dicts) → readings, by the options."""

    def __init__(self, source: Source, options: GenericOptions) -> None:
        self.source = source
        self.o = options
        zone = source.config.timezone  # the source's setting wins over the option
        self.tz = ZoneInfo(zone) if zone else options.tz()
        self.markers = MISSING_MARKERS | {m.strip().lower() for m in options.missing}
        self.shift = _PERIOD_LENGTH[options.period] if options.time_label == "end" else timedelta(0)
        self.factors: dict[str, float | str] = {}
        for code, unit in options.units.items():
            try:
                self.factors[code] = unit_factor(code, unit)
            except ValueError as err:
                self.factors[code] = str(err)

    def get(self, rec: Any, path: str) -> Any:
        if isinstance(rec, dict) and path in rec:
            return rec[path]
        return dig(rec, path)

    def map(self, records: list[Any]) -> Fetched:
        o = self.o
        out = Fetched()
        name = self.source.name
        for rec in records:
            if not isinstance(rec, dict):
                out.reject(name, rec, "record is not an object")
                continue
            with out.one_record(name, rec):
                code = self.get(rec, o.station)
                sid = self.source.stations.get(code)
                if sid is None:
                    if code is None or str(code).strip() == "":
                        out.reject(name, rec, f"record without '{o.station}'")
                    else:
                        out.ignored += 1
                    continue
                raw_time = self.get(rec, o.time)
                t = read_time(
                    raw_time,
                    o.time_format,
                    self.tz,
                    wall_clock=self.source.config.ignore_time_offset,
                )
                if t is None:
                    out.reject(
                        name, rec, f"unreadable time '{raw_time}' ({o.time_format})", station=sid
                    )
                    continue
                ts = t - self.shift
                flag = str(self.get(rec, o.flag) or "N") if o.flag else "N"
                i = out.keep(rec)
                if o.layout == "wide":
                    for code_, fld in o.columns.items():
                        self._value(out, i, rec, sid, code_, ts, self.get(rec, fld), None, flag)
                else:
                    assert o.parameter is not None and o.value is not None
                    pname = str(self.get(rec, o.parameter) or "").strip()
                    if o.parameters:
                        mapped = o.parameters.get(pname)
                        if mapped is None:
                            out.ignored += 1
                            continue
                        pname = mapped
                    unit = self.get(rec, o.unit) if o.unit else None
                    self._value(out, i, rec, sid, pname, ts, self.get(rec, o.value), unit, flag)
        return out

    def _value(
        self,
        out: Fetched,
        i: int,
        rec: Any,
        sid: str,
        parameter: str,
        ts: datetime,
        raw: Any,
        unit: Any,
        flag: str,
    ) -> None:
        v = cell(raw, markers=self.markers)
        if isinstance(v, Missing):
            out.missing += 1
            return
        factor: float | str = self.factors.get(parameter, 1.0)
        if unit not in (None, ""):
            try:
                factor = unit_factor(parameter, str(unit))
            except ValueError as err:
                factor = str(err)
        if isinstance(factor, str):
            out.reject(self.source.name, rec, factor, station=sid, parameter=parameter, ts=ts)
            return
        if isinstance(v, float) and factor != 1.0:
            v = round(v * factor, 6)
        out.add(i, sid, parameter, ts, v, flag=flag, period=self.o.period)

    def params(self, start: datetime, end: datetime) -> dict[str, str | int | float]:
        o = self.o
        s = format_request_time(start, o.request_time_format, o.request_timezone)
        e = format_request_time(end, o.request_time_format, o.request_timezone)
        return {k: v.replace("{start}", s).replace("{end}", e) for k, v in o.params.items()}


class GenericJson(Source):
    kind = "generic_json"
    station_kinds = KINDS
    Options = GenericOptions

    async def fetch(self, start: datetime, end: datetime) -> Fetched:
        o: GenericOptions = self.options
        mapper = Mapper(self, o)
        params = mapper.params(start, end)
        out = Fetched()
        page = o.first_page
        for _ in range(o.max_pages):
            if o.page_param:
                params[o.page_param] = page
                if o.size_param:
                    params[o.size_param] = o.page_size
            payload = await self.http.get_json(o.path, params)
            records = dig(payload, o.records) if o.records else payload
            if not isinstance(records, list):
                raise PayloadError(
                    f"no list of records at '{o.records or '(top level)'}'", str(payload)[:2000]
                )
            out.extend(mapper.map(records))
            if not o.page_param or len(records) < o.page_size:
                return out.within(start, end)
            page += 1
        raise PayloadError(f"more than {o.max_pages} pages: the paging does not end")
