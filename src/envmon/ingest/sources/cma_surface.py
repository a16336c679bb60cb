"""``cma_surface``: hourly surface observations from the CMA data service (天擎/CIMISS MUSIC).

Request (HTTP GET, JSON)::

    /api?userId=…&pwd=…&dataFormat=json&interfaceId=getSurfEleByTimeRangeAndStaID
        &dataCode=SURF_CHN_MUL_HOR&timeRange=[20250110000000,20250110230000]
        &staIDs=53677,53678&elements=Station_Id_C,Year,Mon,Day,Hour,TEM,RHU,PRS,…

Answer::

    {"returnCode": "0", "returnMessage": "Query Succeed", "rowCount": "2", "colCount": "12",
     "requestParams": "…", "requestTime": "…", "responseTime": "…", "takeTime": "0.03",
     "fieldNames": "区站号(字符) 年 月 日 时 温度/气温 …",
     "fieldUnits": "- 年 月 日 时 摄氏度(℃) …",
     "DS": [{"Station_Id_C": "53677", "Year": "2025", "Mon": "1", "Day": "10", "Hour": "0",
             "TEM": "-4.3000", "RHU": "61", "PRS": "921.4", …}]}

Conventions of the service that matter here:

* ``Year Mon Day Hour`` (and ``timeRange``) are **UTC**, not Beijing time:
  ``Hour 0`` is 08:00 Beijing. The observation closes its hour (``PRE_1h`` is
  the precipitation of the hour before it), so envmon stores it at the start
  of that hour, like the air platforms' end-of-hour time points.
* Every value is a string, ``"-4.3000"``. Special values start at 999990:
  999999 missing (缺测), 999998 not observed at this station (不应出现),
  999997 / 999996 … other "no value" codes; 999990 is a trace of
  precipitation (微量), stored as 0.0 mm; 999017 is calm wind for the wind
  direction (静风), which has no direction and is left out. Anything ≥ 999000
  not named here counts as missing.
* The service answers HTTP 200 even when the query failed: ``returnCode`` is
  what says so. "0" is success; a failure whose message is about the user,
  password or permission is fatal; a "no data" answer is an empty result;
  anything else is transient. The service's numeric code table differs
  between deployments, so the codes can be pinned in ``options``
  (``fatal_return_codes``, ``empty_return_codes``).
* Units: TEM °C, RHU %, PRS hPa, WIN_S_Avg_2mi m/s, WIN_D_Avg_2mi degrees,
  PRE_1h mm, VIS m (SURF_CHN_MUL_HOR) — envmon's own.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from envmon.errors import ConfigError
from envmon.ingest.sources.base import (
    Fetched,
    PayloadError,
    Source,
    SourceFatalError,
    TransientSourceError,
    gather_all,
)
from envmon.ingest.sources.convert import Missing, cell, parse_time, unit_factor
from envmon.timeutil import HOUR

ELEMENTS = {
    "air_temp": "TEM",
    "rh": "RHU",
    "pressure": "PRS",
    "wind_speed": "WIN_S_Avg_2mi",
    "wind_dir": "WIN_D_Avg_2mi",
    "precip": "PRE_1h",
    "visibility": "VIS",
}
SENTINEL_FLOOR = 999000.0
TRACE = 999990.0  # 微量降水
CALM = 999017.0  # 静风 (wind direction)
_FATAL = re.compile(r"pass(word|wd)|user|permission|author|denied|密码|用户|权限|授权|非法", re.I)
_EMPTY = re.compile(r"no data|not found|没有数据|无数据|结果为空", re.I)


class CmaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = "/api"
    interface_id: str = "getSurfEleByTimeRangeAndStaID"
    data_code: str = "SURF_CHN_MUL_HOR"
    user_id: str | None = Field(default=None, description="The password is the source's secret.")
    batch: int = Field(default=100, ge=1, le=1000, description="Stations per request.")
    elements: dict[str, str] = Field(default_factory=lambda: dict(ELEMENTS))
    units: dict[str, str] = Field(default_factory=dict, description="Non-canonical units.")
    time_label: Literal["end", "start"] = "end"
    fatal_return_codes: list[str] = Field(default_factory=list)
    empty_return_codes: list[str] = Field(default_factory=list)


class CmaSurface(Source):
    kind = "cma_surface"
    station_kinds = ("weather",)
    Options = CmaOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o: CmaOptions = self.options
        self.factors: dict[str, float] = {}
        for parameter in o.elements:
            try:
                self.factors[parameter] = unit_factor(parameter, o.units.get(parameter))
            except ValueError as err:
                raise ConfigError(f"source '{self.name}': options.units: {err}") from err

    async def fetch(self, start: datetime, end: datetime) -> Fetched:
        o: CmaOptions = self.options
        shift = HOUR if o.time_label == "end" else timedelta(0)
        # timeRange is closed at both ends, in UTC: observation times in [start+1h, end].
        first = (start + shift).astimezone(UTC)
        last = (end + shift - HOUR).astimezone(UTC)
        if last < first:
            return Fetched()
        codes = self.stations.request_codes()
        batches = [codes[i : i + o.batch] for i in range(0, len(codes), o.batch)]
        pages = await gather_all(self._one(b, first, last) for b in batches)
        out = Fetched()
        for page in pages:
            out.extend(page)
        return out.within(start, end)

    async def _one(self, codes: list[str], first: datetime, last: datetime) -> Fetched:
        o: CmaOptions = self.options
        params: dict[str, str | int | float] = {
            "interfaceId": o.interface_id,
            "dataCode": o.data_code,
            "timeRange": f"[{first:%Y%m%d%H%M%S},{last:%Y%m%d%H%M%S}]",
            "staIDs": ",".join(codes),
            "elements": ",".join(
                ["Station_Id_C", "Year", "Mon", "Day", "Hour", *o.elements.values()]
            ),
            "dataFormat": "json",
        }
        if o.user_id:
            params["userId"] = o.user_id
        if self.secret:
            params["pwd"] = self.secret
        return self.parse(await self.http.get_json(o.path, params))

    def parse(self, payload: Any) -> Fetched:
        o: CmaOptions = self.options
        if not isinstance(payload, dict) or "returnCode" not in payload:
            raise PayloadError("no returnCode in the answer", str(payload)[:2000])
        code = str(payload.get("returnCode")).strip()
        message = str(payload.get("returnMessage") or "")
        if code != "0":
            what = f"CMA returnCode {code}: {message}"
            if code in o.fatal_return_codes or (
                code not in o.empty_return_codes and _FATAL.search(message)
            ):
                raise SourceFatalError(what)
            if code in o.empty_return_codes or _EMPTY.search(message):
                return Fetched()
            raise TransientSourceError(what)
        rows = payload.get("DS")
        if rows is None:
            rows = []
        if not isinstance(rows, list):
            raise PayloadError("DS is not a list", str(payload)[:2000])
        out = Fetched()
        shift = HOUR if o.time_label == "end" else timedelta(0)
        for rec in rows:
            if not isinstance(rec, dict):
                out.reject(self.name, rec, "DS row is not a JSON object")
                continue
            sid = self.stations.get(rec.get("Station_Id_C"))
            if sid is None:
                if rec.get("Station_Id_C") in (None, ""):
                    out.reject(self.name, rec, "row without Station_Id_C")
                else:
                    out.ignored += 1
                continue
            obs = _obs_time(rec)
            if obs is None:
                out.reject(
                    self.name,
                    rec,
                    "unreadable observation time "
                    f"Year={rec.get('Year')} Mon={rec.get('Mon')} Day={rec.get('Day')} "
                    f"Hour={rec.get('Hour')}",
                    station=sid,
                )
                continue
            ts = obs - shift
            i = out.keep(rec)
            for parameter, element in o.elements.items():
                v = cell(rec.get(element))
                if isinstance(v, Missing):
                    out.missing += 1
                    continue
                if isinstance(v, float) and v >= SENTINEL_FLOOR:
                    if v == TRACE and parameter == "precip":
                        v = 0.0
                    else:
                        out.missing += 1  # 999999 缺测, 999017 静风 …
                        continue
                if isinstance(v, float):
                    v = v * self.factors[parameter]
                out.add(i, sid, parameter, ts, v)
        return out


def _obs_time(rec: dict[str, Any]) -> datetime | None:
    if rec.get("Datetime"):
        return parse_time(rec["Datetime"], UTC)
    try:
        return datetime(
            int(str(rec["Year"])),
            int(str(rec["Mon"])),
            int(str(rec["Day"])),
            int(str(rec["Hour"])),
            tzinfo=UTC,
        )
    except (KeyError, TypeError, ValueError):
        return None
