"""CMA 天擎/CIMISS surface hourly observations, simulated: ``GET /cma/api?interfaceId=…``.

The shape :mod:`envmon.ingest.sources.cma_surface` reads: ``timeRange=[…]`` in
UTC, rows of strings in ``DS`` with the observation time as UTC ``Year Mon Day
Hour`` (the end of the simulated hour), 999999 for a missing value, 999990 for
a trace of rain, 999017 for calm wind, 999998 for an element the station does
not observe; errors (a "500" fault too) as HTTP 200 with ``returnCode`` -1.
Station codes are the 区站号 ``station_no``, else the catalog id.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt
from aiohttp import web

from envmon.simulate.base import FLAG_N, hour_index
from envmon.simulate.platforms.base import PARAMS, Platform, Publisher, time_of

_CMA_ELEMENTS: Final = {
    "TEM": "air_temp",
    "RHU": "rh",
    "PRS": "pressure",
    "WIN_S_Avg_2mi": "wind_speed",
    "WIN_D_Avg_2mi": "wind_dir",
    "PRE_1h": "precip",
    "VIS": "visibility",
}
_CMA_NAMES: Final = {
    "Station_Id_C": ("区站号(字符)", "-"),
    "Year": ("年", "年"),
    "Mon": ("月", "月"),
    "Day": ("日", "日"),
    "Hour": ("时", "时"),
    "TEM": ("温度/气温", "摄氏度(℃)"),
    "RHU": ("相对湿度", "百分率(%)"),
    "PRS": ("气压", "百帕(hPa)"),
    "WIN_S_Avg_2mi": ("2分钟平均风速", "米/秒(m/s)"),
    "WIN_D_Avg_2mi": ("2分钟平均风向(角度)", "度(°)"),
    "PRE_1h": ("过去1小时降水量", "毫米(mm)"),
    "VIS": ("水平能见度(人工)", "米(m)"),
}


class CmaSurface(Platform):
    name = "cma"
    source = "cma_surface"

    def __init__(self, publisher: Publisher) -> None:
        super().__init__(publisher)
        self.cma_code = {s.id: (s.station_no or s.id) for s in self.data.stations["weather"]}
        self.cma_by_code = {c: sid for sid, c in self.cma_code.items()}

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/cma/api", self.cma)]

    def server_error(self) -> web.Response:
        return web.json_response(
            {"returnCode": "-1", "returnMessage": "服务器繁忙，请稍后再试 (server busy)"}
        )

    async def cma(self, request: web.Request) -> web.Response:
        q = request.query
        clock = self.publisher.clock
        t0 = clock()
        if q.get("interfaceId") not in ("getSurfEleByTimeRangeAndStaID", "getSurfEleByTimeRange"):
            return await self.answer(
                request,
                {
                    "returnCode": "-1",
                    "returnMessage": f"interface not supported: {q.get('interfaceId')}",
                },
            )
        m = re.fullmatch(r"\[(\d{14}),(\d{14})\]", q.get("timeRange", ""))
        if not m:
            return await self.answer(
                request, {"returnCode": "-1", "returnMessage": "parameter timeRange error"}
            )
        first = datetime.strptime(m.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        last = datetime.strptime(m.group(2), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        # Observation times are the ends of the simulated hours.
        h0 = hour_index(first - timedelta(hours=1))
        h1 = min(
            hour_index(last - timedelta(hours=1), ceil=False) + 1,
            self.publisher.latest_hour() + 1,
        )
        wanted = [c for c in q.get("staIDs", "").split(",") if c]
        ids = (
            [self.cma_by_code[c] for c in wanted if c in self.cma_by_code]
            if wanted
            else [s.id for s in self.data.stations["weather"]]
        )
        index = self.data.index["weather"]
        sel = [index[i] for i in ids]
        elements = [e for e in q.get("elements", "").split(",") if e] or list(_CMA_NAMES)
        rows: list[dict[str, str]] = []
        params = PARAMS["weather"]
        if h1 > h0 and sel:
            for h, values, flags in await self.data.hours("weather", max(h0, 0), h1):
                obs = time_of(h + 1).astimezone(UTC)
                for sid, i in zip(ids, sel, strict=True):
                    if np.isnan(values[i]).all():
                        continue
                    rows.append(self._cma_row(sid, h, obs, values[i], flags[i], params, elements))
        body = {
            "returnCode": "0",
            "returnMessage": "Query Succeed",
            "rowCount": str(len(rows)),
            "colCount": str(len(elements)),
            "requestParams": "&".join(
                f"{k.lower()}={v}" for k, v in q.items() if k not in ("pwd", "userId")
            ),
            "requestTime": t0.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "responseTime": clock().astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "takeTime": f"{(clock() - t0).total_seconds():.3f}",
            "fieldNames": " ".join(_CMA_NAMES.get(e, (e, ""))[0] for e in elements),
            "fieldUnits": " ".join(_CMA_NAMES.get(e, ("", "-"))[1] for e in elements),
            "DS": rows,
        }
        return await self.answer(request, body)

    def _cma_row(
        self,
        sid: str,
        h: int,
        obs: datetime,
        values: npt.NDArray[np.float64],
        flags: npt.NDArray[np.uint8],
        params: Sequence[str],
        elements: Sequence[str],
    ) -> dict[str, str]:
        by = {p: (values[j], flags[j]) for j, p in enumerate(params)}
        row: dict[str, str] = {}
        for e in elements:
            if e == "Station_Id_C":
                row[e] = self.cma_code[sid]
            elif e == "Year":
                row[e] = str(obs.year)
            elif e == "Mon":
                row[e] = str(obs.month)
            elif e == "Day":
                row[e] = str(obs.day)
            elif e == "Hour":
                row[e] = str(obs.hour)
            elif e in _CMA_ELEMENTS:
                p = _CMA_ELEMENTS[e]
                v, f = by[p]
                if math.isnan(v) or f != FLAG_N:
                    row[e] = "999999"
                elif p == "precip" and 0 < v < 0.1:
                    row[e] = "999990"  # 微量: a trace of rain
                elif (
                    p == "wind_dir"
                    and not math.isnan(by["wind_speed"][0])
                    and by["wind_speed"][0] < 0.2
                ):
                    row[e] = "999017"  # 静风: calm, no direction
                else:
                    row[e] = f"{v:.4f}"
            else:
                row[e] = "999998"  # an element this station does not observe
        how = self.faults.record("cma", sid, h)
        if how is not None:
            if how < 0.5 and "TEM" in row:
                row["TEM"] = "85.0000"  # implausible temperature
            elif "Hour" in row:
                row["Hour"] = "25"
        return row
