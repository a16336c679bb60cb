"""Surface-water automatic stations, simulated: ``GET /water/realtime?start=&end=&PageIndex=``.

The shape :mod:`envmon.ingest.sources.water_auto` reads: a ``thead`` of
Chinese column names and ``tbody`` rows of strings, paged, one row per section
every 4 hours; the year-less ``MM-DD HH:MM`` Beijing time, the section name
wrapped in HTML, "--" for a missing value, the section's class by GB 3838-2002
and "维护" when the station was in maintenance. Without ``start`` only each
section's latest row. Station codes are section names.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Final

import numpy as np
import numpy.typing as npt
from aiohttp import web

from envmon import timeutil
from envmon.catalog import Station
from envmon.simulate.base import FLAG_N, hour_index
from envmon.simulate.platforms.base import PARAMS, Platform, fmt, time_of
from envmon.standards import water as water_std

_WATER_HEAD: Final = (
    "省份",
    "流域",
    "断面名称",
    "监测时间",
    "水质类别",
    "水温(℃)",
    "pH(无量纲)",
    "溶解氧(mg/L)",
    "电导率(μS/cm)",
    "浊度(NTU)",
    "高锰酸盐指数(mg/L)",
    "氨氮(mg/L)",
    "总磷(mg/L)",
    "总氮(mg/L)",
    "叶绿素α(mg/L)",
    "藻密度(cells/L)",
    "站点情况",
)
_WATER_ORDER: Final = ("temp", "ph", "do", "conductivity", "turbidity", "codmn", "nh3n", "tp", "tn")


def _beijing(text: str) -> datetime:
    return timeutil.to_beijing(datetime.fromisoformat(text.strip().replace(" ", "T")))


class WaterAuto(Platform):
    name = "water"
    source = "water_auto"

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/water/realtime", self.water)]

    async def water(self, request: web.Request) -> web.Response:
        q = request.query
        latest = self.publisher.latest_hour()
        try:
            if q.get("start") and q.get("end"):
                h0 = hour_index(_beijing(q["start"]))
                h1 = min(hour_index(_beijing(q["end"])), latest + 1)
            else:
                h0, h1 = latest - 3, latest + 1
            page = int(q.get("PageIndex", "1"))
            size = int(q.get("PageSize", "100"))
        except ValueError as err:
            return web.json_response({"result": 0, "message": f"参数错误: {err}"}, status=400)
        rows: list[list[str]] = []
        if h1 > h0:
            for h, values, flags in await self.data.hours("water", max(h0, 0), h1):
                if h % 4:
                    continue
                for i, st in enumerate(self.data.stations["water"]):
                    if np.isnan(values[i]).all():
                        continue
                    rows.append(self._water_row(st, h, values[i], flags[i]))
        if not q.get("start"):
            latest_row: dict[str, list[str]] = {}
            for r in rows:
                latest_row[r[2]] = r
            rows = list(latest_row.values())
        total = len(rows)
        chunk = rows[(page - 1) * size : page * size] if page >= 1 and size >= 1 else []
        body = {
            "result": 1,
            "message": "操作成功",
            "total": total,
            "thead": list(_WATER_HEAD),
            "tbody": chunk,
        }
        return await self.answer(request, body)

    def _water_row(
        self, st: Station, h: int, values: npt.NDArray[np.float64], flags: npt.NDArray[np.uint8]
    ) -> list[str]:
        params = PARAMS["water"]
        got: dict[str, float | None] = {}
        for j, p in enumerate(params):
            v = values[j]
            got[p] = float(v) if not math.isnan(v) and flags[j] == FLAG_N else None
        decimals = {"temp": 1, "ph": 2, "do": 2, "conductivity": 0, "turbidity": 1, "codmn": 1,
                    "nh3n": 3, "tp": 3, "tn": 2}  # fmt: skip
        cells = ["--" if got[p] is None else fmt(got[p] or 0.0, decimals[p]) for p in _WATER_ORDER]
        evaluated = {p: got[p] for p in ("ph", "do", "codmn", "nh3n", "tp") if got[p] is not None}
        cls = "--"
        if evaluated:
            res = water_std.section_class(evaluated, waterbody=st.waterbody or "river")
            if res.cls is not None:
                cls = water_std.roman(res.cls)
        t = timeutil.to_beijing(time_of(h))
        maintenance = any(
            flags[j] != FLAG_N and not math.isnan(values[j]) for j in range(len(params))
        )
        row = [
            "山西省",
            f"{st.basin or '海河'}流域",
            f"<span title='{st.river or ''}'>{st.name}</span>",
            t.strftime("%m-%d %H:%M"),
            cls,
            *cells,
            "--",
            "--",
            "维护" if maintenance else "正常",
        ]
        how = self.faults.record("water", st.id, h)
        if how is not None:
            if how < 0.5:
                row[11] = "0.0.35"  # 氨氮: not a number
            else:
                row[3] = "13-45 25:00"
        return row
